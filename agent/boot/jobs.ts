/**
 * The installer jobs (docs/boot-protocol.md): prepared by an OS operation's `prepare_boot` step, fetched and
 * reported on by the installer through the boot server (./server.ts), waited for by the `deploy` step
 * (./deployer.ts). Every change is a write of the job's row (Store.bootJobs) first; a report is answered only once
 * it is on disk, so a report that metald acknowledged survives a crash, and one it did not is retried by the
 * installer and counted once. A job past its deadline is `expired` when next read (and written so).
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { Node } from '../model.js';
import type { Clock, DeployJob, PrepareOptions } from '../ports.js';
import type { BootJob, Store } from '../store/types.js';
import { buildDocument } from './document.js';

/** An answer of the boot protocol other than success: its HTTP status and error code. */
export class JobError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 410,
    readonly code: 'BAD_REQUEST' | 'NO_JOB' | 'JOB_ALREADY_FETCHED' | 'JOB_NOT_FETCHED' | 'JOB_FINISHED' | 'JOB_GONE',
    message: string,
  ) {
    super(message);
  }
}

export interface ProgressReport {
  progress: number;
  message?: string | undefined;
}

export interface ResultReport {
  result: 'success' | 'failure';
  message?: string | undefined;
  image_sha256?: string | undefined;
}

export interface BootJobsDeps {
  store: Store;
  clock: Clock;
  config: () => Config;
  /** The token generator (tests fix it); default 32 random bytes, base64url. */
  newToken?: () => string;
}

const OPEN = new Set(['issued', 'fetched']);

export class BootJobs {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly newToken: () => string;

  constructor(private readonly d: BootJobsDeps) {
    this.newToken = d.newToken ?? (() => randomBytes(32).toString('base64url'));
  }

  /**
   * Makes the job ready for the node's next boot; idempotent by `opts.jobId`. The node's other open jobs are revoked
   * (one job per node at a time).
   * @throws Error when the node has no MAC or the document cannot be built (nothing written then).
   */
  prepare(node: Node, job: DeployJob, opts: PrepareOptions): BootJob {
    const existing = this.d.store.bootJobs.get(opts.jobId);
    if (existing) return existing;
    const macs = node.macs.map((m) => m.mac.toLowerCase());
    if (macs.length === 0) throw new Error(`node ${node.name} has no MAC in the config (nodes[].macs): the boot server could not tell it from another`);
    const document = buildDocument(opts.jobId, job, this.d.config().networks);
    const now = this.isoNow();
    const row: BootJob = {
      job_id: opts.jobId,
      token: this.newToken(),
      node_id: node.id,
      instance_id: job.instance_id,
      operation: job.operation,
      macs,
      document: document as unknown as Record<string, unknown>,
      state: 'issued',
      progress: 0,
      message: null,
      deadline_at: opts.deadlineAt,
      created_at: now,
      updated_at: now,
    };
    this.d.store.transaction(() => {
      for (const other of this.d.store.bootJobs.openOfNode(node.id)) this.put({ ...other, state: 'revoked', message: `replaced by job ${opts.jobId}` });
      this.d.store.bootJobs.put(row);
    });
    return row;
  }

  /** Revokes the instance's open jobs; returns how many. */
  revoke(instanceId: string, reason: string): number {
    const open = this.d.store.bootJobs.openOfInstance(instanceId);
    this.d.store.transaction(() => {
      for (const j of open) this.put({ ...j, state: 'revoked', message: reason.slice(0, 4096) });
    });
    return open.length;
  }

  /** The job by id, `expired` if its deadline passed while it was open. */
  get(jobId: string): BootJob | null {
    return this.current(this.d.store.bootJobs.get(jobId));
  }

  /** The job waiting for a node with this MAC (state `issued`), or null. */
  issuedForMac(mac: string): BootJob | null {
    const j = this.current(this.d.store.bootJobs.issuedForMac(mac.toLowerCase()));
    return j?.state === 'issued' ? j : null;
  }

  /** The one-time fetch of the document: `issued` -> `fetched`. */
  fetch(token: string): BootJob {
    const j = this.open(token);
    if (j.state === 'fetched') throw new JobError(409, 'JOB_ALREADY_FETCHED', 'the job document was already fetched: it is given once');
    const next = { ...j, state: 'fetched' as const };
    this.put(next);
    return next;
  }

  progress(token: string, r: ProgressReport): BootJob {
    const j = this.open(token);
    if (j.state === 'issued') throw new JobError(409, 'JOB_NOT_FETCHED', 'progress before the job document was fetched');
    const next = { ...j, progress: Math.max(j.progress, Math.round(r.progress)), message: r.message ?? j.message };
    this.put(next);
    return next;
  }

