/**
 * The link as buildAgent wires it (agent/upstream/wire.ts): standalone without upstream.url, streaming to the
 * reference controller (in-process) with it; what /readyz and /metrics say in each case.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { AGENT, TOKEN, startController, useLinkContext, waitUntil } from './link-helpers.js';

const ctx = useLinkContext();
let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

const readyz = async (x: Harness) => (await x.agent.api.inject({ method: 'GET', url: '/readyz' })).json() as { status: string; upstream: Record<string, unknown> };
const metrics = async (x: Harness) => (await x.agent.api.inject({ method: 'GET', url: '/metrics' })).body;
const gauge = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

describe('the upstream link as the agent wires it', () => {
  it('without upstream.url: standalone, /readyz says disabled, /metrics too, and the outbox depth is shown', async () => {
    h = await startHarness({ nodes: 1 });
    const r = await readyz(h);
    expect(r.status).toBe('ready');
    expect(r.upstream).toMatchObject({ state: 'disabled', url: null, last_ack_seq: null, generation: 0 });
    expect(r.upstream.last_seq).toBe(h.agent.store.lastSeq());
    const m = await metrics(h);
    expect(m).toMatch(/^metald_upstream_link_state\{state="disabled"\} 1$/m);
    expect(m).toMatch(/^metald_upstream_link_state\{state="streaming"\} 0$/m);
    expect(gauge(m, 'metald_outbox_events')).toBe(h.agent.store.outboxDepth().events);
    expect(gauge(m, 'metald_journal_last_seq')).toBe(h.agent.store.lastSeq());
  });

  it('with upstream.url: streams the journal to the controller; /readyz and /metrics show the state and the acks', async () => {
    const c = await startController(ctx);
    const tokenFile = join(ctx.dir, 'upstream.token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    h = await startHarness({
      nodes: 2,
      extra: `upstream: {url: "${c.url}", token_file: ${tokenFile}}`,
      editConfig: (y) => y.replace('agent_id: test-agent', `agent_id: ${AGENT}`),
    });
    const x = h;
    await waitUntil(() => x.agent.upstream.status().state === 'streaming', 10_000, 'streaming');
    const last = x.agent.store.lastSeq();
    expect(last).toBeGreaterThan(0);
    await waitUntil(() => x.agent.upstream.status().last_ack_seq === last, 10_000, 'the journal acked');
    expect(c.store.seqs(AGENT)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    const r = await readyz(x);
    expect(r.upstream).toMatchObject({ state: 'streaming', url: c.url, last_ack_seq: last, last_seq: last, welcomes: 1, last_error: null });
    const m = await metrics(x);
    expect(m).toMatch(/^metald_upstream_link_state\{state="streaming"\} 1$/m);
    expect(gauge(m, 'metald_upstream_last_ack_seq')).toBe(last);
    expect(gauge(m, 'metald_upstream_welcomes_total')).toBe(1);
    // The hello carried the agent's nodes.
    expect(c.lines.find((l) => l.what === 'hello')).toMatchObject({ agent_id: AGENT, nodes: 2 });
  });
});
