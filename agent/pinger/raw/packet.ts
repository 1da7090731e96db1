/**
 * ICMP echo codec for the raw engine, IPv4 (RFC 792) and ICMPv6 (RFC 4443). Pure functions over Buffers: no socket.
 *
 * An echo request is 8 header bytes (type, code, checksum, identifier, sequence) and a payload of PAYLOAD_BYTES whose
 * first NONCE_BYTES are the probe's random nonce (the rest is a fixed pattern), 64 bytes in all like fping's default.
 * An IPv4 raw socket hands us the IP header too; an ICMPv6 raw socket does not, and the kernel computes and verifies
 * ICMPv6 checksums itself (RFC 3542 3.1: they cover a pseudo-header we do not see), so `decode` checks the checksum of
 * IPv4 packets only.
 */

export type Family = 4 | 6;

export const NONCE_BYTES = 16;
/** fping's default data size (-b 56): 64 ICMP bytes, 84 with the IPv4 header. */
export const PAYLOAD_BYTES = 56;
export const ECHO_BYTES = 8 + PAYLOAD_BYTES;

const ECHO_REQUEST = { 4: 8, 6: 128 } as const;
const ECHO_REPLY = { 4: 0, 6: 129 } as const;

/** The closed set of ICMP error kinds (agent/ports.ts IcmpErrorReport.kind). */
export type IcmpErrorKind = 'net-unreachable' | 'host-unreachable' | 'protocol-unreachable' | 'port-unreachable' | 'admin-prohibited' | 'time-exceeded' | 'other';

/** ICMPv4 destination-unreachable codes (type 3). 9, 10, 13: administratively prohibited (RFC 1122, 1812). */
const UNREACH_V4: Record<number, IcmpErrorKind> = { 0: 'net-unreachable', 1: 'host-unreachable', 2: 'protocol-unreachable', 3: 'port-unreachable', 6: 'net-unreachable', 7: 'host-unreachable', 9: 'admin-prohibited', 10: 'admin-prohibited', 13: 'admin-prohibited' };
/** ICMPv6 destination-unreachable codes (type 1): 0 no route, 1 prohibited, 3 address unreachable, 4 port, 5/6 policy. */
const UNREACH_V6: Record<number, IcmpErrorKind> = { 0: 'net-unreachable', 1: 'admin-prohibited', 3: 'host-unreachable', 4: 'port-unreachable', 5: 'admin-prohibited', 6: 'admin-prohibited' };

export type Decoded =
  | { kind: 'echo-reply'; id: number; seq: number; nonce: Buffer; bytes: number }
  /** Our own requests, seen on loopback (the raw socket gets every ICMP packet the host receives). */
  | { kind: 'echo-request' }
  /** An ICMP error about an echo request: the identifier, sequence, destination (and nonce, if quoted) of that request. */
  | { kind: 'error'; error: IcmpErrorKind; id: number; seq: number; dst: string; nonce: Buffer | null }
  /** Any other ICMP message (router advertisements, errors about non-echo packets ...): not ours, not bad. */
  | { kind: 'other' }
  | { kind: 'bad'; reason: 'truncated' | 'checksum' };

