/**
 * Fixtures of the upstream link's tests: the agent's real store in a temp dir, the real reference controller
 * (scripts/controller/server.ts + store.ts) in-process, a raw ws server to misbehave with, a log that keeps its
 * lines, and the link built from them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { createLogger } from '../../../agent/log.js';
import { systemClock, type Clock } from '../../../agent/ports.js';
import { openStore, type SqliteStore } from '../../../agent/store/sqlite.js';
import { StoreHello, type InventoryT } from '../../../agent/upstream/hello.js';
import { UpstreamLink, type LinkOptions } from '../../../agent/upstream/link.js';
import { type Command, type CommandResult, type Message } from '../../../agent/upstream/protocol.js';
import { parseMessage } from '../../../agent/upstream/parse.js';
import type { CommandHandler } from '../../../agent/upstream/types.js';
import { Controller } from '../../../scripts/controller/server.js';
import { ControllerStore } from '../../../scripts/controller/store.js';

export const AGENT = 'rack-a12';
export const TOKEN = 'tok-7f3e9a1c55d24b0e8f6a2d3c4b5a6978';
export const INSTANCE = 'cbce6087-6156-453c-a512-60bf3d75d69f';

export const INVENTORY: InventoryT = {
  hostname: 'rack-a12',
  os: { platform: 'linux', distro: null, release: null, kernel: null, arch: 'x64' },
  system: { manufacturer: null, model: null, serial: null, uuid: null },
  cpu: { brand: null, cores: 2, physical_cores: null },
  memory_bytes: 0,
  interfaces: [],
};

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitUntil(pred: () => boolean, ms = 5000, what = 'the condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what} did not hold within ${ms} ms`);
    await sleep(10);
  }
}

/** Appends n instance.alive entries (in one transaction when many). */
export function append(store: SqliteStore, n: number, cause = 'test'): void {
  store.transaction(() => {
    for (let i = 0; i < n; i++) store.appendJournal({ kind: 'instance.alive', instance_id: INSTANCE, node_id: null, cause, data: { alive: i % 2 === 0 } });
  });
}

export class FakeCommands implements CommandHandler {
  readonly seen: Command[] = [];
  async handle(cmd: Command): Promise<CommandResult> {
    this.seen.push(cmd);
    return {
      type: 'command-result', version: 1, command_id: cmd.command_id, status: 'done', repeat: false, request_id: null,
      instance_id: null, node_id: null, already: false, error: null,
    };
  }
}

export interface Ctx {
  dir: string;
  store: SqliteStore;
  logs: string[];
  /** Stops everything made through the context (links, controllers, raw servers). */
  cleanups: (() => Promise<void> | void)[];
}

