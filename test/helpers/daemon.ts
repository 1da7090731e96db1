/**
 * Runs the real daemon (dist/agent/main.js, built by `npm test` before vitest) as a child process on a free port
 * with a temp state_dir, and talks to it over real HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const MAIN = resolve(import.meta.dirname, '../../dist/agent/main.js');
export const METALCTL = resolve(import.meta.dirname, '../../dist/agent/cli/metalctl.js');
/** TEST-ONLY build of the daemon with the file-driven store fault hook (scripts/test-metald-store-faults.ts). */
export const STORE_FAULT_MAIN = resolve(import.meta.dirname, '../../dist/scripts/test-metald-store-faults.js');

export function requireBuild(): void {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
}

export interface Daemon {
  url: string;
  child: ChildProcess;
  /** Everything the daemon printed so far. */
  stdout(): string;
  stderr(): string;
  /** GET/POST/... with the given token; parses JSON when there is a body. */
  call(method: string, path: string, token: string | null, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; body: unknown; text: string }>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `main` (default: the production daemon) with `env` added to this process's environment. `wrap`, when
 * given, is a command that execs node in place (e.g. `['ip', 'netns', 'exec', NS]`: the daemon inside a namespace).
 */
export async function startDaemon(configPath: string, env: Record<string, string> = {}, main: string = MAIN, wrap: readonly string[] = []): Promise<Daemon> {
  requireBuild();
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first (npm test does)`);
  const [cmd, ...pre] = [...wrap, process.execPath];
  const child = spawn(cmd!, [...pre, main, '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`daemon did not start in 20 s:\n${out}\n${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"api listening"')) continue;
        try {
          const j = JSON.parse(line) as { url: string };
          clearTimeout(timer);
          res(j.url);
        } catch {
          // partial line
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`daemon exited with ${code} before listening:\n${out}\n${err}`));
    });
  });
  const d: Daemon = {
    url,
    child,
    stdout: () => out,
    stderr: () => err,
    async call(method, path, token, body, headers = {}) {
      const h: Record<string, string> = { ...headers };
      if (token) h['X-Auth-Token'] = token;
      if (body !== undefined) h['Content-Type'] = 'application/json';
      const res = await fetch(url + path, { method, headers: h, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
      const text = await res.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = text;
      }
      return { status: res.status, headers: res.headers, body: parsed, text };
    },
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
  await waitFor(async () => (await d.call('GET', '/readyz', null)).status === 200, 20_000, 'daemon ready');
  return d;
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function stateDirOf(dir: string): string {
  return join(dir, 'state');
}