/** The Internet checksum (RFC 1071) of buf[start, end). */
export function checksum(buf: Buffer, start = 0, end = buf.length): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += buf.readUInt16BE(i);
  if (i < end) sum += (buf[i] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Builds an echo request. The IPv4 checksum is filled in; the ICMPv6 one is left 0 for the kernel. */
export function encodeEcho(family: Family, id: number, seq: number, nonce: Buffer): Buffer {
  if (nonce.length !== NONCE_BYTES) throw new Error(`nonce must be ${String(NONCE_BYTES)} bytes`);
  const b = Buffer.alloc(ECHO_BYTES);
  b[0] = ECHO_REQUEST[family];
  b.writeUInt16BE(id & 0xffff, 4);
  b.writeUInt16BE(seq & 0xffff, 6);
  nonce.copy(b, 8);
  for (let i = 8 + NONCE_BYTES; i < ECHO_BYTES; i++) b[i] = i & 0xff;
  if (family === 4) b.writeUInt16BE(checksum(b), 2);
  return b;
}

function ipv4String(b: Buffer, at: number): string {
  return `${String(b[at])}.${String(b[at + 1])}.${String(b[at + 2])}.${String(b[at + 3])}`;
}

function ipv6String(b: Buffer, at: number): string {
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(b.readUInt16BE(at + 2 * i).toString(16));
  return canonicalIp(words.join(':'));
}

/** One spelling per address (lower case, zeros compressed as RFC 5952), so a reply's source compares with the target. */
export function canonicalIp(addr: string): string {
  if (!addr.includes(':')) return addr;
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

/**
 * Decodes one packet as the raw socket gives it (IPv4: with its IP header; IPv6: the ICMPv6 message alone).
 * Never throws: anything short is `bad/truncated`, an IPv4 checksum mismatch `bad/checksum`.
 */
export function decode(family: Family, packet: Buffer): Decoded {
  let icmp = packet;
  if (family === 4) {
    if (packet.length < 20) return { kind: 'bad', reason: 'truncated' };
    const ihl = ((packet[0] ?? 0) & 0x0f) * 4;
    if (ihl < 20 || packet.length < ihl + 8) return { kind: 'bad', reason: 'truncated' };
    icmp = packet.subarray(ihl);
    if (checksum(icmp) !== 0) return { kind: 'bad', reason: 'checksum' };
  } else if (icmp.length < 8) {
    return { kind: 'bad', reason: 'truncated' };
  }
  const type = icmp[0] ?? 0;
  const code = icmp[1] ?? 0;
  if (type === ECHO_REPLY[family]) {
    if (icmp.length < 8 + NONCE_BYTES) return { kind: 'bad', reason: 'truncated' };
    return { kind: 'echo-reply', id: icmp.readUInt16BE(4), seq: icmp.readUInt16BE(6), nonce: icmp.subarray(8, 8 + NONCE_BYTES), bytes: icmp.length };
  }
  if (type === ECHO_REQUEST[family]) return { kind: 'echo-request' };
  const error = family === 4 ? errorKindV4(type, code) : errorKindV6(type, code);
  if (error === null) return { kind: 'other' };
  return quoted(family, icmp.subarray(8), error);
}

function errorKindV4(type: number, code: number): IcmpErrorKind | null {
  if (type === 3) return UNREACH_V4[code] ?? 'other';
  if (type === 11) return 'time-exceeded';
  return null;
}

function errorKindV6(type: number, code: number): IcmpErrorKind | null {
  if (type === 1) return UNREACH_V6[code] ?? 'other';
  if (type === 3) return 'time-exceeded';
  return null;
}

/** Reads the quoted original datagram of an ICMP error: it must be one of our echo requests to say which probe. */
function quoted(family: Family, orig: Buffer, error: IcmpErrorKind): Decoded {
  if (family === 4) {
    if (orig.length < 20) return { kind: 'bad', reason: 'truncated' };
    const ihl = ((orig[0] ?? 0) & 0x0f) * 4;
    if (orig[9] !== 1) return { kind: 'other' };
    if (ihl < 20 || orig.length < ihl + 8) return { kind: 'bad', reason: 'truncated' };
    if (orig[ihl] !== ECHO_REQUEST[4]) return { kind: 'other' };
    return { kind: 'error', error, id: orig.readUInt16BE(ihl + 4), seq: orig.readUInt16BE(ihl + 6), dst: ipv4String(orig, 16), nonce: quotedNonce(orig, ihl + 8) };
  }
  if (orig.length < 48) return { kind: 'bad', reason: 'truncated' };
  if (orig[6] !== 58 || orig[40] !== ECHO_REQUEST[6]) return { kind: 'other' };
  return { kind: 'error', error, id: orig.readUInt16BE(44), seq: orig.readUInt16BE(46), dst: ipv6String(orig, 24), nonce: quotedNonce(orig, 48) };
}

/** The nonce inside a quoted request, when the error quotes that much (Linux quotes up to 576 bytes; RFC 792 only 8). */
function quotedNonce(orig: Buffer, payloadAt: number): Buffer | null {
  return orig.length >= payloadAt + NONCE_BYTES ? orig.subarray(payloadAt, payloadAt + NONCE_BYTES) : null;
}
