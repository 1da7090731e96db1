/**
 * The upstream link (docs/protocol.md): metald dials the controller, streams its journal and takes commands, and
 * redials with capped exponential back-off and full jitter whenever a link ends. One link at a time; each is a
 * Session (./session.ts). start() returns at once: readiness never waits for the controller.
 *
 *              start()                        upgrade ok                   welcome ok
 *   [ idle ] ----------> [ connecting ] --------------------> [ hello-sent ] ----------> [ streaming ]
 *                          ^        |                          ^      |                   |    |
 *             delay over   |        | refused (TLS, 401,       |      | no welcome,       |    | resync:
 *                          |        v  network, timeout)       |      v stale, ahead      |    | a fresh hello
 *                        [ backing-off ] <---------------------+------+-------------------+    |
 *                                          dead link (no pong), close, fatal error      <------+
 *
 *   stop() from any state --> [ closed ]  (close frame 1001, no redial)
 *
 * The token is read at every dial (token()) and appears nowhere else: not in logs, errors or status.
 */
import type { Logger } from 'pino';
import type { Clock } from '../ports.js';
import type { Store } from '../store/types.js';
import { backoffDelay, publicUrl } from './backoff.js';
import { Session } from './session.js';
import { readGeneration, type CommandHandler, type HelloSource, type LinkState, type LinkStatus } from './types.js';

export interface LinkOptions {
  /** ws:// or wss:// */
  url: string;
  /** PEM of upstream.ca_file; wss is verified against it (null: the system CAs). */
  ca: Buffer | null;
  /** Read at every dial (the token file is re-read on SIGHUP). */
  token: () => string;
  agentId: string;
  store: Pick<Store, 'lastSeq' | 'readJournal' | 'outboxFirstSeq' | 'trimJournal' | 'watchJournal' | 'durable' | 'getMeta' | 'setMeta'>;
  /** Each hello's maker; when it has `ready()` (./hello.ts: the inventory), the first dial waits for it. */
  hello: HelloSource & { ready?(): Promise<void> };
  commands: CommandHandler;
  log: Logger;
  clock: Clock;
  /** Full jitter's random in [0, 1); default Math.random. */
  random?: () => number;
  pingIntervalMs?: number;
  welcomeTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Bound of dial + TLS + upgrade. */
  handshakeTimeoutMs?: number;
  /**
   * Acked entries kept in the journal (default RETAIN_ACKED): an ack trims through its seq minus this, so that a
   * controller restored from a backup (a welcome with an older resume_from) gets the events it lost from the
   * journal instead of only a snapshot. The outbox bound (docs/protocol.md, "The outbox policy") still applies.
   */
  retainAcked?: number;
}

/** Acked journal entries kept for a controller that comes back from an older place. */
export const RETAIN_ACKED = 10_000;

/** A repeated failure reason is logged again at most this often (with how many repeats it had). */
export const REPEAT_LOG_MS = 10 * 60_000;

export class UpstreamLink {
  private state: LinkState = 'idle';
  private since: number;
  private attempts = 0;
  private lastError: string | null = null;
  private lastAckSeq: number | null = null;
  private lastAckAt: string | null = null;
  private sentSeq: number | null = null;
  private welcomes = 0;
  private lastGeneration = 0;
  private session: Session | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private readonly abort = new AbortController();
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private logged: { reason: string; at: number; repeats: number } | null = null;
  private readonly random: () => number;
  private readonly pingIntervalMs: number;
  private readonly welcomeTimeoutMs: number;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly handshakeTimeoutMs: number;

  constructor(private readonly o: LinkOptions) {
    this.since = o.clock.now();
    this.random = o.random ?? Math.random;
    this.pingIntervalMs = o.pingIntervalMs ?? 10_000;
    this.welcomeTimeoutMs = o.welcomeTimeoutMs ?? 30_000;
    this.baseMs = o.backoffBaseMs ?? 1_000;
    this.capMs = o.backoffCapMs ?? 60_000;
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? 10_000;
  }

  /** Begins dialling; returns at once. A second call does nothing. */
  start(): void {
    if (this.loop !== null || this.stopping) return;
    this.loop = this.run();
  }

  /** Closes the link (close frame 1001), cancels every wait, never redials; resolves when the socket is gone. */
  async stop(): Promise<void> {
    if (this.stopping) return this.loop ?? undefined;
    this.stopping = true;
    this.abort.abort(new Error('upstream link stopped'));
    this.session?.close(1001, 'agent stopping', Math.min(this.handshakeTimeoutMs, 2_000));
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.reject(new Error('upstream link stopped'));
    if (this.loop !== null) await this.loop;
    this.setState('closed');
  }

