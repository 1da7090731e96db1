/**
 * The reference controller (scripts/controller/, docs/controller.md) run as a child process (dist/, built by
 * `npm run build`), driven by a scripted agent written here: a ws client speaking the protocol through
 * agent/upstream/protocol.ts's types, each answer read back with parseMessage({from: 'controller'}).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Ctl, startController } from '../helpers/controller.js';
import { type CommandResult, type Event, type Hello, type Message } from '../../agent/upstream/protocol.js';
import { parseMessage } from '../../agent/upstream/parse.js';

const AGENT = 'rack-a12';
const STORE = '0f6c2d9e-8a4b-4c1d-9e2f-3a5b7c9d1e2f';
const INSTANCE = 'cbce6087-6156-453c-a512-60bf3d75d69f';
const NODE = '1b8c5f0e-0000-4000-8000-000000000001';
const TOKEN = 'test-token-5d8b99310e6c';

let dir: string;
let running: Ctl[] = [];
let clients: Agent[] = [];

async function startCtl(extra: string[] = [], db = join(dir, 'ctl.db')): Promise<Ctl> {
  const c = await startController({ db, tokenFile: join(dir, 'tokens'), extra });
  running.push(c);
  return c;
}

/** The scripted agent: a ws client that collects the controller's messages, each parsed as the agent would. */
class Agent {
  readonly got: Message[] = [];
  closeCode: number | null = null;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const r = parseMessage(d.toString('utf8'), { from: 'controller' });
      if (!r.ok) throw new Error(`the controller sent an invalid message: ${r.message}`);
      this.got.push(r.message);
    });
    ws.on('close', (code) => (this.closeCode = code));
  }
  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }
  async next<T extends Message['type']>(type: T, pred: (m: Extract<Message, { type: T }>) => boolean = () => true, ms = 5000): Promise<Extract<Message, { type: T }>> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.got.findIndex((m) => m.type === type && pred(m as Extract<Message, { type: T }>));
      if (i >= 0) return this.got.splice(i, 1)[0] as Extract<Message, { type: T }>;
      if (Date.now() > end) throw new Error(`no ${type} in ${ms} ms; got: ${JSON.stringify(this.got)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  async closed(ms = 5000): Promise<number> {
    const end = Date.now() + ms;
    while (this.closeCode === null) {
      if (Date.now() > end) throw new Error('the link was not closed');
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.closeCode;
  }
}

async function connect(c: Ctl, token: string | null = TOKEN, scheme = 'ws', ca?: Buffer): Promise<Agent> {
  const ws = new WebSocket(`${scheme}://127.0.0.1:${c.port}/v1/agents`, {
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    perMessageDeflate: false,
    ...(ca === undefined ? {} : { ca }),
  });
  const a = new Agent(ws);
  clients.push(a);
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('unexpected-response', (_req, resp) => rej(new Error(`upgrade refused: ${resp.statusCode}`)));
    ws.once('error', rej);
  });
  return a;
}

function hello(over: Partial<Hello> = {}, snapshotSeq = 0): Hello {
  return {
    type: 'hello', version: 1, agent_id: AGENT, store_id: STORE, agent_version: '0.1.0', generation: 0, outbox_first_seq: 1,
    inventory: {
      hostname: AGENT, os: { platform: 'linux', distro: null, release: null, kernel: null, arch: 'x64' },
      system: { manufacturer: null, model: null, serial: null, uuid: null }, cpu: { brand: null, cores: 2, physical_cores: null },
      memory_bytes: 0, interfaces: [],
    },
    snapshot: { seq: snapshotSeq, taken_at: new Date().toISOString(), nodes: [], instances: [] },
    ...over,
  };
}

function event(seq: number, over: Record<string, unknown> = {}): Event {
  return {
    type: 'event', version: 1, agent_id: AGENT, seq, at: new Date().toISOString(), kind: 'instance.power',
    instance_id: INSTANCE, node_id: NODE, cause: 'drift', data: { power_state: seq % 2 === 0 ? 'on' : 'off' }, ...over,
  } as Event;
}

/** What the controller's file holds: (agent_id, seq) rows and the place. */
function held(db = join(dir, 'ctl.db')): { seqs: number[]; place: number | null } {
  const d = new Database(db, { readonly: true });
  try {
    const seqs = (d.prepare('SELECT seq FROM events WHERE agent_id = ? ORDER BY seq').all(AGENT) as { seq: number }[]).map((r) => r.seq);
    const row = d.prepare('SELECT place FROM agents WHERE agent_id = ?').get(AGENT) as { place: number } | undefined;
    return { seqs, place: row?.place ?? null };
  } finally {
    d.close();
  }
}

