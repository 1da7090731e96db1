/**
 * A manual clock for the engine, the BMC handles and the fake lab (`buildAgent(config, {clock, fakeLab})`): time
 * moves only when the test says so, so an operation is held mid-step (in a verification poll, an installer step, a
 * liveness wait) for as long as the test wants, deterministically.
 */
import type { Clock } from '../../agent/ports.js';

interface Timer {
  at: number;
  fire: () => void;
}

export class ManualClock implements Clock {
  private t: number;
  private timers: Timer[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  readonly now = (): number => this.t;

  readonly sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const onAbort = () => {
        this.timers = this.timers.filter((x) => x !== timer);
        reject(signal?.reason as Error);
      };
      const timer: Timer = {
        at: this.t + Math.max(0, ms),
        fire: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });

  /** Sleepers waiting for time to move. */
  get waiting(): number {
    return this.timers.length;
  }

  /** Moves time to the earliest pending timer and fires every timer due by then. @returns false when none waits. */
  next(): boolean {
    if (this.timers.length === 0) return false;
    const at = Math.min(...this.timers.map((x) => x.at));
    this.t = Math.max(this.t, at);
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.fire();
    return true;
  }
}

/** Lets every promise chain that does not wait for the clock run to its next wait. */
export async function flush(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Moves the manual clock, timer by timer (at most 100), until `p` settles; then gives its result. */
export async function untilSettled<T>(clock: ManualClock, p: Promise<T>): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 100 && !done; i++) {
    await flush();
    if (!done) clock.next();
  }
  return p;
}
