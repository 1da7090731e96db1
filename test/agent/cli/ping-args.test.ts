/** metalctl ping's argument reading: fping's spellings, ranges, -g's expansion, -f's file format. */
import { describe, expect, it } from 'vitest';
import { effectiveTimeoutMs, generateTargets, parsePingArgs, PingUsageError, targetsFromText } from '../../../agent/cli/ping-args.js';
import { fpingMs, lossPercent, summaryLine } from '../../../agent/cli/ping-format.js';

describe('parsePingArgs', () => {
  it('reads options alone, with the value attached, grouped, and in their long spellings', () => {
    const a = parsePingArgs(['-c', '3', '-t200', '-qs', '--retry=1', '--period', '20', '-B', '2.5', '-i0', '10.0.0.1', '10.0.0.2']);
    expect(a).toMatchObject({ count: 3, timeoutMs: 200, quiet: true, stats: true, retries: 1, periodMs: 20, backoff: 2.5, intervalMs: 0 });
    expect(a.targets).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(parsePingArgs(['--engine=raw', '--fping-path', '/opt/fping', '-a', '--', '-x'])).toMatchObject({ engine: 'raw', fpingPath: '/opt/fping', alive: true, targets: ['-x'] });
  });

  it("defaults as fping: 3 retries, back-off 1.5, 10 ms interval, 1 s period, 500 ms timeout (count mode: the period up to 2 s)", () => {
    const a = parsePingArgs(['10.0.0.1']);
    expect(a).toMatchObject({ retries: 3, backoff: 1.5, intervalMs: 10, periodMs: 1000, engine: 'auto', fpingPath: '/usr/bin/fping' });
    expect(effectiveTimeoutMs(a)).toBe(500);
    expect(effectiveTimeoutMs(parsePingArgs(['-c', '1', '-p', '300', '10.0.0.1']))).toBe(300);
    expect(effectiveTimeoutMs(parsePingArgs(['-c', '1', '-p', '5000', '10.0.0.1']))).toBe(2000);
    expect(effectiveTimeoutMs(parsePingArgs(['-c', '1', '-p', '5000', '-t', '70', '10.0.0.1']))).toBe(70);
  });

  it.each([
    [['-c', '0', 'h'], 'count 0 not valid, must be between 1 and 1000000'],
    [['-c', '1.5', 'h'], "-c: count '1.5' is not a whole number"],
    [['-c', 'abc', 'h'], "-c: count 'abc' is not a whole number"],
    [['-t', '0', 'h'], 'timeout 0 not valid, must be between 1 and 600000'],
    [['-t', '-1', 'h'], "-t: timeout '-1' is not a number"],
    [['-r', '101', 'h'], 'retry count 101 not valid, must be between 0 and 100'],
    [['-B', '0.5', 'h'], 'backoff factor 0.5 not valid, must be between 1.0 and 5.0'],
    [['-B', '5.1', 'h'], 'backoff factor 5.1 not valid, must be between 1.0 and 5.0'],
    [['-i', '60001', 'h'], 'interval 60001 not valid, must be between 0 and 60000'],
    [['-p', '0', '-c', '1', 'h'], 'period 0 not valid, must be between 1 and 3600000'],
    [['-z', 'h'], "invalid option -- 'z'"],
    [['--frobnicate', 'h'], "unrecognized option '--frobnicate'"],
    [['--quiet=1', 'h'], "option '--quiet' doesn't allow an argument"],
    [['-c'], "option requires an argument -- 'c'"],
    [['-a', '-u', 'h'], 'specify only one of a, u'],
    [['-f', 'list', 'h'], '-f FILE and targets on the command line: give one or the other'],
    [['-g', '-f', 'list'], '-g generates the targets only without -f'],
    [['--engine', 'ping', 'h'], "--engine 'ping': expected raw, fping or auto"],
    [[], 'no target: give addresses or names, -f FILE or -g CIDR'],
    [['-g', '10.0.0.0/15'], '-g 10.0.0.0/15: a /15 has 131,070 hosts; metalctl ping generates at most a /16 (65,534 hosts)'],
  ])('refuses %j: %s', (argv, message) => {
    expect(() => parsePingArgs(argv)).toThrow(new PingUsageError(message));
  });

  it('accepts the range edges', () => {
    expect(parsePingArgs(['-B', '1', '-r', '0', '-i', '0', '-t', '1', 'h'])).toMatchObject({ backoff: 1, retries: 0, intervalMs: 0, timeoutMs: 1 });
    expect(parsePingArgs(['-B', '5', '-c', '1000000', 'h'])).toMatchObject({ backoff: 5, count: 1000000 });
  });
});

describe('generateTargets (-g)', () => {
  it("takes a network's hosts without its network and broadcast addresses, as fping", () => {
    expect(generateTargets(['127.0.0.1/30'])).toEqual(['127.0.0.1', '127.0.0.2']);
    expect(generateTargets(['10.1.2.0/24'])).toHaveLength(254);
    expect(generateTargets(['10.1.0.0/16'])).toHaveLength(65534);
  });

  it('takes every address of a /31 and a /32, and a start-end range', () => {
    expect(generateTargets(['127.0.0.1/31'])).toEqual(['127.0.0.0', '127.0.0.1']);
    expect(generateTargets(['127.0.0.1/32'])).toEqual(['127.0.0.1']);
    expect(generateTargets(['10.0.0.254', '10.0.1.1'])).toEqual(['10.0.0.254', '10.0.0.255', '10.0.1.0', '10.0.1.1']);
  });

  it('refuses what is not one network or two addresses', () => {
    expect(() => generateTargets(['127.0.0.1'])).toThrow(PingUsageError);
    expect(() => generateTargets(['fd00::/120'])).toThrow(/IPv4 network/);
    expect(() => generateTargets(['10.0.0.9', '10.0.0.1'])).toThrow(/start address is after the end/);
    expect(() => generateTargets(['10.0.0.0', '10.2.0.0'])).toThrow(/131073 addresses; at most 65536/);
  });
});

describe('targetsFromText (-f)', () => {
  it('takes the first word of each line and skips blank and # lines', () => {
    expect(targetsFromText('10.0.0.1\n# a comment\n\n  10.0.0.2 rack a\r\nhost-3\n')).toEqual(['10.0.0.1', '10.0.0.2', 'host-3']);
  });
});

describe("fping's figures", () => {
  it('writes round trips with 3, 2, 1 and 0 decimals by magnitude', () => {
    expect([0.0421, 2.5, 25.04, 250.4, NaN].map(fpingMs)).toEqual(['0.042', '2.50', '25.0', '250', 'NaN']);
  });

  it('truncates the loss to a whole percent (2 of 3 lost is 66%)', () => {
    expect(lossPercent(2, 3)).toBe(66);
    expect(summaryLine('h', 3, [1.5])).toBe('h : xmt/rcv/%loss = 3/1/66%, min/avg/max = 1.50/1.50/1.50\n');
    expect(summaryLine('h', 2, [])).toBe('h : xmt/rcv/%loss = 2/0/100%\n');
  });
});