  status(): LinkStatus {
    return {
      state: this.state,
      since: new Date(this.since).toISOString(),
      url: publicUrl(this.o.url),
      attempts: this.attempts,
      last_error: this.lastError,
      last_ack_seq: this.lastAckSeq,
      last_ack_at: this.lastAckAt,
      sent_seq: this.sentSeq,
      generation: this.generation(),
      welcomes: this.welcomes,
    };
  }

  /** The stored generation; the last one read if the store cannot be read (closed at shutdown). */
  private generation(): number {
    try {
      this.lastGeneration = readGeneration(this.o.store);
    } catch {
      // keep the last one read
    }
    return this.lastGeneration;
  }

  /** Resolves when the link next takes a welcome (reaches streaming); rejects if the link is stopped first. */
  whenStreaming(): Promise<void> {
    if (this.stopping) return Promise.reject(new Error('upstream link stopped'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private setState(s: LinkState): void {
    if (s === this.state) return;
    this.state = s;
    this.since = this.o.clock.now();
  }

  private async run(): Promise<void> {
    if (this.o.hello.ready !== undefined) {
      try {
        await this.o.hello.ready();
      } catch (e) {
        this.o.log.warn({ err: e }, 'upstream: preparing the hello failed; dialling anyway');
      }
    }
    while (!this.stopping) {
      const reason = await this.dialOnce();
      if (this.stopping) break;
      this.attempts++;
      this.lastError = reason;
      this.logFailure(reason);
      const delay = backoffDelay(this.attempts - 1, this.baseMs, this.capMs, this.random);
      this.setState('backing-off');
      try {
        await this.o.clock.sleep(delay, this.abort.signal);
      } catch {
        break;
      }
    }
  }

  /** One link, from the dial to its end; resolves with why it ended. */
  private async dialOnce(): Promise<string> {
    this.setState('connecting');
    this.sentSeq = null;
    let token: string;
    try {
      token = this.o.token();
    } catch (e) {
      return `cannot read the upstream token: ${(e as Error).message.slice(0, 200)}`;
    }
    let s: Session;
    try {
      s = this.session = new Session({
        url: this.o.url, ca: this.o.ca, token, agentId: this.o.agentId, store: this.o.store, hello: this.o.hello,
        commands: this.o.commands, log: this.o.log, clock: this.o.clock, pingIntervalMs: this.pingIntervalMs,
        welcomeTimeoutMs: this.welcomeTimeoutMs, handshakeTimeoutMs: this.handshakeTimeoutMs, retainAcked: this.o.retainAcked ?? RETAIN_ACKED,
        onHelloSent: () => this.setState('hello-sent'),
        onStreaming: () => this.onWelcome(),
        onAck: (seq) => {
          if (this.lastAckSeq === null || seq >= this.lastAckSeq) {
            this.lastAckSeq = seq;
            this.lastAckAt = new Date(this.o.clock.now()).toISOString();
          }
        },
        onSent: (seq) => (this.sentSeq = seq),
      });
    } catch (e) {
      // ws refuses a malformed URL or a token that cannot be a header value before any dial.
      const m = (e as Error).message;
      return `cannot dial: ${(token === '' ? m : m.split(token).join('[REDACTED]')).slice(0, 200)}`;
    }
    const reason = await s.ended;
    this.session = null;
    this.sentSeq = null;
    return reason;
  }

  private onWelcome(): void {
    this.setState('streaming');
    this.attempts = 0;
    this.welcomes++;
    if (this.logged !== null) {
      this.o.log.info({ url: publicUrl(this.o.url), after_failures: this.logged.repeats + 1 }, 'upstream: link restored');
    }
    this.logged = null;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** Once per change of reason; a repeat at most every REPEAT_LOG_MS, with its count. */
  private logFailure(reason: string): void {
    const now = this.o.clock.now();
    const l = this.logged;
    if (l !== null && l.reason === reason && now - l.at < REPEAT_LOG_MS) {
      l.repeats++;
      return;
    }
    const repeats = l !== null && l.reason === reason ? l.repeats : 0;
    this.o.log.warn({ url: publicUrl(this.o.url), attempts: this.attempts, ...(repeats > 0 ? { repeats } : {}) }, `upstream: link down: ${reason}`);
    this.logged = { reason, at: now, repeats: 0 };
  }
}