  /** The first result counts; a success with another image checksum than the job's is recorded as a failure. */
  result(token: string, r: ResultReport): BootJob {
    const j = this.open(token);
    if (j.state === 'issued') throw new JobError(409, 'JOB_NOT_FETCHED', 'a result before the job document was fetched');
    const image = (j.document['image'] as { sha256: string } | null) ?? null;
    let next: BootJob;
    if (r.result === 'failure') {
      next = { ...j, state: 'failed', message: r.message?.trim() || 'the installer reported a failure without a message' };
    } else if (image && !r.image_sha256) {
      throw new JobError(400, 'BAD_REQUEST', 'image_sha256: required with a success of a job that writes an image');
    } else if (image && r.image_sha256!.toLowerCase() !== image.sha256) {
      next = { ...j, state: 'failed', message: `checksum mismatch: the installer wrote sha256 ${r.image_sha256!.toLowerCase()}, the image's is ${image.sha256}` };
    } else {
      next = { ...j, state: 'succeeded', progress: 100, message: r.message ?? null };
    }
    this.put(next);
    return next;
  }

  /**
   * Resolves when the job succeeded; rejects with what failed (the installer's message, a revocation, the
   * deadline, the abort). Progress reports reach `onProgress` (also the stored progress when the wait begins).
   */
  wait(jobId: string, opts: { signal: AbortSignal; onProgress: (p: number) => void }): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let lastProgress = -1;
      // The deadline's wake-up (the clock's sleep), cancelled when the wait ends.
      let timer: AbortController | null = null;
      let finished = false;
      const done = (err: Error | null) => {
        if (finished) return;
        finished = true;
        this.waiters.get(jobId)?.delete(check);
        if (this.waiters.get(jobId)?.size === 0) this.waiters.delete(jobId);
        timer?.abort();
        opts.signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = () => done(opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
      const check = () => {
        if (finished) return;
        let j: BootJob | null;
        try {
          j = this.get(jobId);
        } catch (e) {
          return done(e as Error);
        }
        if (!j) return done(new Error(`the installer job ${jobId} is unknown to the boot server (was it prepared?)`));
        if (j.progress !== lastProgress && j.progress > 0) {
          lastProgress = j.progress;
          opts.onProgress(j.progress);
        }
        switch (j.state) {
          case 'succeeded':
            return done(null);
          case 'failed':
            return done(new Error(`the installer reported a failure: ${j.message ?? ''}`));
          case 'revoked':
            return done(new Error(`the installer job was revoked: ${j.message ?? ''}`));
          case 'expired':
            return done(new Error(`the installer did not report a result by the deadline (timeouts.deploy); its job was ${j.progress}% done`));
          default:
            if (timer === null) {
              timer = new AbortController();
              this.d.clock.sleep(Math.max(0, j.deadline_at - this.d.clock.now()) + 1, timer.signal).then(check, () => undefined);
            }
        }
      };
      if (opts.signal.aborted) return onAbort();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      let set = this.waiters.get(jobId);
      if (!set) this.waiters.set(jobId, (set = new Set()));
      set.add(check);
      check();
    });
  }

  // --- plumbing ------------------------------------------------------------------------------------------------

  /** The open job of a token, or the protocol's refusal. */
  private open(token: string): BootJob {
    const j = this.current(this.d.store.bootJobs.byToken(token));
    if (!j) throw new JobError(404, 'NO_JOB', 'no job has this token');
    if (j.state === 'revoked' || j.state === 'expired') throw new JobError(410, 'JOB_GONE', `the job was ${j.state}`);
    if (!OPEN.has(j.state)) throw new JobError(409, 'JOB_FINISHED', `the job already has its result (${j.state})`);
    return j;
  }

  private current(j: BootJob | null): BootJob | null {
    if (!j || !OPEN.has(j.state) || this.d.clock.now() < j.deadline_at) return j;
    const expired: BootJob = { ...j, state: 'expired', message: `no result by the deadline (${new Date(j.deadline_at).toISOString()})` };
    this.put(expired);
    return expired;
  }

  private put(j: BootJob): void {
    const row = { ...j, updated_at: this.isoNow() };
    this.d.store.bootJobs.put(row);
    for (const w of [...(this.waiters.get(j.job_id) ?? [])]) queueMicrotask(w);
  }

  private isoNow(): string {
    return new Date(this.d.clock.now()).toISOString();
  }
}
