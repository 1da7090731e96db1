/**
 * One lock per BMC, shared by every driver and every caller that talks to it: commands to one BMC run one at a time,
 * in arrival order (FIFO), with at least `minGapMs` between the end of one command and the start of the next.
 * Ironic: a gap "too low may cause the BMC to crash"; ipmi_sim and many real BMCs also cap concurrent sessions.
 */
import type { DriverSettings } from './settings.js';

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** setTimeout-based sleep; rejects with the signal's reason when aborted. */
export const realSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * The lock key of a BMC: host and port, so the drivers of one node (and nodes that share a BMC, e.g. blades behind
 * one chassis manager) queue together. A URL address (`https://10.0.1.22`) keys on its host and explicit port.
 */
export function bmcLockKey(settings: DriverSettings): string {
  const address = settings['address'];
  const p = settings['port'];
  let host = typeof address === 'string' ? address.trim().toLowerCase() : '';
  let port = typeof p === 'number' ? String(p) : '';
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(host)) {
    try {
      const url = new URL(host);
      host = url.hostname;
      if (port === '' && url.port !== '') port = url.port;
    } catch {
      // Not a URL after all: key on the text as given.
    }
  }
  return `${host}:${port}`;
}

interface KeyState {
  busy: boolean;
  /** When the last command ended (the lock's clock); null before the first. */
  lastEnd: number | null;
  /** Who is queued, in order; each entry hands over the lock. */
  waiters: { grant: () => void }[];
}

export interface LockClock {
  /** Monotonic ms. Default: performance.now(). */
  now?: () => number;
  sleep?: Sleep;
}

export class BmcLock {
  private readonly keys = new Map<string, KeyState>();
  private readonly now: () => number;
  private readonly sleep: Sleep;

  constructor(clock: LockClock = {}) {
    this.now = clock.now ?? (() => performance.now());
    this.sleep = clock.sleep ?? realSleep;
  }

  /**
   * Runs `fn` when every earlier call for `key` has finished and `minGapMs` has passed since the last one ended.
   * The lock is released when `fn` settles. When `signal` aborts while the call is still queued or waiting out the
   * gap, the call leaves the queue without running and rejects with the signal's reason (nothing was sent).
   */
  async run<T>(key: string, minGapMs: number, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const state = this.stateOf(key);
    await this.acquire(state, signal);
    let ran = false;
    try {
      // A loop, not one sleep: Node timers may fire a little early against performance.now() (libuv caches the
      // loop time), and the gap is a guarantee.
      for (let wait = this.gapLeft(state, minGapMs); wait > 0; wait = this.gapLeft(state, minGapMs)) {
        await this.sleep(wait, signal);
      }
      signal?.throwIfAborted();
      ran = true;
      return await fn();
    } finally {
      if (ran) state.lastEnd = this.now();
      this.release(state);
    }
  }

  /** Calls waiting for `key` (not counting the running one). */
  queued(key: string): number {
    return this.keys.get(key)?.waiters.length ?? 0;
  }

  /** Whether a call for `key` is running or waiting out the gap. */
  busy(key: string): boolean {
    return this.keys.get(key)?.busy ?? false;
  }

  private gapLeft(state: KeyState, minGapMs: number): number {
    return state.lastEnd === null ? 0 : state.lastEnd + minGapMs - this.now();
  }

  private stateOf(key: string): KeyState {
    let state = this.keys.get(key);
    if (!state) {
      // Kept after use: `lastEnd` must survive idle periods. One entry per BMC address, so the map stays small.
      state = { busy: false, lastEnd: null, waiters: [] };
      this.keys.set(key, state);
    }
    return state;
  }

  private acquire(state: KeyState, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (!state.busy) {
      state.busy = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = state.waiters.indexOf(waiter);
        if (i >= 0) state.waiters.splice(i, 1);
        reject(signal?.reason as Error);
      };
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      state.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private release(state: KeyState): void {
    const next = state.waiters.shift();
    if (next) next.grant();
    else state.busy = false;
  }
}
