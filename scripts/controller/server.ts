/**
 * The reference controller's link handling (docs/controller.md, docs/protocol.md): accepts agents over a WebSocket
 * (bearer token checked at the upgrade, 401 otherwise), reads every frame with the agent's own `parseMessage`, answers
 * an invalid one with `error` and acts on nothing of it, dedupes events by (agent_id, seq), keeps them durably before
 * acking, and sends commands. What it sees goes out as one JSON line per fact through `print`.
 *
 * Gaps: events come in seq order from `resume_from`, so an event beyond place + 1 means the agent's journal lacks
 * seqs (folded by a full outbox) or the order broke. It is not kept; the controller sends `resync`, and on the next
 * hello takes its snapshot as covering everything up to `snapshot.seq` (docs/protocol.md, resync: "usually with
 * resume_from = snapshot.seq + 1"). An `outbox.folded` marker is kept and answered the same way.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { MAX_HELLO_BYTES, PROTOCOL_VERSION, type Command, type CommandBody, type ErrorMessage, type Event, type Hello, type Message, type ProtocolErrorCode } from '../../agent/upstream/protocol.js';
import { errorFor, parseMessage } from '../../agent/upstream/parse.js';
import type { ControllerStore } from './store.js';

/** One accepted bearer token, bound to one agent id or to any (null). */
export interface TokenEntry {
  token: string;
  agent_id: string | null;
}

export interface ControllerOptions {
  store: ControllerStore;
  tokens: TokenEntry[];
  generation: number;
  /** One line per fact (JSON); stdout in main.ts. */
  print: (line: Record<string, unknown>) => void;
  tls?: { cert: Buffer; key: Buffer };
  /** Most events kept in one commit before an ack (docs/protocol.md: ack at least every 1,000 events). */
  maxBatch?: number;
  /**
   * A link on which nothing (no frame, no ping) arrived for this long is terminated (docs/protocol.md: SHOULD close
   * after 3 ping intervals; 30 s for the agent's 10 s default). 0: never.
   */
  idleCloseMs?: number;
  /**
   * Adds `received_ms` to every `event` line: when its frame arrived (performance.timeOrigin + performance.now(), ms,
   * comparable with another process's on the same host): the bench's latency from the agent's commit to receipt.
   */
  timing?: boolean;
}

interface Link {
  ws: WebSocket;
  hello: Hello | null;
  /** The place as far as this link's events went (kept, or waiting in `pending` for the next commit). */
  place: number;
  pending: Event[];
  /** With `timing`: when each pending event's frame arrived, by seq. */
  receivedMs: Map<number, number>;
  /** With `timing`: when the frame being read arrived. */
  frameAt: number;
  ackDue: boolean;
  flushQueued: boolean;
  /**
   * A resync this controller sent and whose hello has not come yet: `cover` (a gap, a fold marker) takes the next
   * hello's snapshot as covering up to its seq; `plain` (a rewind, the operator's) does not. Events meanwhile were
   * sent before the agent read the resync: dropped, not acked (the agent sends them again after the welcome).
   */
  resyncing: 'cover' | 'plain' | null;
  closed: boolean;
  lastHeard: number;
}

const sha = (s: string) => createHash('sha256').update(s).digest();

/** The token of an `Authorization: Bearer ...` header matched against the file's entries (constant time). */
export function matchToken(header: string | undefined, tokens: TokenEntry[]): TokenEntry | null {
  const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(header ?? '');
  if (m === null) return null;
  const got = sha(m[1]!);
  return tokens.find((t) => timingSafeEqual(sha(t.token), got)) ?? null;
}

export class Controller {
  private readonly server: http.Server | https.Server;
  private readonly wss: WebSocketServer;
  private readonly links = new Set<Link>();
  private readonly byAgent = new Map<string, Link>();
  private readonly maxBatch: number;
  private readonly idleTimer: NodeJS.Timeout | null;

