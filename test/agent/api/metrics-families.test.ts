/**
 * /metrics of a real agent (fake lab) over a real socket, parsed as a Prometheus server would read it: operations by
 * kind and result with their durations (resumed ones too), BMC calls and errors by driver, call and code, liveness
 * verdicts, and no label that names a node or an instance.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import { systemClock } from '../../../agent/ports.js';
import { InlineWalSync } from '../../../agent/store/wal-sync.js';
import { FakeLab } from '../../../drivers/fake/lab.js';
import { IMAGE, ctx, nodeId, startHarness, writeConfig, type Harness } from '../../helpers/harness.js';
import { select, sumOf, valueOf, type Exposition } from '../../helpers/prom-text.js';
import { FAST_LIVENESS, listen, runSampleOperations, scrape, until } from '../../helpers/scrape.js';

let h: Harness | null = null;
let dir: string | null = null;
const agents: Agent[] = [];
afterEach(async () => {
  await h?.close();
  h = null;
  for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/** Every (kind, result) pair of metald_operations_total with its value. */
function operations(x: Exposition): Record<string, number> {
  return Object.fromEntries(select(x, 'metald_operations_total').map((s) => [`${s.labels.kind}/${s.labels.result}`, s.value]));
}

/** A histogram's series for `labels` are whole: cumulative buckets, +Inf = _count, _sum >= 0. */
function expectHistogram(x: Exposition, name: string, labels: Record<string, string>, count: number): void {
  const buckets = select(x, `${name}_bucket`, labels);
  expect(buckets.length).toBeGreaterThan(1);
  const values = buckets.map((b) => b.value);
  expect(values).toEqual([...values].sort((a, b) => a - b));
  expect(buckets.at(-1)!.labels.le).toBe('+Inf');
  expect(buckets.at(-1)!.value).toBe(count);
  expect(valueOf(x, `${name}_count`, labels)).toBe(count);
  expect(valueOf(x, `${name}_sum`, labels)).toBeGreaterThanOrEqual(0);
}

