/**
 * The fake installer: a job that runs ON the simulated server (as a deploy ramdisk does), not in the caller's promise.
 * A server holds at most one job, kept in its state file, so a job outlives the agent that started it: a later
 * deploy with the same job id attaches to it. Its course is derived from the lab clock and evaluated lazily (like
 * power, on every access to the server): step i of 5 completes at `startedAt + i * install / 5`; the job fails at
 * step 3 with the fault `fail_install`, and when the server powers off or boots again while it runs. Waiting for a
 * job never changes it: an abort or a deadline of the wait leaves it running.
 */
import type { Sleep } from '../bmc-lock.js';
import type { PowerReading } from '../types.js';

export type FakeInstallOutcome = { ok: true } | { ok: false; message: string };

/** One installer job as the server holds it (and its `state_file` keeps it). */
export interface FakeInstallerJob {
  /** Chosen by the caller: a deploy with this id attaches to the job instead of starting another. */
  id: string;
  operation: string;
  imageName: string | null;
  /** Lab clock, ms. */
  startedAt: number;
  /** The step (1-5) at which the installer reports failure (the fault `fail_install`, consumed at start), or null. */
  failAtStep: number | null;
  /** The server's boot count at the start: a later boot ends the job. */
  bootsAtStart: number;
  /** null while it runs. */
  outcome: FakeInstallOutcome | null;
}

/** What the installer is asked to do (a subset of the agent's job document). */
export interface FakeInstallJob {
  operation: string;
  imageName: string | null;
}

export interface FakeInstallOptions {
  /** Aborts the wait only: the job keeps running on the server. */
  signal?: AbortSignal | undefined;
  onProgress?: ((percent: number) => void) | undefined;
  /** When the wait gives up, lab clock ms; the job keeps running. None: wait until the job ends. */
  deadlineAt?: number | undefined;
}

export const INSTALL_STEPS = 5;
export const FAIL_AT_STEP = 3;
const FAILED_MESSAGE = 'installer reported failure: disk write error';
const POWERED_OFF_MESSAGE = 'the server was powered off during the install';
const REBOOTED_MESSAGE = 'the server rebooted during the install';
const INSTALL_LIKE = ['install', 'reinstall', 'switch-install'];

/** A new running job. */
export function newJob(id: string, job: FakeInstallJob, startedAt: number, bootsAtStart: number, fails: boolean): FakeInstallerJob {
  return { id, operation: job.operation, imageName: job.imageName, startedAt, failAtStep: fails ? FAIL_AT_STEP : null, bootsAtStart, outcome: null };
}

/** When step `i` (1-5) of the job completes. */
function stepAt(job: FakeInstallerJob, installMs: number, i: number): number {
  return job.startedAt + (i * installMs) / INSTALL_STEPS;
}

/** How many steps the job has completed by `at`, its outcome aside. */
function stepsDone(job: FakeInstallerJob, installMs: number, at: number): number {
  let n = 0;
  while (n < INSTALL_STEPS && stepAt(job, installMs, n + 1) <= at) n++;
  return n;
}

/** The progress of a job, 0-100: 100 once it succeeded. */
export function jobProgress(job: FakeInstallerJob, installMs: number, at: number): number {
  if (job.outcome?.ok) return 100;
  return (stepsDone(job, installMs, at) * 100) / INSTALL_STEPS;
}

/** The outcome a running job reaches by itself by `at` (at its failing or its last step), or null. */
export function ownOutcome(job: FakeInstallerJob, installMs: number, at: number): FakeInstallOutcome | null {
  if (job.outcome !== null || stepAt(job, installMs, job.failAtStep ?? INSTALL_STEPS) > at) return null;
  return job.failAtStep !== null ? { ok: false, message: FAILED_MESSAGE } : { ok: true };
}

/** The outcome of a running job once the server is in this power state with this boot count, or null if it goes on. */
export function interruption(job: FakeInstallerJob, power: PowerReading, boots: number): FakeInstallOutcome | null {
  if (job.outcome !== null) return null;
  if (power === 'off') return { ok: false, message: POWERED_OFF_MESSAGE };
  if (boots !== job.bootsAtStart) return { ok: false, message: REBOOTED_MESSAGE };
  return null;
}

/** The installed OS after a job succeeded: install-like operations install its image, uninstall clears it. */
export function osAfter(job: FakeInstallerJob, current: string | null): string | null {
  if (job.operation === 'uninstall') return null;
  if (job.imageName !== null && INSTALL_LIKE.includes(job.operation)) return job.imageName;
  return current;
}

/** What a waiter needs of the server that holds the job. */
export interface InstallerHost {
  readonly installMs: number;
  now(): number;
  sleep: Sleep;
  /** Brings the server (and so its job's outcome) up to now. */
  settle(): void;
}

/**
 * Waits for `job` to end, sleeping (lab clock) to each step boundary and reporting the progress reached (the current
 * one first, then each new one).
 * @throws Error with the job's failure message; 'installer aborted' (cause: the signal's reason) when the signal
 *   aborts; 'installer did not finish by <ISO time>' at `deadlineAt`. The last two leave the job running.
 */
export async function waitForJob(host: InstallerHost, job: FakeInstallerJob, opts: FakeInstallOptions): Promise<void> {
  let reported: number | null = null;
  for (;;) {
    host.settle();
    const now = host.now();
    const progress = jobProgress(job, host.installMs, now);
    if (progress !== reported && job.outcome?.ok !== false) {
      reported = progress;
      opts.onProgress?.(progress);
    }
    if (job.outcome) {
      if (job.outcome.ok) return;
      throw new Error(job.outcome.message);
    }
    if (opts.deadlineAt !== undefined && now >= opts.deadlineAt) {
      throw new Error(`installer did not finish by ${new Date(opts.deadlineAt).toISOString()} (its deadline); it is still running`);
    }
    const next = Math.min(stepAt(job, host.installMs, stepsDone(job, host.installMs, now) + 1), opts.deadlineAt ?? Infinity);
    try {
      await host.sleep(Math.max(0, next - now), opts.signal);
    } catch (e) {
      if (opts.signal?.aborted) throw new Error('installer aborted', { cause: e });
      throw e;
    }
  }
}
