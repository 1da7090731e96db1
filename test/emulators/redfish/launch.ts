/**
 * Test helpers around the emulator: start it as a real child process (the built dist/ program) and talk to it over
 * HTTP(S) with the test CA, both the Redfish side and the /emulator/ control side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest, type Agent as HttpAgent } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { resolve } from 'node:path';
import type { Faults, SystemDump, SystemProfile } from './model.js';

/** The built program: from the source tree, dist/'s; built into dist/ itself (the bench's drivers section), its neighbour. */
const BUILT = resolve(import.meta.dirname, '../../../dist/test/emulators/redfish/main.js');
export const EMULATOR_MAIN = existsSync(BUILT) ? BUILT : [resolve(import.meta.dirname, 'main.js')].find((p) => existsSync(p)) ?? BUILT;

export interface EmulatorProcess {
  url: string;
  caFile: string | null;
  username: string;
  password: string;
  credentialsFile: string;
  child: ChildProcess;
  stderr(): string;
  /** SIGTERM, then SIGKILL after 2 s; resolves with the exit code (null when killed by a signal). */
  stop(): Promise<number | null>;
}

/** Spawns `node dist/test/emulators/redfish/main.js ARGS` and waits for its listening line. */
export async function launchEmulator(args: string[], timeoutMs = 15_000): Promise<EmulatorProcess> {
  if (!existsSync(EMULATOR_MAIN)) throw new Error(`${EMULATOR_MAIN} is missing: run \`npm run build\` first (npm test does)`);
  const child = spawn(process.execPath, [EMULATOR_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 2_000);
    const code = await exited;
    clearTimeout(t);
    return code;
  };
  try {
    const line = await new Promise<{ url: string; caFile: string | null; credentials: string }>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`emulator did not print its listening line in ${timeoutMs} ms:\n${out}\n${err}`)), timeoutMs);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const first = out.split('\n').find((l) => l.includes('"listening"'));
        if (!first) return;
        clearTimeout(timer);
        res(JSON.parse(first) as { url: string; caFile: string | null; credentials: string });
      });
      void exited.then((code) => {
        clearTimeout(timer);
        rej(new Error(`emulator exited with ${code} before listening:\n${out}\n${err}`));
      });
    });
    const creds = JSON.parse(readFileSync(line.credentials, 'utf8')) as { username: string; password: string };
    return { url: line.url, caFile: line.caFile, username: creds.username, password: creds.password, credentialsFile: line.credentials, child, stderr: () => err, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface EmuResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text: string;
}

/**
 * One request to the emulator (Redfish or control side); `ca` is the test CA's PEM for https. Without `agent`, a new
 * connection per request; pass a keep-alive agent (with the CA in its options) to reuse connections.
 */
export function emuRequest(url: string, method: string, path: string, o: { ca?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number; agent?: HttpAgent } = {}): Promise<EmuResponse> {
  const u = new URL(path, url);
  const data = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  const headers: Record<string, string> = { ...(data !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(data)) } : {}), ...o.headers };
  const req = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((res, rej) => {
    const r = req(u, { method, headers, agent: o.agent ?? false, ...(o.ca ? { ca: o.ca } : {}), timeout: o.timeoutMs ?? 10_000 }, (resp) => {
      let text = '';
      resp.setEncoding('utf8');
      resp.on('data', (c: string) => (text += c));
      resp.on('end', () => {
        let body: unknown = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch {
          body = text;
        }
        res({ status: resp.statusCode ?? 0, headers: resp.headers, body, text });
      });
    });
    r.on('timeout', () => r.destroy(new Error(`${method} ${path}: no answer in ${o.timeoutMs ?? 10_000} ms`)));
    r.on('error', rej);
    if (data !== undefined) r.write(data);
    r.end();
  });
}

/** Basic auth header value. */
export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** What `GET /emulator/stats` answers. */
export interface EmulatorStats {
  systems: number;
  sessions: number;
  logins: number;
  /** Requests answered 401 so far: refused logins, Basic credentials or tokens, dropped sessions. */
  authRefused: number;
  rssBytes: number;
  heapUsedBytes: number;
  cpuMs: number;
  /** /redfish requests since start or the last resetStats(), open now, and the most open at once. */
  requests: number;
  inFlight: number;
  maxInFlight: number;
}

/** The test-only control side of an emulator (docs/emulators.md), typed. Each call throws on a non-2xx answer. */
export interface EmulatorControl {
  system(id: string): Promise<SystemDump>;
  systems(): Promise<{ id: string; powerState: string; reads: number }[]>;
  /** Replaces the faults. */
  setFaults(f: Faults): Promise<Faults>;
  /** Merges into the faults. */
  addFaults(f: Faults): Promise<Faults>;
  clearFaults(): Promise<Faults>;
  /** Test setup: power set at once (no log entry) and/or profile settings. */
  configure(id: string, settings: { powerState?: 'On' | 'Off' } & Partial<SystemProfile>): Promise<SystemDump>;
  stats(): Promise<EmulatorStats>;
  /** Zeroes `requests` and brings `maxInFlight` down to what is open now. */
  resetStats(): Promise<EmulatorStats>;
  /** Serves this key and certificate (PEM) from now on; the open connections (but the one asking) are closed. */
  setTls(key: string, cert: string): Promise<{ changed: true }>;
}

export function emulatorControl(url: string, ca?: string): EmulatorControl {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await emuRequest(url, method, path, { ...(ca ? { ca } : {}), ...(body !== undefined ? { body } : {}) });
    if (r.status < 200 || r.status > 299) throw new Error(`emulator control ${method} ${path}: ${r.status} ${r.text}`);
    return r.body as T;
  };
  return {
    system: (id) => call('GET', `/emulator/systems/${encodeURIComponent(id)}`),
    systems: () => call('GET', '/emulator/systems'),
    setFaults: (f) => call('PUT', '/emulator/faults', f),
    addFaults: (f) => call('PATCH', '/emulator/faults', f),
    clearFaults: () => call('DELETE', '/emulator/faults'),
    configure: (id, settings) => call('PATCH', `/emulator/systems/${encodeURIComponent(id)}`, settings),
    stats: () => call('GET', '/emulator/stats'),
    resetStats: () => call('DELETE', '/emulator/stats'),
    setTls: (key, cert) => call('PUT', '/emulator/tls', { key, cert }),
  };
}
