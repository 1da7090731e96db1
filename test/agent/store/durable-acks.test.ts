/**
 * Group commit's contract as a user sees it: nothing is acknowledged before the commit that records it is on disk.
 * The store's WAL sync port is held (test/agent/store/held-wal-sync.ts): the 202 of a power request and the BMC
 * command of its operation (the fake BMC's command log) wait until it is released; a node-level power request's
 * command too; the installer's job is handed over only once its step's opening is synced; a failed sync answers 500
 * and sends nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, ADOPTED_ID, IMAGE, MEMBER_TOKEN, nodeId, PROJECT, startHarness, type Harness } from '../../helpers/harness.js';
import { powerSets, sleep } from '../../helpers/engine.js';
import { HeldWalSync } from './held-wal-sync.js';

let h: Harness | null = null;
const ports: HeldWalSync[] = [];
afterEach(async () => {
  // A failing assertion must not leave an operation waiting on a held sync forever (the close would wait for it).
  for (const p of ports.splice(0)) p.release(true);
  await h?.close();
  h = null;
});

/** Resolves with true once p settles, or false after ms. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(ms);
  return done;
}

/** Whether p (null: nothing pending) has resolved, as a flag read later. */
function track(p: Promise<void> | null): { done: boolean } {
  const t = { done: p === null };
  void p?.then(() => (t.done = true));
  return t;
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('nothing is acknowledged before its commit is on disk', () => {
  it('a held WAL sync holds the 202 of a power request, then the BMC command of its operation', async () => {
    const port = new HeldWalSync();
    ports.push(port);
    h = await startHarness({ nodes: 0, adopt: true, fake: '{power_delay: 0ms}', walSync: port });
    const store = h.agent.store;
    const node = store.getInstance(ADOPTED_ID)!.node_id;
    await h.agent.engine.idle();
    const setsBefore = powerSets(h, node).length;
    const sent = () => powerSets(h!, node).length > setsBefore;
    port.held = true;
    let replied = false;
    const reply = h.agent.api.inject({ method: 'PUT', url: `/v1/instances/${ADOPTED_ID}/states/power`, headers: { 'x-auth-token': MEMBER_TOKEN }, payload: { target: 'power off' } });
    void reply.then(() => (replied = true));
    // The acceptance is committed (the store shows it): from here, the barrier that covers it.
    await until(() => store.getInstance(ADOPTED_ID)!.task !== null, 'the acceptance');
    const accepted = track(store.durable());
    await sleep(100);
    expect([replied, accepted.done, sent()]).toEqual([false, false, false]);
    // Syncs released one batch at a time (background commits may share them); after each, the rules hold.
    let sentMark: { done: boolean } | null = null;
    let heldCommand = false;
    for (let i = 0; i < 40 && !(replied && sent()); i++) {
      if (!sentMark && store.listActions(ADOPTED_ID).at(-1)?.plan?.data['0_sent'] === true) sentMark = track(store.durable());
      if (replied) expect(accepted.done, 'the 202 came before its acceptance was synced').toBe(true);
      if (sent()) expect(sentMark?.done, 'the command left before its `sent` mark was synced').toBe(true);
      if (sentMark && !sentMark.done) {
        await sleep(100);
        expect(sent(), 'the command left while its `sent` mark was not synced').toBe(false);
        heldCommand = true;
      }
      port.release();
      await sleep(30);
    }
    expect((await reply).statusCode).toBe(202);
    expect(heldCommand, 'the `sent` mark was never seen waiting for its sync').toBe(true);
    port.release(true);
    await until(sent, 'the power command');
    expect(powerSets(h, node).slice(setsBefore)).toEqual(['off']);
    await h.agent.engine.idle();
    expect(store.getInstance(ADOPTED_ID)).toMatchObject({ power_state: 'off', task: null });
  });

  it("a node-level power request: its 202 and its command wait for the node target's sync", async () => {
    const port = new HeldWalSync();
    ports.push(port);
    h = await startHarness({ nodes: 1, fake: '{power_delay: 0ms}', walSync: port });
    await h.agent.engine.idle();
    const node = nodeId(1);
    const power = h.agent.store.getNode(node)!.power_state;
    const target = power === 'on' ? 'power off' : 'power on';
    const setsBefore = powerSets(h, node).length;
    port.held = true;
    const reply = h.agent.api.inject({ method: 'PUT', url: `/v1/nodes/${node}/states/power`, headers: { 'x-auth-token': ADMIN_TOKEN }, payload: { target } });
    await until(() => port.waiting > 0, 'the node target waiting for its sync');
    expect(await within(reply, 150)).toBe(false);
    expect(powerSets(h, node).length).toBe(setsBefore);
    port.release(true);
    expect((await reply).statusCode).toBe(202);
    await until(() => powerSets(h!, node).length > setsBefore, 'the power command');
    await h.agent.engine.idle();
  });

  it("the installer's job is handed over only once the deploy step's opening is on disk", async () => {
    const port = new HeldWalSync();
    ports.push(port);
    h = await startHarness({ nodes: 1, fake: '{power_delay: 0ms, install: 200ms}', walSync: port });
    const store = h.agent.store;
    await h.agent.engine.idle();
    port.held = true;
    const reply = h.agent.api.inject({ method: 'POST', url: `/v1/${PROJECT}/instances`, headers: { 'x-auth-token': MEMBER_TOKEN }, payload: { name: 'held', image_uuid: IMAGE, extra: { node_id: nodeId(1) } } });
    const installing = () => h!.agent.lab!.snapshot(nodeId(1)).installing !== null || h!.agent.lab!.snapshot(nodeId(1)).job !== null;
    let opened: { done: boolean } | null = null;
    let heldJob = false;
    for (let i = 0; i < 200 && !installing(); i++) {
      const id = store.listInstances().find((x) => x.name === 'held')?.id;
      const deploy = id ? store.listActions(id).at(-1)?.events.find((e) => e.event === 'deploy') : undefined;
      if (deploy && !opened) opened = track(store.durable());
      if (opened && !opened.done) {
        await sleep(100);
        expect(installing(), 'the job was handed over before its step opening was synced').toBe(false);
        heldJob = true;
      }
      port.release();
      await sleep(20);
    }
    expect(installing(), 'the job never started').toBe(true);
    expect(opened?.done, 'the job started before its step opening was synced').toBe(true);
    expect(heldJob, 'the deploy step was never seen waiting for its sync').toBe(true);
    expect((await reply).statusCode).toBe(201);
    port.release(true);
    await h.agent.engine.idle();
  });

  it('a failed WAL sync: the held request answers 500 AGENT_ERR_STORE, no command is sent, later writes answer 500', async () => {
    const port = new HeldWalSync();
    ports.push(port);
    h = await startHarness({ nodes: 0, adopt: true, fake: '{power_delay: 0ms}', walSync: port });
    const node = h.agent.store.getInstance(ADOPTED_ID)!.node_id;
    await h.agent.engine.idle();
    const setsBefore = powerSets(h, node).length;
    port.held = true;
    const put = (target: string) =>
      h!.agent.api.inject({ method: 'PUT', url: `/v1/instances/${ADOPTED_ID}/states/power`, headers: { 'x-auth-token': MEMBER_TOKEN }, payload: { target } });
    const reply = put('power off');
    await until(() => port.waiting > 0, 'the acceptance waiting for its sync');
    port.failWith = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    port.failHeld(port.failWith);
    const res = await reply;
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ error_code: 'AGENT_ERR_STORE' });
    await sleep(100);
    expect(powerSets(h, node).length).toBe(setsBefore);
    expect((await put('power on')).statusCode).toBe(500);
    expect(powerSets(h, node).length).toBe(setsBefore);
  });
});
