import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cidrContains,
  formatIp,
  formatListen,
  parseCidr,
  parseDuration,
  parseIp,
  parseListen,
} from '../../../agent/config/load.js';

describe('addresses', () => {
  it('parses IPv4 and IPv6 (compressed, embedded IPv4) and rejects zones', () => {
    expect(parseIp('10.0.0.1')).toEqual({ version: 4, value: 0x0a000001n });
    expect(parseIp('::1')).toEqual({ version: 6, value: 1n });
    expect(parseIp('::')).toEqual({ version: 6, value: 0n });
    expect(parseIp('::ffff:10.0.0.1')).toEqual({ version: 6, value: 0xffff0a000001n });
    expect(parseIp('fe80::1%eth0')).toBeNull();
    expect(parseIp('10.0.0.256')).toBeNull();
    expect(parseIp('host')).toBeNull();
  });

  it('formatIp(parseIp(x)) round-trips every IPv4 and IPv6 address', () => {
    fc.assert(
      fc.property(fc.ipV4(), (s) => {
        expect(formatIp(parseIp(s)!)).toBe(s);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const ip = parseIp(s);
        expect(ip).not.toBeNull();
        const back = formatIp(ip!);
        expect(isIPv6(back)).toBe(true);
        expect(parseIp(back)).toEqual(ip);
      }),
    );
  });

  it('cidr membership', () => {
    const c = parseCidr('10.0.0.0/24');
    expect(cidrContains(c, parseIp('10.0.0.255')!)).toBe(true);
    expect(cidrContains(c, parseIp('10.0.1.0')!)).toBe(false);
    expect(cidrContains(c, parseIp('::1')!)).toBe(false);
    expect(cidrContains(parseCidr('0.0.0.0/0'), parseIp('1.2.3.4')!)).toBe(true);
    expect(cidrContains(parseCidr('fd00::/8'), parseIp('fdff::1')!)).toBe(true);
    expect(() => parseCidr('fd00::1/64')).toThrow('host bits are set (the network is fd00::/64)');
    expect(() => parseCidr('fd00::/129')).toThrow(/longer than 128/);
  });

  it('listen round-trips', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 65535 }), (host, port) => {
        const l = { host, port };
        expect(parseListen(formatListen(l))).toEqual(l);
      }),
    );
    expect(() => parseListen('127.0.0.1:65536')).toThrow(/port/);
    expect(() => parseListen('127.0.0.1:')).toThrow(/port/);
  });

  it('durations in ms are whole and scale with the unit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100_000 }), (n) => {
        expect(parseDuration(`${n}ms`)).toBe(n);
        expect(parseDuration(`${n}s`)).toBe(n * 1000);
        expect(parseDuration(n)).toBe(n * 1000);
        expect(parseDuration(`${n}m`)).toBe(n * 60_000);
      }),
    );
  });
});
