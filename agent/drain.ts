/**
 * The stop's drain of BMC commands. A stop (SIGTERM) aborts every running operation (agent/operations/engine.ts:
 * their records stay in flight, the next start resumes them); without a drain, that abort kills an `ipmitool`
 * mid-exchange (leaving its RMCP+ session open on the BMC, which has few) and cuts a Redfish request mid-write. Both
 * ports the drivers send through (the process runner and the HTTP client) are wrapped here: once `begin(graceMs)`
 * is called, an abort of a call already in flight is held back until the call ends by itself or the grace ends,
 * whichever is first; then it is cut as before. Calls not in flight see the abort at once (no new command leaves:
 * the process runner and the HTTP client refuse a call whose signal is already aborted). Outside a stop, an abort
 * (a preempting delete) reaches the call at once.
 *
 * What a drained command did is persisted as any command's is: the runner saved the step and its `sent` mark before
 * the command left (agent/operations/runner.ts), and after a drained command the step's read-back sees the abort,
 * leaving the step open for the next start to verify by reading the BMC, never sending the command again.
 */
import type { HttpClient, HttpRequest, HttpResponse, ProcessResult, ProcessRunner } from '../drivers/ports.js';

/** How long a stop waits for BMC commands in flight (docs/config.md, "Stopping"): an ipmitool call takes 0.1-6 s. */
export const BMC_DRAIN_MS = 10_000;

/**
 * The most a whole stop takes before agent/main.ts exits anyway (the drain, then the Redfish logouts, the store's
 * close): below the unit's TimeoutStopSec=30s, so metald ends on its own terms, not by the manager's SIGKILL.
 */
export const STOP_LIMIT_MS = 20_000;

export interface DrainResult {
  /** Calls in flight when the drain began that ended by themselves within the grace. */
  drained: number;
  /** Calls in flight when the drain began that were still running at the end of the grace, and were cut. */
  cut: number;
}

interface InFlight {
  controller: AbortController;
  /** The caller's abort, held back during the drain. */
  pending: unknown;
  done: Promise<void>;
}

export class BmcDrain {
  readonly #calls = new Set<InFlight>();
  #draining = false;
  #deadline: NodeJS.Timeout | null = null;
  #atBegin = new Set<InFlight>();
  #cut = 0;

  constructor(private readonly onCut: (count: number) => void = () => undefined) {}

  /** Calls in flight now. */
  get inFlight(): number {
    return this.#calls.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** From now on, aborts of calls in flight wait for the call's end, at most `graceMs`. */
  begin(graceMs: number): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#atBegin = new Set(this.#calls);
    this.#deadline = setTimeout(() => this.#cutAll(), graceMs);
    this.#deadline.unref();
  }

  /** Resolves when no call is in flight (every one ended, drained or cut); says how many of each. */
  async settled(): Promise<DrainResult> {
    while (this.#calls.size > 0) await Promise.allSettled([...this.#calls].map((c) => c.done));
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = null;
    return { drained: this.#atBegin.size - this.#cut, cut: this.#cut };
  }

  #cutAll(): void {
    const n = this.#calls.size;
    for (const c of this.#calls) {
      if (this.#atBegin.has(c)) this.#cut += 1;
      c.controller.abort(c.pending ?? new Error('the stop drain ended'));
    }
    if (n > 0) this.onCut(n);
  }

  /** Runs `call` with a signal that follows `signal` but for the drain's hold. */
  async #track<T>(signal: AbortSignal | undefined, call: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    // No signal, or one already aborted: nothing to hold (the port refuses an aborted call before it starts).
    if (!signal || signal.aborted) return call(signal);
    const controller = new AbortController();
    let settle!: () => void;
    const entry: InFlight = { controller, pending: undefined, done: new Promise<void>((r) => (settle = r)) };
    const onAbort = () => {
      if (this.#draining) entry.pending = signal.reason ?? new Error('aborted');
      else controller.abort(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    this.#calls.add(entry);
    try {
      return await call(controller.signal);
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.#calls.delete(entry);
      settle();
    }
  }

  /** The process runner the drivers get (ipmitool). */
  runner(inner: ProcessRunner): ProcessRunner {
    return {
      run: (file, args, opts = {}): Promise<ProcessResult> =>
        this.#track(opts.signal, (signal) => {
          const { signal: _given, ...rest } = opts;
          return inner.run(file, args, signal ? { ...rest, signal } : rest);
        }),
    };
  }

  /** The HTTP client the drivers get (Redfish). */
  http(inner: HttpClient): HttpClient {
    return {
      request: (req: HttpRequest): Promise<HttpResponse> =>
        this.#track(req.signal, (signal) => {
          const { signal: _given, ...rest } = req;
          return inner.request(signal ? { ...rest, signal } : rest);
        }),
    };
  }
}
