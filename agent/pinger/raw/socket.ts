/**
 * The ICMP sockets of the raw engine: ONE raw socket per address family per process, shared by every engine
 * instance (the liveness monitor, os-fping's fresh probes, metalctl ping, the bench), through an `IcmpHub`.
 *
 * A raw ICMP socket receives every ICMP packet the host gets, so the hub decodes each packet once and routes it by
 * the ICMP identifier (of the reply, or the one quoted inside an ICMP error) to the engine that owns that identifier;
 * the engine then checks source, sequence and nonce. Identifiers are allocated by the hub, random and distinct from
 * every other engine of the process. Packets for identifiers nobody here owns (another pinger on the machine) are
 * `foreign`; packets that do not decode (truncated, IPv4 checksum wrong) are `undecodable`; both are ignored.
 *
 * Sockets open lazily, on an engine's first send to that family (or `ensure`), and close when the last engine
 * detaches. `processHub` is the process-wide instance (deliberately one: a second socket would receive every packet
 * twice); tests build their own hub over a fake `IcmpSocketFactory`.
 */
import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { canonicalIp, decode, type Decoded, type Family } from './packet.js';
import type { RawSocketModule } from './raw-socket.js';

/** One open ICMP socket (the port the hub drives; `rawSocketFactory` is the real one). */
export interface IcmpSocket {
  /** Queues a packet for `addr`; `onSent` gets the process.hrtime.bigint() taken just before sendto, or the error. */
  send(packet: Buffer, addr: string, onSent: (error: Error | null, atNs: bigint) => void): void;
  close(): void;
}

export interface IcmpSocketHandlers {
  /** A received packet as the socket gives it, its source address, and process.hrtime.bigint() at receipt. */
  message(packet: Buffer, source: string, atNs: bigint): void;
  /** The socket failed and closed. */
  error(e: Error): void;
}

export interface IcmpSocketFactory {
  /** @throws Error when the kernel refuses the socket (raw-socket throws strerror's words, no errno name). */
  open(family: Family, on: IcmpSocketHandlers): IcmpSocket;
}

/** The kernel refused a raw socket; `code` is the errno name when known (EPERM, EACCES, EAFNOSUPPORT ...). */
export class SocketRefusedError extends Error {
  constructor(
    readonly code: string,
    readonly family: Family,
    detail: string,
  ) {
    super(`${refusal(code, family)}: ${detail}`);
    this.name = 'SocketRefusedError';
  }

  /** The refusal in a few words, for the engine choice's reason: "raw socket refused (EPERM: needs CAP_NET_RAW)". */
  get reason(): string {
    return refusal(this.code, this.family);
  }
}

function refusal(code: string, family: Family): string {
  return `raw ${family === 6 ? 'ICMPv6 ' : ''}socket refused (${code}${code === 'EPERM' || code === 'EACCES' ? ': needs CAP_NET_RAW' : ''})`;
}

const ERRNO_BY_MESSAGE: Record<string, string> = {
  'Operation not permitted': 'EPERM',
  'Permission denied': 'EACCES',
  'Address family not supported by protocol': 'EAFNOSUPPORT',
  'Protocol not supported': 'EPROTONOSUPPORT',
};

let rawModule: RawSocketModule | undefined;

/** strerror's words for "try again" (EAGAIN/EWOULDBLOCK) and a full send queue (ENOBUFS): raw-socket throws them. */
const WOULD_BLOCK = new Set(['Resource temporarily unavailable', 'No buffer space available']);
/** Most packets read per readable event before the loop gets a turn (the socket is level-triggered: it comes back). */
export const RECV_BURST = 256;
/** The receive buffer asked for (the kernel doubles it): ~2,700 replies queued while the loop is busy. */
export const RCVBUF_BYTES = 1 << 20;
/** Linux's SO_RCVBUFFORCE (root may pass net.core.rmem_max); raw-socket has no constant for it. */
const SO_RCVBUFFORCE = 33;

