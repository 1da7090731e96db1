/**
 * openPinger's choice on the real kernel: as root the raw socket opens; without CAP_NET_RAW (setpriv drops it from
 * the bounding set of a child, util-linux) `raw` fails naming the capability and `auto` falls back to fping saying why.
 * Runs the built module (dist/): `npm run build` first.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFpingCountLine, parseFpingIcmpError } from '../../../agent/pinger/fping.js';

const SELECT = new URL('../../../dist/agent/pinger/select.js', import.meta.url).pathname;
const SCRIPT = `const { openPinger } = await import(${JSON.stringify(SELECT)});
const out = {};
for (const engine of ['auto', 'raw', 'fping']) {
  try { const c = await openPinger({ engine, fpingPath: '/usr/bin/fping' }); out[engine] = { engine: c.engine, reason: c.reason }; await c.pinger.close?.(); }
  catch (e) { out[engine] = { error: e.message }; }
}
console.log(JSON.stringify(out));`;

function choose(dropNetRaw: boolean): Record<string, { engine?: string; reason?: string; error?: string }> {
  if (!existsSync(SELECT)) throw new Error(`${SELECT} is missing: run \`npm run build\` first`);
  if (process.getuid?.() !== 0) throw new Error('this test needs root (CI is root): it compares with and without CAP_NET_RAW');
  const argv = ['--input-type=module', '-e', SCRIPT];
  const out = dropNetRaw
    ? execFileSync('setpriv', ['--bounding-set=-net_raw', '--inh-caps=-net_raw', process.execPath, ...argv], { encoding: 'utf8' })
    : execFileSync(process.execPath, argv, { encoding: 'utf8' });
  return JSON.parse(out) as Record<string, { engine?: string; reason?: string; error?: string }>;
}

describe('openPinger', () => {
  it('with CAP_NET_RAW: auto and raw run the raw engine; fping the binary', () => {
    const c = choose(false);
    expect(c['auto']).toEqual({ engine: 'raw', reason: 'auto: the raw socket opened (CAP_NET_RAW)' });
    expect(c['raw']).toEqual({ engine: 'raw', reason: 'configured (liveness.engine: raw)' });
    expect(c['fping']).toEqual({ engine: 'fping', reason: 'configured (liveness.engine: fping)' });
  });

  it('without CAP_NET_RAW: raw fails naming it, auto falls back to fping with the reason', () => {
    const c = choose(true);
    expect(c['raw']!.error).toMatch(/^liveness\.engine raw: raw socket refused \(EPERM: needs CAP_NET_RAW\); grant CAP_NET_RAW/);
    expect(c['auto']).toEqual({ engine: 'fping', reason: 'auto: raw socket refused (EPERM: needs CAP_NET_RAW); using fping at /usr/bin/fping' });
  });
});

describe('fping output parsing (lines as fping 5.1 printed them in the namespace tests)', () => {
  it('reads -c per-probe lines and ICMP error lines', () => {
    expect(parseFpingCountLine('10.77.0.11 : [1], 64 bytes, 0.071 ms (0.068 avg, 0% loss)')).toEqual({ kind: 'reply', addr: '10.77.0.11', seq: 1, rtt_ms: 0.071, bytes: 64 });
    expect(parseFpingCountLine('10.77.0.1  : [0], timed out (NaN avg, 100% loss)')).toEqual({ kind: 'timeout', addr: '10.77.0.1', seq: 0 });
    expect(parseFpingCountLine('10.77.0.15 : xmt/rcv/%loss = 3/0/100%')).toBeNull();
    expect(parseFpingIcmpError('ICMP Host Unreachable from 10.77.0.15 for ICMP Echo sent to 10.77.0.15')).toEqual({ target: '10.77.0.15', error: { kind: 'host-unreachable', from: '10.77.0.15' } });
    expect(parseFpingIcmpError('ICMP Time Exceeded from 10.0.0.254 for ICMP Echo sent to 10.9.9.9')?.error.kind).toBe('time-exceeded');
  });
});
