/** Helpers of the engine tests that drive a harness agent (test/helpers/harness.ts) directly. */
import { ctx, IMAGE, nodeId, type Harness } from './harness.js';
import { flush, type ManualClock } from './manual-clock.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Creates an instance on node `i` (default 1) and waits until the install is done; returns its id. */
export async function runningInstance(harness: Harness, name = 'test', i = 1): Promise<string> {
  const { instance } = await harness.agent.engine.createInstance(ctx(), { name, image_uuid: IMAGE, extra: { node_id: nodeId(i) } });
  await harness.agent.engine.idle();
  return instance.id;
}

/** Power commands the agent sent to node `node` (the tests' own `power-button` presses left out), by action. */
export function powerSets(harness: Harness, node: string): string[] {
  return harness.agent.lab!
    .commands(node)
    .filter((c) => c.op === 'power.set' && c.via !== 'power-button')
    .map((c) => c.arg ?? '');
}

/** One state edge as the journal recorded it (`from` is `new` for the edge that created the instance). */
export interface EdgeTaken {
  event: string;
  from: string;
  to: string;
  cause: string;
}

/**
 * The exact sequence of state edges an instance took, read from the store's journal, optionally only those after
 * journal sequence number `afterSeq` (take `store.lastSeq()` before the operation under test).
 */
export function edgesOf(harness: Harness, instanceId: string, afterSeq = 0): EdgeTaken[] {
  const store = harness.agent.store;
  return store
    .readJournal(afterSeq + 1, Math.max(1, store.lastSeq() - afterSeq))
    .filter((e) => e.kind === 'instance.state' && e.instance_id === instanceId)
    .map((e) => ({
      event: String(e.data['event']),
      from: typeof e.data['from'] === 'string' ? e.data['from'] : 'new',
      to: String(e.data['state']),
      cause: e.cause,
    }));
}

/**
 * With a manual clock: moves the clock until no operation runs, calling `atEachWait` whenever something waits on it.
 * @returns how many times something waited.
 */
export async function drive(harness: Harness, clock: ManualClock, atEachWait: () => Promise<void> = async () => undefined): Promise<number> {
  let done = false;
  void harness.agent.engine.idle().then(() => (done = true));
  let waits = 0;
  for (let i = 0; i < 2_000; i++) {
    await flush();
    if (done) return waits;
    if (clock.waiting > 0) {
      await atEachWait();
      waits++;
    }
    clock.next();
  }
  throw new Error('the operation did not finish');
}
