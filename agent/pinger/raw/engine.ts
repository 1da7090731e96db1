/**
 * metald's ICMP echo engine on raw sockets (`liveness.engine: raw`; needs CAP_NET_RAW). IPv4 and IPv6.
 *
 * A reply counts only when ALL of these match one outstanding probe of this engine: the echo-reply type, the
 * engine's identifier (the hub routes by it), the probe's sequence, the reply's source = the probe's target, and the
 * probe's random 16-byte nonce in the payload; the IPv4 checksum is verified by the codec (the kernel verifies
 * ICMPv6's). Round trips come from process.hrtime.bigint() taken just before sendto and at receipt, reported in ms
 * with 3 decimals as fping. Anything else is counted and ignored (see `RawEngineStats`). Scheduling: sweep.ts.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { systemClock, type Clock, type PingOptions, type PingResult, type Pinger } from '../../ports.js';
import { canonicalIp, encodeEcho, NONCE_BYTES, type Decoded, type Family } from './packet.js';
import { processHub, type HubMember, type IcmpHub } from './socket.js';
import { Sweep, type Probe, type Target } from './sweep.js';

export interface RawEngineStats {
  /** Echo requests sendto took, and those it refused (ENETUNREACH ...; such a probe times out). */
  sent: number;
  send_errors: number;
  /** Replies that matched an outstanding probe. */
  received: number;
  /** Replies to a probe whose timeout had passed (or whose sweep was aborted), or to a sequence no longer known. */
  late: number;
  /** Second and later replies to an answered probe. */
  duplicate: number;
  /** Replies or ICMP errors with our identifier and a known sequence but the wrong source, destination or nonce. */
  bad: number;
  /** ICMP errors matched to one of our probes. */
  icmp_errors: number;
  /** Process-wide, from the shared hub: packets for identifiers no engine here owns, and packets that do not decode. */
  foreign: number;
  undecodable: number;
}

export interface RawPingerOptions {
  hub?: IcmpHub;
  clock?: Clock;
  /** Forces the ICMP identifier (tests that play a foreign pinger); default: a random free one. */
  identifier?: number;
  /** Most packets a sender tick hands to the socket; default 64. */
  batch?: number;
  /** The first sequence number (tests that make two pingers collide); default random. */
  firstSeq?: number;
  /** Nonce source (tests); default crypto random. */
  nonce?: () => Buffer;
}

/** Draws nonces from one crypto buffer refilled 1,024 at a time (one syscall per 1,024 probes). */
function noncePool(): () => Buffer {
  let pool = Buffer.alloc(0);
  let at = 0;
  return () => {
    if (at + NONCE_BYTES > pool.length) {
      pool = randomBytes(NONCE_BYTES * 1024);
      at = 0;
    }
    const n = pool.subarray(at, at + NONCE_BYTES);
    at += NONCE_BYTES;
    return n;
  };
}

/** Validates the caller's knobs; every error names the option. */
export function checkPingOptions(o: PingOptions): void {
  const num = (v: unknown, name: string, min: number, integer = false) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      throw new Error(`ping option ${name} must be ${integer ? 'an integer' : 'a number'} >= ${String(min)}, got ${String(v)}`);
    }
  };
  num(o.timeoutMs, 'timeoutMs', 1);
  num(o.retries, 'retries', 0, true);
  if (o.backoff !== undefined) num(o.backoff, 'backoff', 1);
  if (o.packetIntervalMs !== undefined) num(o.packetIntervalMs, 'packetIntervalMs', 0);
  if (o.count !== undefined) num(o.count, 'count', 1, true);
  if (o.periodMs !== undefined) num(o.periodMs, 'periodMs', 0);
}

/** Parses targets as IP literals (no name resolution), deduplicated by their canonical spelling. */
export function parseTargets(addrs: readonly string[]): Target[] {
  const seen = new Set<string>();
  const out: Target[] = [];
  for (const addr of addrs) {
    const family = isIP(addr);
    if (family === 0 || addr.includes('%')) throw new Error(`not an IP address: ${JSON.stringify(addr)}`);
    const canon = canonicalIp(addr);
    if (seen.has(canon)) continue;
    seen.add(canon);
    out.push({ addr, canon, family: family as Family, sent: 0, outstanding: 0, received: 0, rtts: [], icmpError: null, done: false });
  }
  return out;
}

