/** The raw engine's ICMP codec: echo round trip, the Internet checksum, ICMP errors of both families. */
import { describe, expect, it } from 'vitest';
import { canonicalIp, checksum, decode, ECHO_BYTES, encodeEcho } from '../../../../agent/pinger/raw/packet.js';
import { FakeSockets, icmpErrorV4, icmpErrorV6, ipv4Header, type Sent } from './fake-socket.js';

const NONCE = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const sent = (family: 4 | 6, addr: string, id = 0xbeef, seq = 7): Sent => ({ family, packet: encodeEcho(family, id, seq, NONCE), addr, at: 0, id, seq });

describe('checksum (RFC 1071)', () => {
  it('matches the RFC 1071 worked example and covers an odd trailing byte', () => {
    expect(checksum(Buffer.from('0001f203f4f5f6f7', 'hex'))).toBe(0x220d);
    expect(checksum(Buffer.from('01', 'hex'))).toBe(0xfeff);
  });
});

describe('encodeEcho / decode', () => {
  it('round-trips an IPv4 echo: type 8, a checksum that verifies, and the reply decodes to id, seq, nonce, 64 bytes', () => {
    const req = encodeEcho(4, 0xbeef, 7, NONCE);
    expect(req.length).toBe(ECHO_BYTES);
    expect(req[0]).toBe(8);
    expect(checksum(req)).toBe(0);
    const d = decode(4, FakeSockets.replyTo(sent(4, '10.0.0.9')));
    expect(d).toEqual({ kind: 'echo-reply', id: 0xbeef, seq: 7, nonce: NONCE, bytes: 64 });
  });

  it('builds ICMPv6 echoes (type 128, checksum left to the kernel) and decodes replies without an IP header', () => {
    const req = encodeEcho(6, 1, 2, NONCE);
    expect([req[0], req.readUInt16BE(2)]).toEqual([128, 0]);
    expect(decode(6, FakeSockets.replyTo(sent(6, 'fd00::1', 1, 2)))).toMatchObject({ kind: 'echo-reply', id: 1, seq: 2 });
  });

  it('rejects a wrong IPv4 checksum and truncated packets, and tells our own echo requests apart', () => {
    const reply = FakeSockets.replyTo(sent(4, '10.0.0.9'));
    const corrupt = Buffer.from(reply);
    corrupt[40] = (corrupt[40] ?? 0) ^ 0xff;
    expect(decode(4, corrupt)).toEqual({ kind: 'bad', reason: 'checksum' });
    expect(decode(4, reply.subarray(0, 24))).toEqual({ kind: 'bad', reason: 'truncated' });
    expect(decode(6, Buffer.alloc(4))).toEqual({ kind: 'bad', reason: 'truncated' });
    // an echo reply cut inside its nonce (checksum recomputed so only the length is wrong)
    const short = FakeSockets.replyTo({ ...sent(4, '10.0.0.9'), packet: encodeEcho(4, 1, 1, NONCE).subarray(0, 12) });
    expect(decode(4, short)).toEqual({ kind: 'bad', reason: 'truncated' });
    const ownRequest = Buffer.concat([ipv4Header('127.0.0.1', '127.0.0.1', ECHO_BYTES), encodeEcho(4, 1, 1, NONCE)]);
    expect(decode(4, ownRequest)).toEqual({ kind: 'echo-request' });
  });

  it('rejects a nonce of the wrong size', () => {
    expect(() => encodeEcho(4, 1, 1, Buffer.alloc(3))).toThrow(/nonce/);
  });
});

describe('ICMP errors', () => {
  it('reads an IPv4 destination-unreachable: kind by code, and the quoted identifier, sequence, destination, nonce', () => {
    const s = sent(4, '10.77.0.15');
    expect(decode(4, icmpErrorV4(s, 3, 1, '10.77.0.15'))).toEqual({ kind: 'error', error: 'host-unreachable', id: 0xbeef, seq: 7, dst: '10.77.0.15', nonce: NONCE });
    expect(decode(4, icmpErrorV4(s, 3, 0, '10.0.0.254'))).toMatchObject({ error: 'net-unreachable' });
    expect(decode(4, icmpErrorV4(s, 3, 13, '10.0.0.254'))).toMatchObject({ error: 'admin-prohibited' });
    expect(decode(4, icmpErrorV4(s, 3, 4, '10.0.0.254'))).toMatchObject({ error: 'other' });
    expect(decode(4, icmpErrorV4(s, 11, 0, '10.0.0.254'))).toMatchObject({ error: 'time-exceeded' });
  });

  it('keeps an RFC 792 minimal quote (8 bytes of the request) as an error without a nonce', () => {
    const s = sent(4, '10.77.0.15');
    const full = icmpErrorV4(s, 3, 1, '10.77.0.15');
    const icmp = full.subarray(20, 20 + 8 + 20 + 8);
    const fixed = Buffer.from(icmp);
    fixed.writeUInt16BE(0, 2);
    fixed.writeUInt16BE(checksum(fixed), 2);
    expect(decode(4, Buffer.concat([ipv4Header('10.77.0.15', '10.0.0.1', fixed.length), fixed]))).toMatchObject({ kind: 'error', seq: 7, nonce: null });
  });

  it('ignores errors about packets that are not our echo requests', () => {
    const udp = { ...sent(4, '10.0.0.9'), packet: Buffer.alloc(16) };
    const err = icmpErrorV4(udp, 3, 3, '10.0.0.9');
    err[20 + 8 + 9] = 17; // the quoted IP header says UDP
    const icmp = err.subarray(20);
    icmp.writeUInt16BE(0, 2);
    icmp.writeUInt16BE(checksum(icmp), 2);
    expect(decode(4, err)).toEqual({ kind: 'other' });
  });

  it('reads ICMPv6 destination-unreachable (address unreachable = host-unreachable) and time exceeded', () => {
    const s = sent(6, 'fd77::15', 0x1234, 9);
    const dst = Buffer.from('fd770000000000000000000000000015', 'hex');
    expect(decode(6, icmpErrorV6(s, 1, 3, dst))).toEqual({ kind: 'error', error: 'host-unreachable', id: 0x1234, seq: 9, dst: 'fd77::15', nonce: NONCE });
    expect(decode(6, icmpErrorV6(s, 1, 1, dst))).toMatchObject({ error: 'admin-prohibited' });
    expect(decode(6, icmpErrorV6(s, 1, 0, dst))).toMatchObject({ error: 'net-unreachable' });
    expect(decode(6, icmpErrorV6(s, 3, 0, dst))).toMatchObject({ error: 'time-exceeded' });
    expect(decode(6, Buffer.from([134, 0, 0, 0, 0, 0, 0, 0]))).toEqual({ kind: 'other' });
  });

  it('spells IPv6 addresses one way', () => {
    expect(canonicalIp('FD77:0:0:0:0:0:0:15')).toBe('fd77::15');
    expect(canonicalIp('10.0.0.1')).toBe('10.0.0.1');
  });
});
