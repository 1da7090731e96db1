/**
 * One `ping()` call of the raw engine: fping's scheduling over many targets at once.
 *
 * - Every target is in flight at the same time; the sender takes targets from one FIFO queue, so probes go out in
 *   the order fping sends them (all first probes, then retries as their timeouts pass).
 * - Between any two packets of the sweep there is at least `packetIntervalMs` (fping -i). The sender is a timer, and
 *   each tick sends at most `batch` packets, so the event loop is never held. An interval of 1 ms or more is kept
 *   packet to packet; below the clock's 1 ms resolution the RATE is kept (a tick may send the packets one ms allows).
 * - Plain mode: probe k of a target times out after timeoutMs x backoff^k (fping -t, -B); a timeout sends the next
 *   retry until `retries` (fping -r); the first reply ends the target (alive).
 * - Count mode (`count`, fping -c): `count` probes per target, `periodMs` apart (fping -p), each timing out after
 *   timeoutMs; no retries, no back-off (fping ignores -r with -c).
 * - An ICMP error for an outstanding probe is recorded and reported, and the probe then runs to its timeout, as
 *   fping 5.1 does (measured: `fping -t300 -r2` on a host that rejects with host-unreachable takes 1.43 s = 300 +
 *   450 + 675 ms and prints one error line per probe); an error is never a reply, so never alive.
 */
import { systemClock, type Clock, type IcmpErrorReport, type PingOptions, type PingResult, type ProbeEvent } from '../../ports.js';
import type { Family } from './packet.js';

export interface Target {
  /** The address as the caller spelled it (results and events carry it). */
  addr: string;
  /** The canonical spelling replies are compared with. */
  canon: string;
  family: Family;
  sent: number;
  outstanding: number;
  received: number;
  rtts: number[];
  icmpError: IcmpErrorReport | null;
  done: boolean;
}

export type ProbeState = 'outstanding' | 'answered' | 'expired';

export interface Probe {
  seq: number;
  target: Target;
  /** The target's probe number, from 0 (events' `seq`). */
  index: number;
  nonce: Buffer;
  sentAtNs: bigint | null;
  state: ProbeState;
  sweep: Sweep;
  cancel: () => void;
}

/** What a sweep needs from its engine: a probe on the wire. */
export interface ProbeSender {
  sendProbe(sweep: Sweep, target: Target, index: number): Probe;
}

/**
 * Runs `fn` after `ms` on the clock; the returned function cancels it. On the system clock a plain timer: the
 * clock's abortable sleep costs an AbortController, two promises and, cancelled, a DOMException with its stack;
 * every probe has a timer (two in count mode), and that was ~30% of the engine's CPU at 9,000 probes/s (bench).
 */
export function after(clock: Clock, ms: number, fn: () => void): () => void {
  if (clock === systemClock) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  }
  const ac = new AbortController();
  clock.sleep(ms, ac.signal).then(fn, () => undefined);
  return () => ac.abort();
}

export const DEFAULT_BACKOFF = 1.5;
export const DEFAULT_PERIOD_MS = 1000;
/** fping's default -i is 10 ms; metald's config default (liveness.packet_interval) is 1 ms and is always passed. */
export const DEFAULT_PACKET_INTERVAL_MS = 10;

/** Milliseconds with 3 decimals (fping's precision) from two hrtime readings. */
export function rttMs(sentNs: bigint, recvNs: bigint): number {
  return Math.round(Number(recvNs - sentNs) / 1000) / 1000;
}

export class Sweep {
  private readonly queue: Target[] = [];
  private readonly live = new Set<Probe>();
  private readonly timers = new Set<() => void>();
  private pending: number;
  private nextAt = -Infinity;
  private ticking = false;
  private finished = false;
  private resolve!: (r: PingResult[]) => void;
  private reject!: (e: unknown) => void;
  readonly done: Promise<PingResult[]>;
  private readonly interval: number;
  private readonly backoff: number;
  private readonly count: number | undefined;
  private readonly period: number;

  constructor(
    private readonly sender: ProbeSender,
    private readonly clock: Clock,
    private readonly targets: Target[],
    private readonly opts: PingOptions,
    private readonly batch: number,
  ) {
    this.interval = opts.packetIntervalMs ?? DEFAULT_PACKET_INTERVAL_MS;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.count = opts.count;
    this.period = opts.periodMs ?? DEFAULT_PERIOD_MS;
    this.pending = targets.length;
    this.done = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
  }

  start(): Promise<PingResult[]> {
    const signal = this.opts.signal;
    if (signal?.aborted) {
      this.abort(signal.reason);
      return this.done;
    }
    const onAbort = () => this.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    void this.done.then(
      () => signal?.removeEventListener('abort', onAbort),
      () => undefined,
    );
    if (this.targets.length === 0) this.finish();
    this.queue.push(...this.targets);
    this.kick();
    return this.done;
  }