async function greeted(c: Ctl, h: Hello = hello()): Promise<{ a: Agent; resume_from: number; generation: number }> {
  const a = await connect(c);
  a.send(h);
  const w = await a.next('welcome');
  return { a, resume_from: w.resume_from, generation: w.generation };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ctl-test-'));
  writeFileSync(join(dir, 'tokens'), `# test tokens\n${TOKEN} ${AGENT}\nany-agent-token\n`);
});

afterEach(async () => {
  for (const a of clients) a.ws.terminate();
  for (const c of running) await c.kill();
  clients = [];
  running = [];
  rmSync(dir, { recursive: true, force: true });
});

describe('reference controller', () => {
  it('hello -> welcome with resume_from 1 and its generation; events in order are kept once, acked, printed', async () => {
    const c = await startCtl(['--generation', '3']);
    const { a, resume_from, generation } = await greeted(c);
    expect({ resume_from, generation }).toEqual({ resume_from: 1, generation: 3 });
    for (let s = 1; s <= 5; s++) a.send(event(s));
    await a.next('ack', (m) => m.seq === 5);
    expect(held()).toEqual({ seqs: [1, 2, 3, 4, 5], place: 5 });
    await c.waitFor('event', (l) => l.seq === 5);
    expect(c.of('event').map((l) => [l.seq, l.kind, l.agent_id])).toEqual([1, 2, 3, 4, 5].map((s) => [s, 'instance.power', AGENT]));
    // Acks are cumulative and never beyond what is kept.
    for (const m of a.got.filter((x) => x.type === 'ack')) expect((m as { seq: number }).seq).toBeLessThanOrEqual(5);
  });

  it('--timing: every event line says when its frame arrived (ms since the epoch, between the send and the ack)', async () => {
    const c = await startCtl(['--timing']);
    const { a } = await greeted(c);
    const sentAt = performance.timeOrigin + performance.now();
    for (let s = 1; s <= 3; s++) a.send(event(s));
    await a.next('ack', (m) => m.seq === 3);
    const ackedAt = performance.timeOrigin + performance.now();
    await c.waitFor('event', (l) => l.seq === 3);
    for (const l of c.of('event')) {
      expect(typeof l.received_ms).toBe('number');
      expect(l.received_ms as number).toBeGreaterThanOrEqual(sentAt - 1);
      expect(l.received_ms as number).toBeLessThanOrEqual(ackedAt + 1);
    }
  });

  it('a hello whose outbox starts later (older seqs trimmed) is welcomed from outbox_first_seq, the rest covered', async () => {
    const c = await startCtl();
    const { resume_from } = await greeted(c, hello({ outbox_first_seq: 10 }, 12));
    expect(resume_from).toBe(10);
    await c.waitFor('covered', (l) => l.from_seq === 1 && l.to_seq === 9 && l.by === 'outbox_first_seq');
  });

  it('a new store_id starts a new place at seq 1 (the old store\'s events are kept apart)', async () => {
    const c = await startCtl();
    const { a } = await greeted(c);
    for (let s = 1; s <= 3; s++) a.send(event(s));
    await a.next('ack', (m) => m.seq === 3);
    a.ws.terminate();
    const r = await greeted(c, hello({ store_id: '7d3c1b2a-9e8f-4a6b-8c5d-1e2f3a4b5c6d' }));
    expect(r.resume_from).toBe(1);
    await c.waitFor('hello', (l) => l.new_store === true);
    r.a.send(event(1));
    await r.a.next('ack', (m) => m.seq === 1);
    expect(held().place).toBe(1);
  });

  it('a second link of the same agent replaces the first (closed with 4001); events go on on the new one', async () => {
    const c = await startCtl();
    const first = await greeted(c);
    first.a.send(event(1));
    await first.a.next('ack', (m) => m.seq === 1);
    const second = await greeted(c);
    expect(second.resume_from).toBe(2);
    expect(await first.a.closed()).toBe(4001);
    second.a.send(event(2));
    await second.a.next('ack', (m) => m.seq === 2);
    expect(held()).toEqual({ seqs: [1, 2], place: 2 });
  });

  it('a link silent for --idle-close is terminated; one whose agent pings stays', async () => {
    const c = await startCtl(['--idle-close', '1']);
    const silent = await greeted(c);
    const pinging = { a: await connect(c, 'any-agent-token') };
    pinging.a.send(hello({ agent_id: 'rack-b07' }));
    await pinging.a.next('welcome');
    const pinger = setInterval(() => pinging.a.ws.ping(), 200);
    try {
      expect(await silent.a.closed(5000)).toBe(1006);
      await c.waitFor('idle', (l) => l.agent_id === AGENT);
      await new Promise((r) => setTimeout(r, 1500));
      expect(pinging.a.closeCode).toBeNull();
      expect(c.of('idle').map((l) => l.agent_id)).toEqual([AGENT]);
    } finally {
      clearInterval(pinger);
    }
  });

  it('an event its store fails to keep is not acked: the link is closed (1011) and the next welcome asks for it again', async () => {
    const c = await startCtl();
    const { a } = await greeted(c);
    // Another writer holds the file's write lock past the controller's busy timeout (5 s): its commit fails.
    const locker = new Database(join(dir, 'ctl.db'));
    locker.exec('BEGIN IMMEDIATE');
    try {
      a.send(event(1));
      expect(await a.closed(10_000)).toBe(1011);
      await c.waitFor('store-error', () => true, 10_000);
      expect(a.got.filter((m) => m.type === 'ack')).toEqual([]);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
    expect(held()).toEqual({ seqs: [], place: 0 });
    expect(c.of('event')).toEqual([]);
    expect((await greeted(c)).resume_from).toBe(1);
  });

  it('compression is refused even when the agent offers it; a frame over 16 MiB closes the link with 1009 before it is held', async () => {
    const c = await startCtl();
    const ws = new WebSocket(`ws://127.0.0.1:${c.port}/`, { headers: { authorization: `Bearer ${TOKEN}` }, perMessageDeflate: true });
    const a = new Agent(ws);
    clients.push(a);
    await new Promise((r) => ws.once('open', r));
    expect(ws.extensions).toBe('');
    a.send({ ...hello(), pad: 'x'.repeat(16 * 1024 * 1024) });
    expect(await a.closed(10_000)).toBe(1009);
    expect(a.got).toEqual([]);
  });

  it('a repeated seq is acked and not kept twice', async () => {
    const c = await startCtl();
    const { a } = await greeted(c);
    for (const s of [1, 2, 3]) a.send(event(s));
    await a.next('ack', (m) => m.seq === 3);
    a.send(event(2));
    a.send(event(3));
    await a.next('ack', (m) => m.seq === 3);
    await c.waitFor('duplicate', (l) => l.seq === 3);
    expect(held().seqs).toEqual([1, 2, 3]);
    expect(c.of('event').map((l) => l.seq)).toEqual([1, 2, 3]);
  });

  it('a gap is not kept: resync, and the next hello is answered from its snapshot (seqs it covers printed)', async () => {
    const c = await startCtl();
    const { a } = await greeted(c);
    a.send(event(1));
    a.send(event(2));
    await a.next('ack', (m) => m.seq === 2);
    a.send(event(5));
    const rs = await a.next('resync');
    expect(rs.reason).toMatch(/gap: expected seq 3, got 5/);
    await c.waitFor('gap', (l) => l.expected === 3 && l.got === 5);
    expect(held()).toEqual({ seqs: [1, 2], place: 2 });
    // Sent before the agent read the resync: dropped (it sends again after the welcome).
    a.send(event(3));
    a.send(hello({}, 7));
    expect((await a.next('welcome')).resume_from).toBe(8);
    await c.waitFor('covered', (l) => l.from_seq === 3 && l.to_seq === 7);
    a.send(event(8));
    await a.next('ack', (m) => m.seq === 8);
    expect(held()).toEqual({ seqs: [1, 2, 8], place: 8 });
  });

  it('an outbox.folded marker is kept and answered with resync', async () => {
    const c = await startCtl();
    const { a } = await greeted(c);
    a.send(event(1, { kind: 'outbox.folded', data: { from_seq: 1, count: 1 } }));
    expect((await a.next('resync')).reason).toBe(`outbox.folded for instance ${INSTANCE}`);
    await a.next('ack', (m) => m.seq === 1);
    expect(held().seqs).toEqual([1]);
    a.send(hello({}, 4));
    expect((await a.next('welcome')).resume_from).toBe(5);
  });

  it('invalid, oversized, unknown-type and early messages get an error, nothing is kept, the link stays; another agent\'s event closes it', async () => {
    const c = await startCtl();
    const a = await connect(c);
    a.send(event(1)); // before hello
    expect(await a.next('error')).toMatchObject({ code: 'PROTO_ERR_UNEXPECTED', fatal: false, in_reply_to: { type: 'event', seq: 1 } });
    a.send(hello());
    await a.next('welcome');
    const cases: [string, string][] = [
      ['{"type": "event", ', 'PROTO_ERR_MALFORMED'],
      [JSON.stringify({ ...event(1), pad: 'x'.repeat(1024 * 1024) }), 'PROTO_ERR_TOO_LARGE'],
      [JSON.stringify({ type: 'snapshot', version: 1 }), 'PROTO_ERR_UNKNOWN_TYPE'],
      [JSON.stringify(event(1, { data: { power_state: 'sideways' } })), 'PROTO_ERR_SCHEMA'],
      [JSON.stringify({ type: 'ack', version: 1, seq: 1 }), 'PROTO_ERR_UNEXPECTED'],
    ];
    for (const [frame, code] of cases) {
      a.send(frame);
      expect((await a.next('error')).code).toBe(code);
      await c.waitFor('error-sent', (l) => l.code === code);
    }
    expect(c.of('event')).toEqual([]);
    expect(held().seqs).toEqual([]);
    a.send(event(1)); // the link is still up and takes a valid event
    await a.next('ack', (m) => m.seq === 1);
    expect(held().seqs).toEqual([1]);
    // Another agent's event on this link: refused and fatal (docs/protocol.md), not kept.
    a.send(event(2, { agent_id: 'rack-b07' }));
    expect(await a.next('error')).toMatchObject({ code: 'PROTO_ERR_AGENT_MISMATCH', fatal: true, in_reply_to: { seq: 2 } });
    expect(await a.closed()).toBe(4000);
    expect(held().seqs).toEqual([1]);
  });

  it('an unknown protocol version or an invalid hello is a fatal error: the link is closed with 4000', async () => {
    const c = await startCtl();
    const a = await connect(c);
    a.send({ ...hello(), version: 2 });
    const e = await a.next('error');
    expect(e).toMatchObject({ code: 'PROTO_ERR_UNKNOWN_VERSION', fatal: true, supported_versions: [1] });
    expect(await a.closed()).toBe(4000);
    const b = await connect(c);
    b.send({ ...hello(), store_id: 'not-a-uuid' });
    expect(await b.next('error')).toMatchObject({ code: 'PROTO_ERR_SCHEMA', fatal: true, path: '/store_id' });
    expect(await b.closed()).toBe(4000);
    expect(held().place).toBeNull();
  });

  it('a wrong or missing token is refused at the upgrade with 401; a token bound to another agent gets AGENT_MISMATCH', async () => {
    const c = await startCtl();
    await expect(connect(c, 'wrong-token')).rejects.toThrow('upgrade refused: 401');
    await expect(connect(c, null)).rejects.toThrow('upgrade refused: 401');
    await c.waitFor('refused', (l) => l.reason === 'token');
    // Clients that reset the connection right after the refused upgrade do not bring the controller down.
    for (let i = 0; i < 20; i++) {
      const sock = net.connect(c.port, '127.0.0.1');
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer nope\r\n\r\n');
      sock.resetAndDestroy();
    }
    await new Promise((r) => setTimeout(r, 300));
    const a = await connect(c);
    a.send(hello({ agent_id: 'rack-b07' }));
    expect(await a.next('error')).toMatchObject({ code: 'PROTO_ERR_AGENT_MISMATCH', fatal: true });
    // An unbound token takes any agent.
    const b = await connect(c, 'any-agent-token');
    b.send(hello({ agent_id: 'rack-b07' }));
    expect((await b.next('welcome')).agent_id).toBe('rack-b07');
  });

  it('killed and started on the same --db, it answers the stored place; --rewind-to makes it ask from an older seq', async () => {
    const c1 = await startCtl();
    const { a } = await greeted(c1);
    for (let s = 1; s <= 4; s++) a.send(event(s));
    await a.next('ack', (m) => m.seq === 4);
    await c1.kill('SIGKILL');
    const c2 = await startCtl();
    expect((await greeted(c2)).resume_from).toBe(5);
    await c2.kill('SIGKILL');
    const c3 = await startCtl(['--rewind-to', '3', '--agent', AGENT]);
    await c3.waitFor('rewind', (l) => l.resume_from === 3 && l.forgotten === 2);
    const r = await greeted(c3);
    expect(r.resume_from).toBe(3);
    r.a.send(event(3));
    r.a.send(event(4));
    await r.a.next('ack', (m) => m.seq === 4);
    expect(held()).toEqual({ seqs: [1, 2, 3, 4], place: 4 });
  });

  it('rewind from its command line: a connected agent gets resync, and the new hello is welcomed from the older seq', async () => {
    const c = await startCtl();
    const { a } = await greeted(c);
    for (let s = 1; s <= 4; s++) a.send(event(s));
    await a.next('ack', (m) => m.seq === 4);
    c.input(`rewind ${AGENT} 2`);
    expect((await a.next('resync')).reason).toBe('rewind to 2');
    // In flight before the agent read the resync: dropped, and the rewind still stands (no gap, no cover).
    a.send(event(5));
    a.send(hello({}, 5));
    expect((await a.next('welcome')).resume_from).toBe(2);
    for (let s = 2; s <= 4; s++) a.send(event(s));
    await a.next('ack', (m) => m.seq === 4);
    expect(held()).toEqual({ seqs: [1, 2, 3, 4], place: 4 });
    expect(c.of('event').map((l) => l.seq)).toEqual([1, 2, 3, 4, 2, 3, 4]);
    expect(c.of('gap')).toEqual([]);
  });

  it('a command from its command line reaches the agent with a fresh command_id; the result is printed; pending ones are sent again on reconnect', async () => {
    const c = await startCtl(['--generation', '3']);
    const { a } = await greeted(c);
    c.input(`command ${AGENT} node.maintenance {"node_id":"${NODE}","maintenance":true,"reason":"DIMM"}`);
    const cmd = await a.next('command');
    expect(cmd.command_id).toMatch(/^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(cmd).toMatchObject({ generation: 3, command: { op: 'node.maintenance', node_id: NODE, maintenance: true, reason: 'DIMM' } });
    c.input(`command ${AGENT} node.power {"node_id":"${NODE}","target":"on"}`);
    const second = await a.next('command');
    expect(second.command_id).not.toBe(cmd.command_id);
    const result: CommandResult = {
      type: 'command-result', version: 1, command_id: cmd.command_id, status: 'done', repeat: false, request_id: null,
      instance_id: null, node_id: NODE, already: false, error: null,
    };
    a.send(result);
    const line = await c.waitFor('command-result', (l) => l.command_id === cmd.command_id);
    expect(line).toMatchObject({ agent_id: AGENT, status: 'done', known: true, node_id: NODE });
    // The second has no result yet: after a reconnect it is sent again with the same id, the first is not.
    a.ws.terminate();
    const b = (await greeted(c)).a;
    const again = await b.next('command');
    expect(again.command_id).toBe(second.command_id);
    await new Promise((r) => setTimeout(r, 200));
    expect(b.got.filter((m) => m.type === 'command')).toEqual([]);
    // A command line the protocol refuses is sent to no one.
    c.input(`command ${AGENT} node.power {"node_id":"${NODE}","target":"sideways"}`);
    await c.waitFor('input-error', (l) => /target/.test(String(l.message)));
    c.input(`command ${AGENT} node.power {not json`);
    await c.waitFor('input-error', (l) => /not JSON/.test(String(l.message)));
    await new Promise((r) => setTimeout(r, 200));
    expect(b.got.filter((m) => m.type === 'command')).toEqual([]);
    // resend: a command that has its result goes out again with the same id (exactly-once seen by hand); an id it
    // never sent is refused.
    c.input(`resend ${AGENT} ${cmd.command_id}`);
    const resent = await b.next('command');
    expect(resent).toEqual(cmd);
    c.input(`resend ${AGENT} req-00000000-0000-4000-8000-000000000000`);
    await c.waitFor('input-error', (l) => /no command req-00000000/.test(String(l.message)));
  });

  it('serves wss:// with --tls-cert/--tls-key', async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    if (r.status !== 0) throw new Error(`openssl (needed to make a test certificate) failed: ${r.stderr}`);
    const c = await startCtl(['--tls-cert', cert, '--tls-key', key]);
    expect(c.of('listening')[0]!.url).toMatch(/^wss:\/\//);
    const { readFileSync } = await import('node:fs');
    const a = await connect(c, TOKEN, 'wss', readFileSync(cert));
    a.send(hello());
    expect((await a.next('welcome')).resume_from).toBe(1);
    await expect(connect(c, TOKEN, 'wss')).rejects.toThrow(/self-signed|certificate/);
  });
});
