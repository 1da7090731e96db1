/**
 * /metrics as a Prometheus server reads it: the agent's API listening on loopback, `GET /metrics` over the socket,
 * the text parsed (./prom-text.ts). And a few operations on fake nodes that make the labelled series exist.
 */
import { expect } from 'vitest';
import type { Agent } from '../../agent/build-agent.js';
import { parseExposition, valueOf, type Exposition } from './prom-text.js';
import { ADMIN_TOKEN, IMAGE, MEMBER_TOKEN, ctx, nodeId, type Harness } from './harness.js';

/** Makes the agent's API listen on a free loopback port (an in-process harness answers `inject()` only). */
export async function listen(agent: Agent): Promise<void> {
  await agent.api.listen({ host: '127.0.0.1', port: 0 });
}

/** GET /metrics over the agent's socket, parsed. */
export async function scrape(agent: Agent): Promise<Exposition> {
  const address = agent.api.server.address();
  if (!address || typeof address === 'string') throw new Error('the API does not listen (listen(agent) first)');
  const res = await fetch(`http://127.0.0.1:${address.port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  return parseExposition(await res.text());
}

export async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * On a harness of at least 2 fake nodes whose API listens: a create on each node (both install), a power off of
 * the first, then a power on of it that its BMC refuses (fault fail_power_on set through the fake-faults route);
 * then waits for two more liveness sweeps (the harness's liveness interval should be short).
 * @returns the two instances' ids (the first ends stopped with power_on_error, the second running)
 */
export async function runSampleOperations(h: Harness): Promise<{ first: string; second: string }> {
  const api = h.agent.api;
  const { instance } = await h.agent.engine.createInstance(ctx('member'), { name: 'm1', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
  const { instance: other } = await h.agent.engine.createInstance(ctx('member'), { name: 'm2', image_uuid: IMAGE, extra: { node_id: nodeId(2) } });
  await h.agent.engine.idle();
  const power = (target: string) =>
    api.inject({ method: 'PUT', url: `/v1/instances/${instance.id}/states/power`, headers: { 'x-auth-token': MEMBER_TOKEN }, payload: { target } });
  expect((await power('power off')).statusCode).toBe(202);
  await h.agent.engine.idle();
  const fault = await api.inject({ method: 'PUT', url: `/v1/nodes/${nodeId(1)}/fake-faults`, headers: { 'x-auth-token': ADMIN_TOKEN }, payload: { fail_power_on: 1 } });
  expect(fault.statusCode).toBe(204);
  expect((await power('power on')).statusCode).toBe(202);
  await h.agent.engine.idle();
  expect(h.agent.engine.getInstance(ctx('member'), instance.id)).toMatchObject({ state: 'stopped', error: { error_type: 'power_on_error' } });
  expect(h.agent.engine.getInstance(ctx('member'), other.id).state).toBe('running');
  const sweeps = valueOf(await scrape(h.agent), 'metald_liveness_sweeps_total') ?? 0;
  await until(async () => (valueOf(await scrape(h.agent), 'metald_liveness_sweeps_total') ?? 0) >= sweeps + 2, 'two liveness sweeps');
  return { first: instance.id, second: other.id };
}

/** A liveness section with sweeps every 20 ms (the fake lab's pinger). */
export const FAST_LIVENESS = '{engine: fake, interval: 20ms, timeout: 100ms, retries: 0}';
