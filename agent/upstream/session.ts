/**
 * One link to the controller, from the dial to its end (docs/protocol.md, sections 1-4): the upgrade with the token,
 * hello and welcome, the journal streamed as events from resume_from (each durable before it leaves, read in pages
 * and held back while the socket's buffer is full), acks trimming the journal, commands handed to the
 * CommandHandler, resync, and the pings that find a dead link. `ended` resolves with the reason it ended, in words an
 * operator reads; ./link.ts backs off and dials the next one.
 *
 * Inbound frames are handled one after another (a welcome's durable generation write completes before the command
 * that follows it is judged), except that commands run concurrently and are answered as they resolve.
 */
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { Clock } from '../ports.js';
import type { JournalEntry } from '../model.js';
import type { Store } from '../store/types.js';
import { describeDialError, describeUpgradeRefusal } from './backoff.js';
import { MAX_MESSAGE_BYTES, PROTOCOL_VERSION, type Command, type ErrorMessage, type Event, type Message, type ProtocolErrorCode, type Welcome } from './protocol.js';
import { errorFor, parseMessage } from './parse.js';
import { raiseGeneration, readGeneration, type CommandHandler, type HelloSource } from './types.js';

/** Journal entries read per page: what the link holds in memory at most, besides the socket's buffer. */
export const PAGE_SIZE = 500;
/** No further page is read while the socket holds more than this unsent (bytes). */
export const HIGH_WATER_BYTES = 1024 * 1024;

export type LinkStore = Pick<Store, 'lastSeq' | 'readJournal' | 'outboxFirstSeq' | 'trimJournal' | 'watchJournal' | 'durable' | 'getMeta' | 'setMeta'>;

export interface SessionOptions {
  url: string;
  ca: Buffer | null;
  /** The token for this dial (never logged, never in an error). */
  token: string;
  agentId: string;
  store: LinkStore;
  hello: HelloSource;
  commands: CommandHandler;
  log: Logger;
  clock: Clock;
  pingIntervalMs: number;
  welcomeTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** The link reached hello-sent (after the upgrade, and after each resync). */
  onHelloSent(): void;
  /** A welcome was taken: the link streams. */
  onStreaming(): void;
  /** A valid ack raised the greatest acked seq. */
  onAck(seq: number): void;
  /** Acked entries kept: an ack trims through its seq minus this. */
  retainAcked: number;
  /** The greatest seq sent on this link grew. */
  onSent(seq: number): void;
}

type Phase = 'connecting' | 'hello-sent' | 'streaming' | 'ended';

export class Session {
  /** Resolves once the socket is gone, with why the link ended. */
  readonly ended: Promise<string>;
  private resolveEnded!: (reason: string) => void;
  private readonly ws: WebSocket;
  private phase: Phase = 'connecting';
  private reason: string | null = null;
  /** Hellos sent whose welcome has not come: only the welcome of the last one is acted on. */
  private hellosOutstanding = 0;
  /** Bumped by every welcome and resync: a pump of an older epoch stops at its next step. */
  private epoch = 0;
  private nextSeq = 1;
  private sentSeq = 0;
  private ackedSeq = 0;
  private trimQueued: NodeJS.Immediate | null = null;
  private heard = true;
  private inbox: Promise<void> = Promise.resolve();
  /** Cancels every pending timer (ping, welcome, close bound): called once the socket is gone. */
  private readonly cancels = new Set<() => void>();
  private cancelWelcomeTimer: (() => void) | null = null;
  private wakePump: (() => void) | null = null;
  private readonly unwatch: () => void;

