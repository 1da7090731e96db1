/**
 * A fake IcmpSocketFactory for the raw engine's unit tests: records every packet sent (with the manual clock's time)
 * and lets the test deliver crafted packets as the kernel would (IPv4 with an IP header, ICMPv6 without).
 */
import type { Family } from '../../../../agent/pinger/raw/packet.js';
import { checksum } from '../../../../agent/pinger/raw/packet.js';
import type { IcmpSocketFactory, IcmpSocketHandlers } from '../../../../agent/pinger/raw/socket.js';
import type { ManualClock } from '../../../helpers/manual-clock.js';

export interface Sent {
  family: Family;
  packet: Buffer;
  addr: string;
  at: number;
  id: number;
  seq: number;
}

export class FakeSockets implements IcmpSocketFactory {
  readonly sent: Sent[] = [];
  readonly open_: Partial<Record<Family, IcmpSocketHandlers>> = {};
  opened = 0;
  closed = 0;
  /** Nanoseconds the next send is stamped with; advanced by the test. */
  nowNs = 1_000_000_000n;
  refuse: string | null = null;
  /** When set, every send reports this error (sendto refused: ENETUNREACH ...) instead of a timestamp. */
  sendError: Error | null = null;

  constructor(private readonly clock: ManualClock) {}

  open(family: Family, on: IcmpSocketHandlers) {
    if (this.refuse) throw new Error(this.refuse);
    this.opened++;
    this.open_[family] = on;
    return {
      send: (packet: Buffer, addr: string, onSent: (e: Error | null, at: bigint) => void) => {
        this.sent.push({ family, packet: Buffer.from(packet), addr, at: this.clock.now(), id: packet.readUInt16BE(4), seq: packet.readUInt16BE(6) });
        if (this.sendError) onSent(this.sendError, 0n);
        else onSent(null, this.nowNs);
      },
      close: () => {
        this.closed++;
        delete this.open_[family];
      },
    };
  }

  /** Delivers a packet to the family's socket as received from `source` at `atNs`. */
  deliver(family: Family, packet: Buffer, source: string, atNs = this.nowNs): void {
    const on = this.open_[family];
    if (!on) throw new Error(`no IPv${String(family)} socket is open`);
    on.message(packet, source, atNs);
  }

  /** The echo reply a host would send for one of our requests (an IPv4 one wrapped in an IP header). */
  static replyTo(s: Sent, edit?: (icmp: Buffer) => void): Buffer {
    const icmp = Buffer.from(s.packet);
    icmp[0] = s.family === 4 ? 0 : 129;
    icmp.writeUInt16BE(0, 2);
    edit?.(icmp);
    if (s.family === 4) {
      if (icmp.readUInt16BE(2) === 0) icmp.writeUInt16BE(checksum(icmp), 2);
      return Buffer.concat([ipv4Header(s.addr, '10.0.0.1', icmp.length), icmp]);
    }
    return icmp;
  }
}

/** A 20-byte IPv4 header (protocol ICMP) from `src` to `dst`. */
export function ipv4Header(src: string, dst: string, payload: number): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload, 2);
  h[8] = 64;
  h[9] = 1;
  src.split('.').forEach((x, i) => (h[12 + i] = Number(x)));
  dst.split('.').forEach((x, i) => (h[16 + i] = Number(x)));
  h.writeUInt16BE(checksum(h), 10);
  return h;
}

/** An ICMPv4 error (type/code) from `from`, quoting our request `s` (its IP header and the whole request). */
export function icmpErrorV4(s: Sent, type: number, code: number, from: string): Buffer {
  const quoted = Buffer.concat([ipv4Header('10.0.0.1', s.addr, s.packet.length), s.packet]);
  const icmp = Buffer.concat([Buffer.from([type, code, 0, 0, 0, 0, 0, 0]), quoted]);
  icmp.writeUInt16BE(checksum(icmp), 2);
  return Buffer.concat([ipv4Header(from, '10.0.0.1', icmp.length), icmp]);
}

/** An ICMPv6 error quoting our request `s` after a 40-byte IPv6 header to `dst16` (16 bytes). */
export function icmpErrorV6(s: Sent, type: number, code: number, dst16: Buffer): Buffer {
  const ip6 = Buffer.alloc(40);
  ip6[0] = 0x60;
  ip6.writeUInt16BE(s.packet.length, 4);
  ip6[6] = 58;
  ip6[7] = 64;
  dst16.copy(ip6, 24);
  return Buffer.concat([Buffer.from([type, code, 0, 0, 0, 0, 0, 0]), ip6, s.packet]);
}