describe('/metrics: operations, BMC calls, liveness verdicts', () => {
  it('counts each ended operation once by kind and result, with BMC calls and errors by driver, call and code', async () => {
    h = await startHarness({ nodes: 2, liveness: FAST_LIVENESS });
    await listen(h.agent);
    const x0 = await scrape(h.agent);
    expect(select(x0, 'metald_operations_total')).toEqual([]);
    // Power sync's start-up reads went through the BMC handles: counted before any operation.
    expect(valueOf(x0, 'metald_bmc_calls_total', { driver: 'fake', call: 'power_read', result: 'success' })).toBeGreaterThanOrEqual(2);

    // A create that installs, on each node; a power off; a power on that the BMC refuses (fault fail_power_on).
    const { first, second } = await runSampleOperations(h);
    const x = await scrape(h.agent);

    // Operations: exactly these, each once; the histogram's count is the counter's.
    expect(operations(x)).toEqual({ 'create/success': 2, 'power-off/success': 1, 'power-on/failure': 1 });
    expect(x.types.get('metald_operations_total')).toBe('counter');
    expect(x.types.get('metald_operation_duration_seconds')).toBe('histogram');
    expectHistogram(x, 'metald_operation_duration_seconds', { kind: 'create', result: 'success' }, 2);
    expectHistogram(x, 'metald_operation_duration_seconds', { kind: 'power-off', result: 'success' }, 1);
    expectHistogram(x, 'metald_operation_duration_seconds', { kind: 'power-on', result: 'failure' }, 1);
    // An install takes the fake's 30 ms at least.
    expect(valueOf(x, 'metald_operation_duration_seconds_sum', { kind: 'create', result: 'success' })).toBeGreaterThan(0.03);

    // BMC: the refused power on is one failed power_set, one BMC_ERR_COMMAND_FAILED of the fake driver.
    expect(valueOf(x, 'metald_bmc_errors_total', { driver: 'fake', code: 'BMC_ERR_COMMAND_FAILED' })).toBe(1);
    expect(valueOf(x, 'metald_bmc_calls_total', { driver: 'fake', call: 'power_set', result: 'failure' })).toBe(1);
    // Powers sent and verified: each create's on (and off before it), the power off, the off after the failure.
    expect(valueOf(x, 'metald_bmc_calls_total', { driver: 'fake', call: 'power_set', result: 'success' })).toBeGreaterThanOrEqual(3);
    expect(valueOf(x, 'metald_bmc_calls_total', { driver: 'fake', call: 'power_verify', result: 'success' })).toBe(
      valueOf(x, 'metald_bmc_calls_total', { driver: 'fake', call: 'power_set', result: 'success' }),
    );
    // Every error is one failed call's; every command (not a verification) has a duration.
    expect(sumOf(x, 'metald_bmc_errors_total', { driver: 'fake' })).toBe(sumOf(x, 'metald_bmc_calls_total', { driver: 'fake', result: 'failure' }));
    const commands = select(x, 'metald_bmc_calls_total', { driver: 'fake' })
      .filter((s) => !s.labels.call!.endsWith('_verify'))
      .reduce((a, s) => a + s.value, 0);
    expect(x.types.get('metald_bmc_call_duration_seconds')).toBe('histogram');
    expectHistogram(x, 'metald_bmc_call_duration_seconds', { driver: 'fake' }, commands);
    expect(new Set(select(x, 'metald_bmc_calls_total').map((s) => s.labels.result))).toEqual(new Set(['success', 'failure']));

    // Liveness: the last sweep's verdicts (m1 is stopped: not a running instance, not swept).
    expect(x.types.get('metald_liveness_verdicts')).toBe('gauge');
    expect(valueOf(x, 'metald_liveness_verdicts', { verdict: 'alive' })).toBe(1);
    expect(valueOf(x, 'metald_liveness_verdicts', { verdict: 'dead' })).toBe(0);
    expect(valueOf(x, 'metald_liveness_verdicts', { verdict: 'powered-off' })).toBe(0);

    // Low cardinality: no series names a node, an instance or a request.
    const text = JSON.stringify(x.samples);
    for (const id of [first, second, nodeId(1), nodeId(2), 'req-']) expect(text).not.toContain(id);
  });

  it('an operation resumed after a restart is counted once, by the agent that ends it', async () => {
    const cfg = writeConfig({ nodes: 1, fake: '{power_delay: 5ms, install: 1s}' });
    dir = cfg.dir;
    const lab = new FakeLab();
    const boot = async () => {
      const agent = await buildAgent(loadConfigFile(cfg.configPath), { log: pino({ level: 'silent' }), clock: systemClock, walSync: new InlineWalSync(), fakeLab: lab });
      agents.push(agent);
      await agent.start();
      await listen(agent);
      return agent;
    };
    const first = await boot();
    const { action } = await first.engine.createInstance(ctx(), { name: 'resumed', image_uuid: IMAGE });
    await until(() => first.store.getAction(action.request_id)!.events.some((e) => e.event === 'deploy'), 'the deploy step');
    const before = await scrape(first);
    await first.stop();
    agents.pop();
    // Stopped mid-install: not ended, not counted.
    expect(operations(before)).toEqual({});

    const second = await boot();
    await second.engine.idle();
    const after = await scrape(second);
    expect(operations(after)).toEqual({ 'create/success': 1 });
    expectHistogram(after, 'metald_operation_duration_seconds', { kind: 'create', result: 'success' }, 1);
    // Its duration is the action's: from its acceptance by the first agent to its end (the runner's clock when it
    // ended it, the same turn as the action's finish_time: a few ms apart at most).
    const a = second.store.getAction(action.request_id)!;
    const seconds = (Date.parse(a.finish_time!) - Date.parse(a.start_time)) / 1000;
    expect(seconds).toBeGreaterThan(0.05);
    expect(Math.abs((valueOf(after, 'metald_operation_duration_seconds_sum', { kind: 'create', result: 'success' }) ?? NaN) - seconds)).toBeLessThan(0.02);
  });
});