  constructor(private readonly o: ControllerOptions) {
    this.maxBatch = o.maxBatch ?? 1000;
    const idle = o.idleCloseMs ?? 30_000;
    this.idleTimer = idle <= 0 ? null : setInterval(() => this.closeIdle(idle), Math.max(100, Math.floor(idle / 4)));
    this.idleTimer?.unref();
    this.server = o.tls === undefined ? http.createServer() : https.createServer({ cert: o.tls.cert, key: o.tls.key });
    this.server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket upgrade required\n');
    });
    // The limit is the largest frame any message may have (a hello); parseMessage applies each type's own limit.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_HELLO_BYTES, perMessageDeflate: false });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      // Until ws owns the socket, its errors are ours: a client resetting it (after reading the 401, or before) must
      // not end the process with an uncaught ECONNRESET.
      const onSocketError = () => socket.destroy();
      socket.on('error', onSocketError);
      const entry = matchToken(req.headers.authorization, this.o.tokens);
      if (entry === null) {
        this.o.print({ what: 'refused', reason: 'token', remote: (socket as Socket).remoteAddress ?? null });
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('error', onSocketError);
        this.accept(ws, entry);
      });
    });
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    if (this.idleTimer !== null) clearInterval(this.idleTimer);
    for (const l of this.links) this.flush(l);
    // What was kept is on disk and acked before the links close.
    await this.o.store.durable()?.catch(() => undefined);
    for (const l of this.links) l.ws.close(1001, 'controller stopping');
    this.wss.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Sends a command to an agent (now if it is streaming, else after its next welcome); returns its command_id. */
  command(agentId: string, body: CommandBody): { ok: true; command_id: string } | { ok: false; message: string } {
    const message: Command = { type: 'command', version: PROTOCOL_VERSION, command_id: `req-${randomUUID()}`, generation: this.o.generation, command: body };
    const check = parseMessage(JSON.stringify(message), { from: 'controller' });
    if (!check.ok) return { ok: false, message: check.message };
    this.o.store.addCommand(agentId, message);
    const link = this.byAgent.get(agentId);
    const sent = link !== undefined && link.hello !== null && link.resyncing === null;
    if (sent) this.send(link, message);
    this.o.print({ what: 'command-sent', agent_id: agentId, command_id: message.command_id, op: body.op, queued: !sent });
    return { ok: true, command_id: message.command_id };
  }

  /**
   * Sends again, with its own command_id, a command this controller sent to the agent before (whether or not it has a
   * result): how an operator sees by hand that a repeat runs nothing (the agent answers the first result, `repeat`).
   */
  resend(agentId: string, commandId: string): { ok: true } | { ok: false; message: string } {
    const message = this.o.store.sentCommand(agentId, commandId);
    if (message === null) return { ok: false, message: `no command ${commandId} was sent to ${agentId}` };
    const link = this.byAgent.get(agentId);
    if (link === undefined || link.hello === null || link.resyncing !== null) return { ok: false, message: `agent ${agentId} is not connected` };
    this.send(link, message);
    this.o.print({ what: 'command-sent', agent_id: agentId, command_id: commandId, op: message.command.op, queued: false, resend: true });
    return { ok: true };
  }

  /** Moves an agent's place back to seq - 1; a connected agent is asked for a new hello, answered from there. */
  rewind(agentId: string, seq: number): boolean {
    const link = this.byAgent.get(agentId);
    if (link !== undefined) this.flush(link);
    const r = this.o.store.rewind(agentId, seq);
    if (r === null) return false;
    this.o.print({ what: 'rewind', agent_id: agentId, resume_from: seq, place_was: r.from, forgotten: r.forgotten });
    if (link !== undefined && link.hello !== null) {
      link.place = seq - 1;
      this.askResync(link, `rewind to ${seq}`, 'plain');
    }
    return true;
  }

  /** Asks a connected agent for a fresh snapshot; its next hello is answered from its snapshot's seq. */
  resync(agentId: string, reason: string): boolean {
    const link = this.byAgent.get(agentId);
    if (link === undefined || link.hello === null) return false;
    this.askResync(link, reason, 'plain');
    return true;
  }

  private accept(ws: WebSocket, token: TokenEntry): void {
    const link: Link = {
      ws, hello: null, place: 0, pending: [], receivedMs: new Map(), frameAt: 0, ackDue: false, flushQueued: false, resyncing: null, closed: false, lastHeard: Date.now(),
    };
    this.links.add(link);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      link.lastHeard = Date.now();
      if (this.o.timing === true) link.frameAt = performance.timeOrigin + performance.now();
      this.onFrame(link, token, data, isBinary);
    });
    ws.on('ping', () => (link.lastHeard = Date.now()));
    ws.on('pong', () => (link.lastHeard = Date.now()));
    ws.on('close', (code: number, reason: Buffer) => {
      this.flush(link);
      link.closed = true;
      this.links.delete(link);
      if (link.hello !== null && this.byAgent.get(link.hello.agent_id) === link) this.byAgent.delete(link.hello.agent_id);
      this.o.print({ what: 'closed', agent_id: link.hello?.agent_id ?? null, code, reason: reason.toString('utf8').slice(0, 128) });
    });
    ws.on('error', (e: Error) => this.o.print({ what: 'link-error', agent_id: link.hello?.agent_id ?? null, message: e.message }));
  }

  private closeIdle(idleMs: number): void {
    const now = Date.now();
    for (const l of this.links) {
      if (l.closed || now - l.lastHeard <= idleMs) continue;
      this.o.print({ what: 'idle', agent_id: l.hello?.agent_id ?? null, silent_ms: now - l.lastHeard });
      this.flush(l);
      l.ws.terminate();
    }
  }

  private send(link: Link, m: Message): void {
    if (!link.closed) link.ws.send(JSON.stringify(m));
  }

  /** Answers a refused message with `error` (never an error with an error) and closes the link when fatal. */
  private refuse(link: Link, e: Parameters<typeof errorFor>[0], fatal?: boolean): void {
    const msg: ErrorMessage = errorFor(e, fatal === undefined ? {} : { fatal });
    this.o.print({ what: 'error-sent', agent_id: link.hello?.agent_id ?? null, code: msg.code, message: msg.message, fatal: msg.fatal, in_reply_to: msg.in_reply_to });
    this.send(link, msg);
    if (msg.fatal) {
      this.flush(link);
      link.ws.close(4000, msg.code);
    }
  }

  private refuseCode(link: Link, code: ProtocolErrorCode, message: string, m: Message, fatal?: boolean): void {
    const seq = m.type === 'event' ? m.seq : null;
    const id = m.type === 'command-result' ? m.command_id : null;
    this.refuse(link, { code, message, path: null, in_reply_to: { type: m.type, seq, command_id: id } }, fatal);
  }

  private onFrame(link: Link, token: TokenEntry, data: Buffer, isBinary: boolean): void {
    if (link.closed) return;
    const r = parseMessage(isBinary ? new Uint8Array(data) : data.toString('utf8'), { from: 'agent' });
    if (!r.ok) {
      // An invalid hello fails the handshake (fatal); any other invalid frame is refused and the link stays.
      const handshake = link.hello === null && r.in_reply_to.type === 'hello';
      this.refuse(link, r, handshake ? true : undefined);
      return;
    }
    const m = r.message;
    switch (m.type) {
      case 'hello':
        return this.onHello(link, token, m);
      case 'event':
        return this.onEvent(link, m);
      case 'command-result':
        if (link.hello === null) return this.refuseCode(link, 'PROTO_ERR_UNEXPECTED', 'a command-result before hello', m);
        return this.onResult(link, m);
      case 'error':
        this.o.print({ what: 'error-received', agent_id: link.hello?.agent_id ?? null, code: m.code, message: m.message, fatal: m.fatal, in_reply_to: m.in_reply_to });
        return;
      default:
        // parseMessage({from: 'agent'}) refuses the controller's types; this is only reached if that changes.
        return this.refuseCode(link, 'PROTO_ERR_UNEXPECTED', `a ${m.type} message is not taken from an agent`, m);
    }
  }

  private onHello(link: Link, token: TokenEntry, h: Hello): void {
    if (token.agent_id !== null && token.agent_id !== h.agent_id) {
      return this.refuseCode(link, 'PROTO_ERR_AGENT_MISMATCH', `this token is issued to agent ${token.agent_id}, not ${h.agent_id}`, h, true);
    }
    if (link.hello !== null && link.hello.agent_id !== h.agent_id) {
      return this.refuseCode(link, 'PROTO_ERR_AGENT_MISMATCH', `this link is agent ${link.hello.agent_id}'s`, h, true);
    }
    this.flush(link);
    const other = this.byAgent.get(h.agent_id);
    if (other !== undefined && other !== link) {
      this.flush(other);
      other.ws.close(4001, 'replaced by a newer link of the same agent');
    }
    const cover = link.resyncing === 'cover';
    const { place, newStore, coveredFrom } = this.o.store.recordHello(h, cover);
    link.hello = h;
    link.place = place;
    link.resyncing = null;
    this.byAgent.set(h.agent_id, link);
    this.o.print({
      what: 'hello', agent_id: h.agent_id, store_id: h.store_id, agent_version: h.agent_version, generation: h.generation,
      outbox_first_seq: h.outbox_first_seq, snapshot_seq: h.snapshot.seq, nodes: h.snapshot.nodes.length, instances: h.snapshot.instances.length,
      new_store: newStore,
    });
    if (coveredFrom !== null) this.o.print({ what: 'covered', agent_id: h.agent_id, from_seq: coveredFrom, to_seq: place, by: cover ? 'snapshot' : 'outbox_first_seq' });
    if (h.generation > this.o.generation) {
      this.o.print({ what: 'fenced', agent_id: h.agent_id, agent_generation: h.generation, generation: this.o.generation });
    }
    this.send(link, { type: 'welcome', version: PROTOCOL_VERSION, agent_id: h.agent_id, resume_from: place + 1, generation: this.o.generation });
    this.o.print({ what: 'welcome', agent_id: h.agent_id, resume_from: place + 1, generation: this.o.generation });
    // The protocol: a command is sent again, with the same id, after a reconnect until its result is held.
    for (const c of this.o.store.pendingCommands(h.agent_id)) this.send(link, c.message);
  }

  private onEvent(link: Link, e: Event): void {
    const h = link.hello;
    if (h === null) return this.refuseCode(link, 'PROTO_ERR_UNEXPECTED', 'an event before hello', e);
    if (e.agent_id !== h.agent_id) return this.refuseCode(link, 'PROTO_ERR_AGENT_MISMATCH', `an event of agent ${e.agent_id} on agent ${h.agent_id}'s link`, e);
    // Sent before the agent read our resync, or on a link replaced by a newer one: the agent sends them again.
    if (link.resyncing !== null || this.byAgent.get(h.agent_id) !== link) return;
    if (e.seq <= link.place) {
      // Already held (a resend after a reconnect): not kept again, acked.
      this.o.print({ what: 'duplicate', agent_id: h.agent_id, seq: e.seq });
      link.ackDue = true;
      this.queueFlush(link);
      return;
    }
    if (e.seq > link.place + 1) {
      this.o.print({ what: 'gap', agent_id: h.agent_id, expected: link.place + 1, got: e.seq });
      this.askResync(link, `gap: expected seq ${link.place + 1}, got ${e.seq}`, 'cover');
      return;
    }
    link.place = e.seq;
    link.pending.push(e);
    if (this.o.timing === true) link.receivedMs.set(e.seq, link.frameAt);
    link.ackDue = true;
    if (e.kind === 'outbox.folded') {
      this.flush(link);
      const obj = e.instance_id !== null ? `instance ${e.instance_id}` : `node ${e.node_id ?? '?'}`;
      this.askResync(link, `outbox.folded for ${obj}`, 'cover');
      return;
    }
    if (link.pending.length >= this.maxBatch) this.flush(link);
    else this.queueFlush(link);
  }

  private askResync(link: Link, reason: string, kind: 'cover' | 'plain'): void {
    link.resyncing = kind;
    this.o.print({ what: 'resync', agent_id: link.hello?.agent_id ?? null, reason });
    this.send(link, { type: 'resync', version: PROTOCOL_VERSION, reason: reason.slice(0, 256) });
  }

  private onResult(link: Link, r: Extract<Message, { type: 'command-result' }>): void {
    const agentId = link.hello!.agent_id;
    const known = this.o.store.recordResult(agentId, r);
    this.o.print({ what: 'command-result', agent_id: agentId, known, ...stripEnvelope(r) });
  }

  private queueFlush(link: Link): void {
    if (link.flushQueued) return;
    link.flushQueued = true;
    setImmediate(() => {
      link.flushQueued = false;
      this.flush(link);
    });
  }

  /**
   * Commits the pending events with the new place; once that commit is on disk (the store's group commit: an
   * fdatasync of the WAL on libuv's pool, so the loop keeps reading frames meanwhile) prints them and acks the place.
   * An ack never covers what is not on disk.
   */
  private flush(link: Link): void {
    const h = link.hello;
    if (h === null) return;
    const batch = link.pending;
    link.pending = [];
    const received = batch.map((e) => link.receivedMs.get(e.seq));
    link.receivedMs.clear();
    // Nothing to keep or ack (a link closing after the controller's close: the store may be closed already).
    if (batch.length === 0 && !link.ackDue) return;
    if (batch.length > 0) {
      try {
        this.o.store.appendEvents(h.agent_id, h.store_id, batch);
      } catch (err) {
        this.storeFailed(link, h.agent_id, err);
        return;
      }
    }
    const ack = link.ackDue;
    link.ackDue = false;
    const place = batch.length > 0 ? batch[batch.length - 1]!.seq : this.o.store.agent(h.agent_id)?.place ?? 0;
    const kept = () => {
      batch.forEach((e, i) => {
        const at = received[i];
        this.o.print({ what: 'event', ...stripEnvelope(e), ...(at !== undefined ? { received_ms: at } : {}) });
      });
      if (ack && place >= 1 && !link.closed) this.send(link, { type: 'ack', version: PROTOCOL_VERSION, seq: place });
    };
    const durable = this.o.store.durable();
    if (durable === null) kept();
    // Not on disk, so not acked: the agent sends them again after the next welcome.
    else durable.then(kept, (err: unknown) => this.storeFailed(link, h.agent_id, err));
  }

  private storeFailed(link: Link, agentId: string, err: unknown): void {
    this.o.print({ what: 'store-error', agent_id: agentId, message: (err as Error).message });
    if (!link.closed) link.ws.close(1011, 'controller store failed');
    link.closed = true;
  }
}

function stripEnvelope<T extends { type: string; version: number }>(m: T): Omit<T, 'type' | 'version'> {
  const { type: _t, version: _v, ...rest } = m;
  return rest;
}
