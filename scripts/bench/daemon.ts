/**
 * The real daemon (dist/agent/main.js) as a child process: spawn, time to the `ready` log line, stop by signal.
 * Its output is scanned line by line for `api listening` and `ready`, and each line given to `onLine` if there is one
 * (else dropped).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

export const MAIN = resolve(import.meta.dirname, '../../agent/main.js');
export const PEER = resolve(import.meta.dirname, 'peer.js');

export interface Child {
  pid: number;
  url: string;
  /** Spawn to the `ready` log line (the daemon) or to listening (the peer), ms. */
  readyMs: number;
  child: ChildProcess;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Spawns `node script args` and resolves when `isReady(line)` first holds (`url(line)` gives the URL when it can). */
function spawnUntil(script: string, args: string[], isReady: (line: string) => boolean, urlOf: (line: string) => string | null, timeoutMs: number, nodeArgs: string[] = [], onLine?: (line: string) => void): Promise<Child> {
  if (!existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first (npm run bench does)`);
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let url = '';
  let rest = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  return new Promise<Child>((res, rej) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`${script} not ready in ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    let done = false;
    child.stdout!.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        onLine?.(line);
        if (done) continue;
        url ||= urlOf(line) ?? '';
        if (!isReady(line)) continue;
        done = true;
        clearTimeout(timer);
        res({
          pid: child.pid!,
          url,
          readyMs: performance.now() - t0,
          child,
          async stop(signal = 'SIGTERM') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            await exited;
          },
        });
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      if (!done) rej(new Error(`${script} exited before ready (${child.exitCode ?? child.signalCode}): ${err}`));
    });
  });
}

const field = (line: string, key: string): unknown => {
  if (!line.startsWith('{')) return undefined;
  try {
    return (JSON.parse(line) as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
};

/**
 * `nodeArgs`: options of node itself (before the script), e.g. the heap soak's `--heapsnapshot-signal`.
 * `METALD_BENCH_NODE_ARGS` (space-separated) adds more to every daemon spawned, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`
 * to profile the daemon under the bench's load (with `METALD_BUNDLE_MINIFY=0 npm run build` for readable names).
 */
export function spawnDaemon(configPath: string, timeoutMs = 120_000, nodeArgs: string[] = [], onLine?: (line: string) => void): Promise<Child> {
  const extra = (process.env['METALD_BENCH_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  return spawnUntil(
    MAIN,
    ['--config', configPath],
    (line) => line.includes('"ready"') && field(line, 'msg') === 'ready',
    (line) => (line.includes('"api listening"') ? ((field(line, 'url') as string | undefined) ?? null) : null),
    timeoutMs,
    [...nodeArgs, ...extra],
    onLine,
  );
}

export function spawnPeer(): Promise<Child> {
  return spawnUntil(PEER, [], (line) => field(line, 'port') !== undefined, (line) => {
    const port = field(line, 'port');
    return typeof port === 'number' ? `http://127.0.0.1:${port}` : null;
  }, 20_000);
}

/** One JSON request to a daemon with a token; the parsed body (null when empty). */
export async function call(url: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url + path, {
    method,
    headers: { 'X-Auth-Token': token, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}