export class RawPinger implements Pinger {
  readonly engine = 'raw';
  private readonly member: HubMember;
  private readonly hub: IcmpHub;
  private readonly clock: Clock;
  private readonly batch: number;
  private readonly nonce: () => Buffer;
  /** Every probe by sequence, outstanding or finished (a finished one stays until its sequence is reused: late replies). */
  private readonly probes = new Map<number, Probe>();
  private readonly sweeps = new Set<Sweep>();
  private seq: number;
  private closed = false;
  private readonly c = { sent: 0, send_errors: 0, received: 0, late: 0, duplicate: 0, bad: 0, icmp_errors: 0 };

  constructor(o: RawPingerOptions = {}) {
    this.hub = o.hub ?? processHub;
    this.clock = o.clock ?? systemClock;
    this.batch = o.batch ?? 64;
    this.nonce = o.nonce ?? noncePool();
    this.seq = (o.firstSeq ?? randomInt(0, 0x10000)) & 0xffff;
    this.member = this.hub.attach({ onReply: (d, from, at) => this.onReply(d, from, at), onIcmpError: (d, from) => this.onIcmpError(d, from) }, o.identifier);
  }

  /** This engine's ICMP identifier. */
  get identifier(): number {
    return this.member.id;
  }

  /** Opens the family's shared socket now (select.ts uses it to learn whether raw works). @throws SocketRefusedError */
  open(family: Family = 4): void {
    this.member.ensure(family);
  }

  stats(): RawEngineStats {
    const h = this.hub.stats();
    return { ...this.c, foreign: h.foreign, undecodable: h.undecodable };
  }

  /** @throws Error for a target that is not an IP literal or a bad option; SocketRefusedError if the socket cannot open. */
  ping(addrs: readonly string[], opts: PingOptions): Promise<PingResult[]> {
    if (this.closed) return Promise.reject(new Error('the raw ICMP engine is closed'));
    try {
      checkPingOptions(opts);
      const targets = parseTargets(addrs);
      for (const f of new Set(targets.map((t) => t.family))) this.member.ensure(f);
      const sweep = new Sweep(this, this.clock, targets, opts, this.batch);
      this.sweeps.add(sweep);
      const done = sweep.start();
      void done.then(
        () => this.sweeps.delete(sweep),
        () => this.sweeps.delete(sweep),
      );
      return done;
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** Ends running sweeps (they reject) and gives the identifier back; the last engine closes the sockets. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const s of this.sweeps) s.abort(new Error('the raw ICMP engine was closed'));
      this.member.detach();
    }
    return Promise.resolve();
  }

  /** Called by a sweep's sender: a new sequence and nonce, the packet to the socket, the timeout armed. */
  sendProbe(sweep: Sweep, target: Target, index: number): Probe {
    const seq = this.nextSeq();
    const p: Probe = { seq, target, index, nonce: this.nonce(), sentAtNs: null, state: 'outstanding', sweep, cancel: () => undefined };
    this.probes.set(seq, p);
    sweep.arm(p);
    try {
      this.member.send(target.family, encodeEcho(target.family, this.member.id, seq, p.nonce), target.canon, (error, atNs) => {
        if (error) this.c.send_errors++;
        else {
          this.c.sent++;
          p.sentAtNs = atNs;
        }
      });
    } catch {
      // the socket could not be reopened after a failure: this probe times out like one sendto refused
      this.c.send_errors++;
    }
    return p;
  }

  private nextSeq(): number {
    for (let i = 0; i < 0x10000; i++) {
      const s = this.seq;
      this.seq = (this.seq + 1) & 0xffff;
      if (this.probes.get(s)?.state !== 'outstanding') return s;
    }
    throw new Error('65,536 probes of this engine are outstanding');
  }

  private onReply(d: Extract<Decoded, { kind: 'echo-reply' }>, from: string, atNs: bigint): void {
    const p = this.probes.get(d.seq);
    if (!p) {
      this.c.late++;
      return;
    }
    if (p.target.canon !== from || !p.nonce.equals(d.nonce)) {
      this.c.bad++;
      return;
    }
    if (p.state === 'answered') this.c.duplicate++;
    else if (p.state === 'expired') this.c.late++;
    else {
      this.c.received++;
      p.sweep.onReply(p, atNs, d.bytes);
    }
  }

  private onIcmpError(d: Extract<Decoded, { kind: 'error' }>, from: string): void {
    const p = this.probes.get(d.seq);
    if (!p || p.target.canon !== d.dst || (d.nonce !== null && !p.nonce.equals(d.nonce))) {
      this.c.bad++;
      return;
    }
    this.c.icmp_errors++;
    p.sweep.onIcmpError(p, { kind: d.error, from });
  }
}
