/**
 * SIGTERM (systemctl stop) while a BMC command is in flight, on the real daemon and a real ipmi_sim BMC whose
 * chassis_control takes 0.6 s to carry out a `set` (its `slow` knob; ipmi_sim is blocked meanwhile, so ipmitool is
 * still waiting for the answer): the stop lets that ipmitool finish (agent/drain.ts) instead of killing it
 * mid-session, exits 0 within its bound, and the operation's state is on disk as sent; the next start verifies it by
 * reading the BMC, sends nothing again, and the instance ends stopped. What the BMC saw is asserted from its own
 * chassis log: exactly one `power 0`.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { missingPeers } from '../../helpers/peers.js';
import { adoptedId, putPower, startLab, status, type Lab } from './lab.js';

const why = missingPeers('the drain on SIGTERM (a real ipmi_sim BMC)', ['ipmi_sim', 'ipmitool'], 'openipmi ipmitool');
let lab: Lab | undefined;
let daemon: Daemon | undefined;

beforeAll(async () => {
  if (why) return;
  lab = await startLab({
    ipmi: ['on'],
    redfish: [],
    nodes: [{ kind: 'ipmi', sim: 0, adopt: 'drained' }],
    // The BMC answers within ipmitool's retransmission timeout however slow the set.
    edit: (y) => y.replace('retries: 1, retry_timeout_s: 1}', 'retries: 1, retry_timeout_s: 3}'),
  });
  daemon = await startDaemon(lab.configPath);
  await waitFor(async () => (await status(daemon!, adoptedId(1))).state === 'running', 20_000, 'the adoption');
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGKILL');
  await lab?.stop();
});

describe('SIGTERM with a BMC command in flight', () => {
  it('lets the running ipmitool finish, exits 0, and the next start verifies the step without sending it again', async () => {
    if (why) expect.fail(why);
    const state = join(lab!.sims[0]!.dir, 'state');
    writeFileSync(join(state, 'slow'), '0.6\n');
    const before = await lab!.sims[0]!.log();
    await putPower(daemon!, adoptedId(1), 'off');
    await waitFor(() => existsSync(join(state, 'busy')), 10_000, 'the power off to reach the BMC');
    const t0 = Date.now();
    const code = await daemon!.kill('SIGTERM');
    const stopMs = Date.now() - t0;
    rmSync(join(state, 'slow'));
    const log = daemon!.stdout();
    expect(code, log.slice(-3000)).toBe(0);
    expect(stopMs, 'the stop is bounded (STOP_LIMIT_MS 20 s)').toBeLessThan(20_000);
    // The drain's own account: one command let to finish, none cut.
    const drained = log.split('\n').filter((l) => l.includes('"stop: BMC commands drained"'));
    expect(drained.length, log.slice(-3000)).toBe(1);
    expect(JSON.parse(drained[0]!)).toMatchObject({ drained: 1, cut: 0 });
    // The BMC carried it out, once.
    expect((await lab!.sims[0]!.log()).slice(before.length)).toEqual(['power 0']);
    expect(await lab!.sims[0]!.power()).toBe('off');

    daemon = await startDaemon(lab!.configPath);
    await waitFor(async () => (await status(daemon!, adoptedId(1))).state === 'stopped', 20_000, 'the resumed power off');
    expect(await status(daemon!, adoptedId(1))).toMatchObject({ state: 'stopped', error: null });
    expect((await lab!.sims[0]!.log()).slice(before.length), 'nothing sent again after the restart').toEqual(['power 0']);
  }, 90_000);
});