export function useLinkContext(): Ctx {
  const ctx = { dir: '', store: null as unknown as SqliteStore, logs: [] as string[], cleanups: [] as (() => Promise<void> | void)[] };
  beforeEach(() => {
    ctx.dir = mkdtempSync(join(tmpdir(), 'metald-link-'));
    ctx.store = openStore({ dir: join(ctx.dir, 'agent'), agentId: AGENT });
    ctx.logs = [];
    ctx.cleanups = [];
  });
  afterEach(async () => {
    for (const c of ctx.cleanups.splice(0).reverse()) await c();
    ctx.store.close();
    rmSync(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

export function makeLink(ctx: Ctx, url: string, over: Partial<LinkOptions> = {}): UpstreamLink {
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void ctx.logs.push(s) } });
  const store = (over.store ?? ctx.store) as LinkOptions['store'];
  const hello = new StoreHello({ store: ctx.store, agentId: AGENT, agentVersion: '0.1.0-test', clock: systemClock, inventory: async () => INVENTORY });
  const link = new UpstreamLink({
    url, ca: null, token: () => TOKEN, agentId: AGENT, store, hello, commands: new FakeCommands(), log, clock: systemClock,
    pingIntervalMs: 10_000, welcomeTimeoutMs: 5_000, backoffBaseMs: 20, backoffCapMs: 200, handshakeTimeoutMs: 2_000, retainAcked: 0,
    ...over,
  });
  ctx.cleanups.push(() => link.stop());
  return link;
}

export interface RunningController {
  ctl: Controller;
  store: ControllerStore;
  port: number;
  lines: Record<string, unknown>[];
  url: string;
  close(): Promise<void>;
}

/** The reference controller in-process, on `port` (0: any), with its SQLite file `db`. */
export async function startController(ctx: Ctx, o: { port?: number; db?: string; token?: string; generation?: number; tls?: { cert: Buffer; key: Buffer } } = {}): Promise<RunningController> {
  const store = new ControllerStore(o.db ?? join(ctx.dir, 'ctl.db'));
  const lines: Record<string, unknown>[] = [];
  const ctl = new Controller({
    store, tokens: [{ token: o.token ?? TOKEN, agent_id: AGENT }], generation: o.generation ?? 1, print: (l) => void lines.push(l),
    ...(o.tls === undefined ? {} : { tls: o.tls }), idleCloseMs: 0,
  });
  // A safety net: the reference controller once crashed on a client resetting its socket after a refused upgrade
  // (fixed in scripts/controller/server.ts, tested in test/scripts/controller.test.ts).
  (ctl as unknown as { server: import('node:http').Server }).server.on('connection', (s) => s.on('error', () => undefined));
  const addr = await ctl.listen('127.0.0.1', o.port ?? 0);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await ctl.close();
    store.close();
  };
  ctx.cleanups.push(close);
  return { ctl, store, port: addr.port, lines, url: `${o.tls === undefined ? 'ws' : 'wss'}://127.0.0.1:${addr.port}/v1/agents`, close };
}

/** One connection to the raw server, with what the agent sent on it. */
export class RawConn {
  readonly got: Message[] = [];
  readonly bad: string[] = [];
  closeCode: number | null = null;
  closeReason = '';
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const r = parseMessage(d.toString('utf8'), { from: 'agent' });
      if (r.ok) this.got.push(r.message);
      else this.bad.push(r.message);
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString('utf8');
    });
  }
  of<T extends Message['type']>(type: T): Extract<Message, { type: T }>[] {
    return this.got.filter((m) => m.type === type) as Extract<Message, { type: T }>[];
  }
  async next<T extends Message['type']>(type: T, ms = 5000): Promise<Extract<Message, { type: T }>> {
    await waitUntil(() => this.of(type).length > 0, ms, `a ${type} from the agent`);
    return this.of(type)[0]!;
  }
  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }
  welcome(resume_from: number, generation = 1): void {
    this.send({ type: 'welcome', version: 1, agent_id: AGENT, resume_from, generation });
  }
  async closed(ms = 5000): Promise<number> {
    await waitUntil(() => this.closeCode !== null, ms, 'the close of the link');
    return this.closeCode!;
  }
}

/** A bare ws server (port 0) that keeps every connection; `onConn` scripts it. */
export async function rawServer(ctx: Ctx, onConn: (c: RawConn) => void = () => undefined, opts: { autoPong?: boolean; port?: number } = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: opts.port ?? 0, perMessageDeflate: false, autoPong: opts.autoPong ?? true });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const conns: RawConn[] = [];
  wss.on('connection', (ws) => {
    const c = new RawConn(ws);
    conns.push(c);
    onConn(c);
  });
  const port = (wss.address() as AddressInfo).port;
  const close = async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
  };
  ctx.cleanups.push(close);
  return { wss, conns, port, url: `ws://127.0.0.1:${port}/`, close };
}

/** A clock that records every sleep and fires it at once (after a turn); sleeps of `holdOver` ms or more wait for abort. */
export function recordingClock(holdOver = 1e8): Clock & { sleeps: number[] } {
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason as Error);
        const onAbort = () => reject(signal?.reason as Error);
        signal?.addEventListener('abort', onAbort, { once: true });
        if (ms >= holdOver) return;
        sleeps.push(ms);
        setImmediate(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
      }),
  };
}
