/**
 * The one wait loop of metald: the BMC's power read-back (drivers/bmc.ts), the engine's ICMP confirmation and
 * recovery power poll (agent/operations/runner.ts, confirm-alive.ts) and metalctl's `--wait` (agent/cli/wait.ts) all call
 * `waitFor`. It lives under drivers/ (which never imports agent/) and depends on nothing.
 *
 * Semantics, in one place:
 * - Before probe i it waits `delaysMs[i]` (the last delay repeats); `immediate` makes the first wait 0 (probe at
 *   once). A wait of 0 does not sleep. (A loop that probes at once and then waits the delays in order uses
 *   `[0, ...delays]`.)
 * - Every wait is cut to the time left before the deadline (`deadlineMs` from the call), so the last probe happens
 *   at the deadline; after a probe at or past the deadline nothing more is probed. The first probe always happens.
 * - The signal is observed by the waits only (a probe observes it itself): an abort while waiting ends the wait
 *   with `aborted`, the signal's reason and the last observation.
 * - A probe that throws ends the wait with its error; a probe that tolerates a failed read returns `done: false`.
 */

/**
 * Waiting policy: the delays between probes, in ms, in order; the last repeats until the deadline. (MAAS waits
 * 1, 2, 2, 4, 6, 8, 12 s.) Tests use short ones; the daemon takes them from config.
 */
export interface WaitPolicy {
  delaysMs: readonly number[];
  deadlineMs: number;
}

/** What a probe found: whether the wait is over, and what it saw (kept as the last observation). */
export interface ProbeResult<O> {
  done: boolean;
  seen?: O;
}

export type Probe<O> = (attempt: number) => Promise<ProbeResult<O>>;

/** The injected time: monotonic-enough ms and a sleep that rejects when its signal aborts. */
export interface WaitClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface WaitOptions {
  clock: WaitClock;
  signal?: AbortSignal | undefined;
  /** Probe at once instead of waiting `delaysMs[0]` first. */
  immediate?: boolean | undefined;
}

export type WaitOutcome<O> =
  | { status: 'done'; last: O | undefined; probes: number }
  | { status: 'deadline'; last: O | undefined; probes: number }
  | { status: 'aborted'; last: O | undefined; probes: number; reason: unknown };

/** @throws Error when the policy cannot be followed (no delays, a negative or non-finite delay or deadline). */
export function checkWaitPolicy(policy: WaitPolicy): void {
  if (policy.delaysMs.length === 0) throw new Error('waiting policy: delaysMs must not be empty');
  if (policy.delaysMs.some((d) => !(d >= 0) || !Number.isFinite(d))) {
    throw new Error(`waiting policy: delays must be >= 0 ms, got ${policy.delaysMs.join(', ')}`);
  }
  if (!(policy.deadlineMs >= 0)) throw new Error(`waiting policy: deadlineMs must be >= 0, got ${policy.deadlineMs}`);
}

/** Probes under `policy` until a probe says done, the deadline passes, or the signal aborts a wait. */
export async function waitFor<O>(policy: WaitPolicy, probe: Probe<O>, opts: WaitOptions): Promise<WaitOutcome<O>> {
  checkWaitPolicy(policy);
  const { clock, signal } = opts;
  const deadline = clock.now() + policy.deadlineMs;
  let last: O | undefined;
  let i = 0;
  for (; ; i++) {
    const remaining = deadline - clock.now();
    if (i > 0 && remaining <= 0) break;
    const delay = opts.immediate && i === 0 ? 0 : (policy.delaysMs[Math.min(i, policy.delaysMs.length - 1)] ?? 0);
    if (delay > 0) {
      try {
        await clock.sleep(Math.min(delay, Math.max(0, remaining)), signal);
      } catch (reason) {
        return { status: 'aborted', last, probes: i, reason };
      }
    }
    const r = await probe(i);
    if (r.seen !== undefined) last = r.seen;
    if (r.done) return { status: 'done', last, probes: i + 1 };
  }
  return { status: 'deadline', last, probes: i };
}