  /** A reply the engine matched (source, identifier, sequence, nonce) to an outstanding probe of this sweep. */
  onReply(p: Probe, atNs: bigint, bytes: number): void {
    if (this.finished || p.state !== 'outstanding') return;
    p.state = 'answered';
    this.settle(p);
    const t = p.target;
    const rtt = p.sentAtNs !== null ? rttMs(p.sentAtNs, atNs) : 0;
    t.received++;
    t.rtts.push(rtt);
    this.emit({ kind: 'reply', addr: t.addr, seq: p.index, rtt_ms: rtt, bytes });
    if (this.count === undefined) this.finishTarget(t);
    else this.maybeDone(t);
  }

  /** An ICMP error the engine matched to an outstanding probe: recorded; the probe still runs to its timeout. */
  onIcmpError(p: Probe, error: IcmpErrorReport): void {
    if (this.finished || p.state !== 'outstanding') return;
    p.target.icmpError = error;
    this.emit({ kind: 'icmp-error', addr: p.target.addr, seq: p.index, error });
  }

  /** The probe's timeout for its number: -t x -B^k in plain mode, -t in count mode. */
  timeoutFor(index: number): number {
    return this.count === undefined ? this.opts.timeoutMs * this.backoff ** index : this.opts.timeoutMs;
  }

  /** Starts the probe's timeout (the engine calls it as the probe goes to the socket). */
  arm(p: Probe): void {
    this.live.add(p);
    p.cancel = after(this.clock, this.timeoutFor(p.index), () => this.expire(p));
  }

  private expire(p: Probe): void {
    if (this.finished || p.state !== 'outstanding') return;
    p.state = 'expired';
    this.settle(p);
    const t = p.target;
    this.emit({ kind: 'timeout', addr: t.addr, seq: p.index });
    if (this.count !== undefined) return this.maybeDone(t);
    if (t.sent <= this.opts.retries) this.enqueue(t);
    else this.finishTarget(t);
  }

  private settle(p: Probe): void {
    p.cancel();
    this.live.delete(p);
    p.target.outstanding--;
  }

  private maybeDone(t: Target): void {
    if (t.sent >= (this.count ?? 1) && t.outstanding === 0) this.finishTarget(t);
  }

  private enqueue(t: Target): void {
    this.queue.push(t);
    this.kick();
  }

  private kick(): void {
    if (this.ticking || this.finished || this.queue.length === 0) return;
    this.ticking = true;
    this.tick();
  }

  private tick(): void {
    this.ticking = false;
    if (this.finished) return;
    const now = this.clock.now();
    this.nextAt = Math.max(this.nextAt, this.interval >= 1 ? now : now - 1);
    let n = 0;
    while (this.queue.length > 0 && n < this.batch && this.nextAt <= now) {
      this.sendNext(this.queue.shift()!);
      this.nextAt += this.interval;
      n++;
    }
    if (this.queue.length === 0 || this.finished) return;
    this.ticking = true;
    const cancel = after(this.clock, Math.max(0, this.nextAt - now), () => {
      this.timers.delete(cancel);
      this.tick();
    });
    this.timers.add(cancel);
  }

  private sendNext(t: Target): void {
    const index = t.sent++;
    t.outstanding++;
    this.sender.sendProbe(this, t, index);
    if (this.count !== undefined && t.sent < this.count) {
      const cancel = after(this.clock, this.period, () => {
        this.timers.delete(cancel);
        this.enqueue(t);
      });
      this.timers.add(cancel);
    }
  }

  private finishTarget(t: Target): void {
    if (t.done) return;
    t.done = true;
    if (--this.pending === 0) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.stopTimers();
    this.resolve(this.targets.map((t) => result(t)));
  }

  /** Ends the sweep now (abort signal, engine closed): outstanding probes expire (their late replies count late). */
  abort(reason: unknown): void {
    if (this.finished) return;
    this.finished = true;
    for (const p of this.live) {
      p.state = 'expired';
      p.cancel();
    }
    this.live.clear();
    this.stopTimers();
    this.reject(reason instanceof Error ? reason : new Error(String(reason ?? 'aborted')));
  }

  private stopTimers(): void {
    for (const c of this.timers) c();
    this.timers.clear();
    this.queue.length = 0;
  }

  private emit(e: ProbeEvent): void {
    if (!this.opts.onEvent) return;
    try {
      this.opts.onEvent(e);
    } catch {
      // a caller's event handler must not break the sweep of every other target
    }
  }
}

function result(t: Target): PingResult {
  const alive = t.received > 0;
  return {
    addr: t.addr,
    alive,
    rtt_ms: alive ? (t.rtts[0] ?? null) : null,
    sent: t.sent,
    received: t.received,
    rtts_ms: [...t.rtts],
    icmp_error: alive ? null : t.icmpError,
  };
}