/**
 * The real sockets, on raw-socket (CommonJS native addon, loaded on first use), driven through its native wrap:
 * raw-socket's own JavaScript layer sends ONE queued packet per writable event and reads ONE packet per readable
 * event (and none when both are ready), so at a few thousand packets a second its queue, not the wire, set the
 * pace: measured in the bench, 16,000 probes/s queued and 2.8% of them answered in time. Here a send is one
 * synchronous sendto(2) (the socket is non-blocking; on EAGAIN/ENOBUFS the packet goes to raw-socket's queue, which
 * keeps the order), and a readable event reads up to RECV_BURST packets. The receive buffer is enlarged
 * (SO_RCVBUFFORCE, else SO_RCVBUF up to rmem_max) so a burst of replies waits in the kernel rather than being dropped.
 */
export const rawSocketFactory: IcmpSocketFactory = {
  open(family, on) {
    rawModule ??= createRequire(import.meta.url)('raw-socket') as RawSocketModule;
    const raw = rawModule;
    const s = raw.createSocket({
      protocol: family === 4 ? raw.Protocol.ICMP : raw.Protocol.ICMPv6,
      addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
      bufferSize: 4096,
    });
    for (const option of [SO_RCVBUFFORCE, raw.SocketOption.SO_RCVBUF]) {
      try {
        s.setOption(raw.SocketLevel.SOL_SOCKET, option, RCVBUF_BYTES);
        break;
      } catch {
        // not permitted (SO_RCVBUFFORCE without CAP_NET_ADMIN): the next, else the default buffer
      }
    }
    const wrap = s.wrap;
    const buffer = Buffer.alloc(4096);
    let failed = false;
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      on.error(e);
      s.close();
    };
    wrap.removeAllListeners('recvReady');
    wrap.on('recvReady', () => {
      for (let i = 0; i < RECV_BURST && !failed; i++) {
        let got = false;
        try {
          // The callback runs synchronously inside recv; the packet is a view on `buffer`, decoded before the next read.
          wrap.recv(buffer, (b: Buffer, bytes: number, source: string) => {
            got = true;
            on.message(b.subarray(0, bytes), source, process.hrtime.bigint());
          });
        } catch (e) {
          if (!WOULD_BLOCK.has((e as Error).message)) fail(e as Error);
          return;
        }
        if (!got) return;
      }
    });
    // raw-socket closes the socket itself after an error it emits.
    s.on('error', (e) => {
      if (failed) return;
      failed = true;
      on.error(e);
    });
    const queued = (packet: Buffer, addr: string, onSent: (error: Error | null, atNs: bigint) => void) => {
      let at = 0n;
      s.send(
        packet,
        0,
        packet.length,
        addr,
        () => (at = process.hrtime.bigint()),
        (error) => onSent(error, at),
      );
    };
    return {
      send(packet, addr, onSent) {
        if (s.requests.length > 0) return queued(packet, addr, onSent);
        const at = process.hrtime.bigint();
        try {
          wrap.send(packet, 0, packet.length, addr, () => undefined);
        } catch (e) {
          if (WOULD_BLOCK.has((e as Error).message)) return queued(packet, addr, onSent);
          return onSent(e as Error, at);
        }
        onSent(null, at);
      },
      close: () => void s.close(),
    };
  },
};

/** What the hub hands an engine: replies and ICMP errors that carry the engine's identifier. */
export interface HubSubscriber {
  onReply(reply: Extract<Decoded, { kind: 'echo-reply' }>, source: string, atNs: bigint): void;
  onIcmpError(error: Extract<Decoded, { kind: 'error' }>, source: string): void;
}

/** An engine's attachment to the hub: its identifier, sending, and detaching. */
export interface HubMember {
  readonly id: number;
  /** Opens the family's socket now if it is not open. @throws SocketRefusedError */
  ensure(family: Family): void;
  send(family: Family, packet: Buffer, addr: string, onSent: (error: Error | null, atNs: bigint) => void): void;
  /** Gives the identifier back; the last member to detach closes the sockets. */
  detach(): void;
}