  constructor(private readonly o: SessionOptions) {
    this.ended = new Promise((r) => (this.resolveEnded = r));
    this.ws = new WebSocket(o.url, {
      headers: { Authorization: `Bearer ${o.token}` },
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_BYTES,
      handshakeTimeout: o.handshakeTimeoutMs,
      followRedirects: false,
      ...(o.ca === null ? {} : { ca: o.ca }),
    });
    this.unwatch = o.store.watchJournal(() => this.wake());
    this.ws.on('unexpected-response', (_req, res) => {
      this.end(describeUpgradeRefusal(res.statusCode ?? 0));
      // Read the answer to its end before closing, so the controller's socket sees a clean close, not a reset.
      res.resume();
      res.once('end', () => this.ws.terminate());
      res.once('error', () => this.ws.terminate());
      this.later(this.o.handshakeTimeoutMs, () => this.ws.terminate());
    });
    this.ws.on('open', () => this.onOpen());
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.heard = true;
      this.inbox = this.inbox.then(() => this.onFrame(data, isBinary)).catch((e: unknown) => {
        this.o.log.error({ err: e }, 'upstream: handling a frame failed');
        this.fail('PROTO_ERR_INTERNAL', `the agent failed handling a frame: ${(e as Error).message}`, null);
      });
    });
    this.ws.on('pong', () => (this.heard = true));
    this.ws.on('error', (e: Error) => this.end(describeDialError(e, o.url, o.handshakeTimeoutMs)));
    this.ws.on('close', (code: number, reason: Buffer) => {
      const why = reason.toString('utf8').replace(/[^\x20-\x7e]/g, '?').slice(0, 128);
      this.end(`controller closed the link (${code}${why === '' ? '' : ` ${why}`})`);
      this.finish();
    });
  }

  /** Closes the link with a close frame (stop: 1001); the socket is destroyed if the peer does not answer in time. */
  close(code: number, reason: string, boundMs: number): void {
    this.end(reason);
    if (this.ws.readyState === WebSocket.CONNECTING) return this.ws.terminate();
    this.ws.close(code, reason);
    this.later(boundMs, () => this.ws.terminate());
  }

  /** The greatest seq sent on this link (0: none). */
  get sent(): number {
    return this.sentSeq;
  }

  // ---- lifecycle ----------------------------------------------------------------------------------------------

  /** Records why the link ends (the first reason wins) and stops the streaming. */
  private end(reason: string): void {
    if (this.reason === null) this.reason = this.o.token === '' ? reason : reason.split(this.o.token).join('[REDACTED]');
    this.phase = 'ended';
    this.epoch++;
    this.wake();
  }

  private finish(): void {
    this.end('link closed');
    for (const cancel of [...this.cancels]) cancel();
    this.unwatch();
    if (this.trimQueued !== null) clearImmediate(this.trimQueued);
    this.trimQueued = null;
    this.resolveEnded(this.reason!);
  }

  /** Runs fn after ms on the injected clock, unless cancelled (the returned function) or the socket went first. */
  private later(ms: number, fn: () => void): () => void {
    const ac = new AbortController();
    const cancel = () => {
      this.cancels.delete(cancel);
      ac.abort();
    };
    this.cancels.add(cancel);
    this.o.clock.sleep(ms, ac.signal).then(() => {
      if (ac.signal.aborted) return;
      this.cancels.delete(cancel);
      fn();
    }, () => undefined);
    return cancel;
  }

  private onOpen(): void {
    if (this.phase === 'ended') return;
    this.sendHello();
    this.schedulePing();
  }

  /** Every interval: dead if nothing (no pong, no frame) came since the previous ping, else ping again. */
  private schedulePing(): void {
    this.later(this.o.pingIntervalMs, () => {
      if (this.phase === 'ended') return;
      if (!this.heard) {
        this.end(`no pong nor any frame in the ${this.o.pingIntervalMs} ms since the last ping: link dead, terminated`);
        this.ws.terminate();
        return;
      }
      this.heard = false;
      this.ws.ping();
      this.schedulePing();
    });
  }

  private send(m: Message, cb?: (err?: Error) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      cb?.();
      return;
    }
    this.ws.send(JSON.stringify(m), cb);
  }

  private sendHello(): void {
    this.phase = 'hello-sent';
    this.epoch++;
    this.wake();
    let hello: Message;
    try {
      hello = this.o.hello.hello();
    } catch (e) {
      this.o.log.error({ err: e }, 'upstream: making the hello failed');
      this.end(`the agent could not make its hello: ${(e as Error).message.slice(0, 200)}`);
      this.ws.close(1011, 'agent store failed');
      this.later(this.o.handshakeTimeoutMs, () => this.ws.terminate());
      return;
    }
    this.hellosOutstanding++;
    this.send(hello);
    this.o.onHelloSent();
    this.cancelWelcomeTimer?.();
    this.cancelWelcomeTimer = this.later(this.o.welcomeTimeoutMs, () => {
      if (this.phase !== 'hello-sent') return;
      this.end(`no welcome within ${this.o.welcomeTimeoutMs} ms of the hello`);
      this.ws.close(1002, 'no welcome');
      this.later(this.o.handshakeTimeoutMs, () => this.ws.terminate());
    });
  }

  /** Sends `error` (never in answer to an error) and, when fatal, closes with 4000 + the code. */
  private refuse(e: Parameters<typeof errorFor>[0], fatal?: boolean): void {
    const msg: ErrorMessage = errorFor(e, fatal === undefined ? {} : { fatal });
    this.o.log.warn({ code: msg.code, fatal: msg.fatal, in_reply_to: msg.in_reply_to, path: msg.path }, `upstream: refused a controller message: ${msg.message}`);
    this.send(msg);
    if (msg.fatal) {
      this.end(`agent refused the controller's ${e.in_reply_to.type ?? 'message'}: ${msg.code}: ${msg.message}`);
      this.ws.close(4000, msg.code);
      this.later(this.o.handshakeTimeoutMs, () => this.ws.terminate());
    }
  }

  private fail(code: ProtocolErrorCode, message: string, m: Message | null, fatal?: boolean): void {
    const in_reply_to = {
      type: m?.type ?? null,
      seq: null,
      command_id: m !== null && m.type === 'command' ? m.command_id : null,
    };
    this.refuse({ code, message, path: null, in_reply_to }, fatal);
  }

  // ---- inbound ------------------------------------------------------------------------------------------------

  private async onFrame(data: Buffer, isBinary: boolean): Promise<void> {
    if (this.phase === 'ended') return;
    const r = parseMessage(isBinary ? new Uint8Array(data) : data.toString('utf8'), { from: 'controller' });
    if (!r.ok) {
      if (r.in_reply_to.type === 'error') {
        this.o.log.warn({ code: r.code }, `upstream: dropped an invalid error message from the controller: ${r.message}`);
        return;
      }
      // An invalid welcome fails the handshake.
      const handshake = this.phase === 'hello-sent' && r.in_reply_to.type === 'welcome';
      return this.refuse(r, handshake ? true : undefined);
    }
    const m = r.message;
    switch (m.type) {
      case 'welcome':
        return this.onWelcome(m);
      case 'ack':
        return this.onAck(m.seq, m);
      case 'command':
        return this.onCommand(m);
      case 'resync':
        this.o.log.info({ reason: m.reason }, 'upstream: the controller asked for a resync; sending a fresh hello');
        return this.sendHello();
      case 'error':
        this.o.log.warn({ code: m.code, fatal: m.fatal, in_reply_to: m.in_reply_to }, `upstream: the controller refused a message: ${m.message}`);
        return;
      default:
        // parseMessage({from: 'controller'}) refuses the agent's own types; reached only if that changes.
        return this.fail('PROTO_ERR_UNEXPECTED', `a ${m.type} message is not taken from the controller`, m);
    }
  }

  private async onWelcome(w: Welcome): Promise<void> {
    if (this.hellosOutstanding === 0) return this.fail('PROTO_ERR_UNEXPECTED', 'a welcome without a hello', w);
    // A welcome to an older hello (a resync came before it was answered): the last hello's welcome follows.
    if (--this.hellosOutstanding > 0) return;
    this.cancelWelcomeTimer?.();
    if (w.agent_id !== this.o.agentId) {
      return this.fail('PROTO_ERR_AGENT_MISMATCH', `a welcome for agent ${w.agent_id}, this is ${this.o.agentId}`, w, true);
    }
    const held = readGeneration(this.o.store);
    if (w.generation < held) {
      return this.fail('PROTO_ERR_STALE_GENERATION', `welcome generation ${w.generation} is older than the agent's ${held}: a fenced controller`, w, true);
    }
    // Stored durably before it is acted on.
    try {
      await raiseGeneration(this.o.store, w.generation);
    } catch (e) {
      this.o.log.error({ err: e, generation: w.generation }, 'upstream: storing the welcome generation failed');
      return this.fail('PROTO_ERR_INTERNAL', 'the agent could not store the generation; redialling', w, true);
    }
    if (this.phase !== 'hello-sent') return;
    const last = this.o.store.lastSeq();
    if (w.resume_from > last + 1) {
      return this.fail('PROTO_ERR_AHEAD', `resume_from ${w.resume_from} is beyond the agent's last seq + 1 (${last + 1})`, w, true);
    }
    this.phase = 'streaming';
    this.nextSeq = Math.max(w.resume_from, this.o.store.outboxFirstSeq());
    const epoch = ++this.epoch;
    this.o.log.info({ resume_from: w.resume_from, from_seq: this.nextSeq, last_seq: last, generation: w.generation }, 'upstream: welcomed; streaming');
    this.o.onStreaming();
    void this.pump(epoch).catch((e: unknown) => {
      if (this.phase === 'ended') return;
      this.o.log.error({ err: e }, 'upstream: reading the journal failed');
      this.end(`the agent's store failed while streaming: ${(e as Error).message.slice(0, 200)}`);
      this.ws.close(1011, 'agent store failed');
    });
  }

  private onAck(seq: number, m: Message): void {
    if (seq > this.sentSeq) {
      return this.fail('PROTO_ERR_AHEAD', `ack ${seq} is beyond the last seq sent on this link (${this.sentSeq === 0 ? 'none' : this.sentSeq})`, m, true);
    }
    if (seq < this.ackedSeq) return;
    this.ackedSeq = seq;
    this.o.onAck(seq);
    // Trimming is a store write: one per turn, however many acks the turn brought.
    this.trimQueued ??= setImmediate(() => {
      this.trimQueued = null;
      const through = this.ackedSeq - this.o.retainAcked;
      if (through < 1) return;
      try {
        this.o.store.trimJournal(through);
      } catch (e) {
        this.o.log.error({ err: e, seq: this.ackedSeq }, 'upstream: trimming the acked journal failed; the entries stay and are sent again');
      }
    });
  }

  private onCommand(c: Command): void {
    if (this.phase !== 'streaming') {
      return this.refuse({
        code: 'PROTO_ERR_UNEXPECTED', message: 'a command before welcome (or during a resync) is not taken', path: null,
        in_reply_to: { type: 'command', seq: null, command_id: c.command_id },
      });
    }
    // The body is never logged; its op and id are.
    this.o.log.debug({ command_id: c.command_id, op: c.command.op }, 'upstream: command');
    this.o.commands.handle(c).then(
      (answer) => this.send(answer),
      (e: unknown) => {
        this.o.log.error({ err: e, command_id: c.command_id }, 'upstream: the command handler failed');
        this.refuse({ code: 'PROTO_ERR_INTERNAL', message: 'the agent failed running the command; nothing was stored', path: null, in_reply_to: { type: 'command', seq: null, command_id: c.command_id } });
      },
    );
  }

  // ---- outbound: the journal ----------------------------------------------------------------------------------

  private wake(): void {
    const w = this.wakePump;
    this.wakePump = null;
    w?.();
  }

  /** Sends the journal from nextSeq in pages, each durable first, held back while the socket's buffer is full. */
  private async pump(epoch: number): Promise<void> {
    const live = () => this.epoch === epoch && this.phase === 'streaming';
    let flushed: Promise<void> = Promise.resolve();
    while (live()) {
      if (this.ws.bufferedAmount > HIGH_WATER_BYTES) {
        // The last frame's write callback: everything before it left the process.
        await flushed;
        if (this.ws.bufferedAmount > HIGH_WATER_BYTES) await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      const rows = this.o.store.readJournal(this.nextSeq, PAGE_SIZE);
      if (rows.length === 0) {
        await new Promise<void>((r) => (this.wakePump = r));
        continue;
      }
      // Group commit: an entry read may not be on disk yet; none leaves before it is.
      const d = this.o.store.durable();
      if (d !== null) await d;
      if (!live()) return;
      flushed = new Promise<void>((resolve) => {
        for (let i = 0; i < rows.length; i++) this.send(eventOf(rows[i]!), i === rows.length - 1 ? () => resolve() : undefined);
      });
      const top = rows[rows.length - 1]!.seq;
      this.nextSeq = top + 1;
      if (top > this.sentSeq) {
        this.sentSeq = top;
        this.o.onSent(top);
      }
    }
  }
}

/** A journal entry as the event message carries it: exactly the entry, in the envelope. */
export function eventOf(e: JournalEntry): Event {
  return {
    type: 'event', version: PROTOCOL_VERSION, agent_id: e.agent_id, seq: e.seq, at: e.at, kind: e.kind,
    instance_id: e.instance_id, node_id: e.node_id, cause: e.cause, data: e.data,
  } as Event;
}
