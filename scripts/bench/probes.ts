/**
 * What the bench reads and drives: HTTP load at a fixed concurrency over keep-alive sockets, a process's CPU time
 * and RSS from /proc, the event loop's delay, and the store's commits counted from its WAL file.
 */
import { readFileSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  perSecond: number;
}

/** One keep-alive GET; resolves with the status code (the body is read and dropped). */
export function get(agent: Agent, base: URL, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: base.hostname, port: base.port, path, method: 'GET', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * `concurrency` loops each sending the next request when its previous one answered, for `durationMs` after a
 * warm-up of `warmupMs` (not counted). A status other than 200 counts as an error.
 */
export async function loadGet(url: string, path: string, opts: { concurrency: number; durationMs: number; warmupMs?: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const base = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const warmupEnd = performance.now() + (opts.warmupMs ?? 300);
  const end = warmupEnd + opts.durationMs;
  let requests = 0;
  let errors = 0;
  const loop = async () => {
    for (;;) {
      const t = performance.now();
      if (t >= end) return;
      const status = await get(agent, base, path, opts.headers).catch(() => 0);
      if (t < warmupEnd) continue;
      requests++;
      if (status !== 200) errors++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  agent.destroy();
  const seconds = opts.durationMs / 1000;
  return { requests, errors, seconds, perSecond: requests / seconds };
}

/** user+system CPU time of a process, ms (/proc/<pid>/stat, clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)), so indices 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** VmRSS and VmHWM (peak) of a process, MiB. */
export function rssMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

export interface LoopDelay {
  maxMs: number;
  p99Ms: number;
}

/** Event-loop delay of this process while `fn` runs (1 ms resolution). */
export async function withLoopDelay<T>(fn: () => Promise<T>): Promise<{ value: T; delay: LoopDelay; wallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  const value = await fn();
  const wallMs = performance.now() - t0;
  // One more turn so a block at the very end is sampled.
  await new Promise((r) => setTimeout(r, 5));
  h.disable();
  return { value, wallMs, delay: { maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 } };
}

/**
 * Commits in a SQLite WAL file so far in its current generation: frames whose header carries the WAL header's salts
 * and a non-zero "database size after commit" (one per committed transaction). With synchronous=FULL each commit is
 * one fsync of the WAL. Returns the salt too: a change means the WAL was restarted after a checkpoint.
 */
export function walCommits(walPath: string): { salt: string; commits: number } {
  let fd: number;
  try {
    fd = openSync(walPath, 'r');
  } catch {
    return { salt: '', commits: 0 };
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 32) return { salt: '', commits: 0 };
    const buf = Buffer.alloc(size);
    readSync(fd, buf, 0, size, 0);
    const pageSize = buf.readUInt32BE(8);
    const s1 = buf.readUInt32BE(16);
    const s2 = buf.readUInt32BE(20);
    let commits = 0;
    for (let off = 32; off + 24 + pageSize <= size; off += 24 + pageSize) {
      if (buf.readUInt32BE(off + 8) !== s1 || buf.readUInt32BE(off + 12) !== s2) break;
      if (buf.readUInt32BE(off + 4) !== 0) commits++;
    }
    return { salt: `${s1}:${s2}`, commits };
  } finally {
    closeSync(fd);
  }
}

/** Counts commits to the WAL while sampling it every `everyMs` (a WAL restart between samples loses at most that slice). */
export class CommitCounter {
  private last: { salt: string; commits: number };
  private total = 0;
  private timer: NodeJS.Timeout;
  constructor(private readonly walPath: string, everyMs = 100) {
    this.last = walCommits(walPath);
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  private sample(): void {
    const now = walCommits(this.walPath);
    this.total += now.salt === this.last.salt ? Math.max(0, now.commits - this.last.commits) : now.commits;
    this.last = now;
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.total;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