export interface HubStats {
  /** Packets received on the hub's sockets (every ICMP packet the host got while open). */
  packets: number;
  /** Echo replies and ICMP errors for identifiers no engine of this process owns. */
  foreign: number;
  /** Packets too short to decode, or with a wrong IPv4 checksum. */
  undecodable: number;
  /** Sockets opened since the hub was made (a test reads the sharing from it). */
  opened: number;
}

export class IcmpHub {
  private readonly members = new Map<number, HubSubscriber>();
  private readonly sockets = new Map<Family, IcmpSocket>();
  private readonly counters: HubStats = { packets: 0, foreign: 0, undecodable: 0, opened: 0 };

  constructor(
    private readonly factory: IcmpSocketFactory = rawSocketFactory,
    private readonly randomId: () => number = () => randomInt(0, 0x10000),
  ) {}

  /**
   * Registers an engine. `forcedId` takes that identifier (tests that play a foreign pinger); else a random free one.
   * @throws Error when the forced identifier is taken here, or all 65,536 are.
   */
  attach(sub: HubSubscriber, forcedId?: number): HubMember {
    let id: number;
    if (forcedId !== undefined) {
      if (!Number.isInteger(forcedId) || forcedId < 0 || forcedId > 0xffff) throw new Error(`ICMP identifier out of range: ${String(forcedId)}`);
      if (this.members.has(forcedId)) throw new Error(`ICMP identifier ${String(forcedId)} is already used by another engine of this process`);
      id = forcedId;
    } else {
      if (this.members.size >= 0x10000) throw new Error('every ICMP identifier is in use');
      id = this.randomId() & 0xffff;
      while (this.members.has(id)) id = (id + 1) & 0xffff;
    }
    this.members.set(id, sub);
    let attached = true;
    return {
      id,
      ensure: (family) => void this.socket(family),
      send: (family, packet, addr, onSent) => {
        if (!attached) return onSent(new Error('the engine is closed'), 0n);
        this.socket(family).send(packet, addr, onSent);
      },
      detach: () => {
        if (!attached) return;
        attached = false;
        this.members.delete(id);
        if (this.members.size === 0) this.closeAll();
      },
    };
  }

  /** The number of attached engines and open sockets. */
  get usage(): { members: number; sockets: number } {
    return { members: this.members.size, sockets: this.sockets.size };
  }

  stats(): HubStats {
    return { ...this.counters };
  }

  private socket(family: Family): IcmpSocket {
    const open = this.sockets.get(family);
    if (open) return open;
    let s: IcmpSocket;
    try {
      s = this.openSocket(family);
    } catch (e) {
      if (e instanceof SocketRefusedError) throw e;
      const msg = (e as Error).message;
      throw new SocketRefusedError(ERRNO_BY_MESSAGE[msg] ?? 'EUNKNOWN', family, msg);
    }
    this.counters.opened++;
    this.sockets.set(family, s);
    return s;
  }

  private openSocket(family: Family): IcmpSocket {
    const s: IcmpSocket = this.factory.open(family, {
      message: (packet, source, atNs) => this.receive(family, packet, source, atNs),
      error: () => {
        // raw-socket closes a socket after an error; the next send opens another.
        if (this.sockets.get(family) === s) this.sockets.delete(family);
      },
    });
    return s;
  }

  private closeAll(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }

  private receive(family: Family, packet: Buffer, source: string, atNs: bigint): void {
    this.counters.packets++;
    const d = decode(family, packet);
    if (d.kind === 'bad') {
      this.counters.undecodable++;
      return;
    }
    if (d.kind !== 'echo-reply' && d.kind !== 'error') return;
    const sub = this.members.get(d.id);
    if (!sub) {
      this.counters.foreign++;
      return;
    }
    const from = canonicalIp(source);
    if (d.kind === 'echo-reply') sub.onReply(d, from, atNs);
    else sub.onIcmpError(d, from);
  }
}

/** The process's hub: every raw engine of the process shares its sockets. */
export const processHub = new IcmpHub();
