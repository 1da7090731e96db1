/**
 * `metalctl ping` against Debian's fping 5.1 on the same targets in the same test: 127.0.0.1 answers, SILENT is
 * present but silent (an nftables rule drops its echo requests; needs root and Debian `nftables`, as CI has). Each
 * stream is compared line by line with fping's, the round-trip and elapsed digits masked. metalctl runs its engines
 * in this process: the fping engine (`--engine fping`) and metald's raw engine (`--engine raw`, root's CAP_NET_RAW),
 * whose count mode gives the -c lines. Where these cannot run, the tests fail saying why.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../../agent/cli/metalctl.js';
import { runPing, type PingDeps } from '../../../agent/cli/ping.js';
import type { EngineChoice } from '../../../agent/pinger/select.js';
import type { Pinger } from '../../../agent/ports.js';
import { tempFiles } from './helpers.js';
import { Sink } from './stub-server.js';

const FPING = '/usr/bin/fping';
const TABLE = `metald_cli_ping_${process.pid}`;
const ALIVE = '127.0.0.1';
const SILENT = '127.0.9.19';
const NOWHERE = 'no-such-host.invalid';

interface Outcome {
  code: number;
  stdout: string[];
  stderr: string[];
}

/** Round trips and elapsed seconds differ run to run: every decimal number (not an address) becomes '#'. */
const mask = (text: string): string[] => text.replace(/(?<![\d.])\d+\.\d+(?![\d.])/g, '#').split('\n');

function fping(args: string[]): Outcome {
  const r = spawnSync(FPING, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: mask(r.stdout), stderr: mask(r.stderr) };
}

async function metalctl(args: string[], deps: Partial<PingDeps> = {}): Promise<Outcome> {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = deps === undefined || Object.keys(deps).length === 0 ? await run(['ping', ...args], { stdout, stderr, env: {} }) : await runPing(args, { stdout, stderr, env: {} }, deps);
  return { code, stdout: mask(stdout.text), stderr: mask(stderr.text) };
}

/** The real fping engine, in-process, under `--engine fping`. */
const FPING_ENGINE = ['--engine', 'fping', '--fping-path', FPING];

/** metald's raw engine, in-process (this test runs as root: CAP_NET_RAW), with its own count mode. */
const RAW_ENGINE = ['--engine', 'raw'];

/** fping prints count-mode lines as probes settle, so two targets' lines interleave by time: compare them in (target, seq) order. */
const byTargetThenSeq = (lines: string[]): string[] => [...lines].sort();

describe('metalctl ping against Debian fping 5.1 (real peers)', () => {
  let ruleAdded = false;
  beforeAll(() => {
    if (!existsSync(FPING)) throw new Error(`${FPING} is missing: .ci/run installs it (apt-get install fping)`);
    if (process.getuid?.() !== 0) throw new Error('the silent host needs root for an nftables rule (CI runs as root)');
    try {
      spawnSync('nft', ['add', 'table', 'inet', TABLE], { stdio: 'pipe' });
      ruleAdded = true;
      for (const args of [
        ['add', 'chain', 'inet', TABLE, 'in', '{ type filter hook input priority 0; policy accept; }'],
        ['add', 'rule', 'inet', TABLE, 'in', 'ip', 'daddr', SILENT, 'icmp', 'type', 'echo-request', 'drop'],
      ]) {
        const r = spawnSync('nft', args, { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(r.stderr || String(r.error));
      }
    } catch (e) {
      throw new Error(`cannot add the nftables rule (apt-get install nftables; needs root): ${(e as Error).message}`);
    }
  });
  afterAll(() => {
    if (ruleAdded) spawnSync('nft', ['delete', 'table', 'inet', TABLE]);
  });

  it.each([
    ['verdicts', []],
    ['-a (alive only)', ['-a']],
    ['-u (unreachable only)', ['-u']],
    ['-q (quiet)', ['-q']],
    ['-s (statistics on stderr)', ['-s']],
    ['-q -s', ['-qs']],
  ])('prints what fping prints, on the same streams, with its exit code: %s', async (_name, extra) => {
    const args = ['-t', '150', '-r', '0', ...extra, ALIVE, SILENT];
    const want = fping(args);
    expect(want.code).toBe(1);
    for (const engine of [FPING_ENGINE, RAW_ENGINE]) expect(await metalctl([...engine, ...args]), engine[1]).toEqual(want);
  });

  it('says every target is alive with exit 0, as fping, for targets from a -f file and from -g', async () => {
    const { list } = tempFiles({ list: `# rack a\n${ALIVE}\n\n127.0.0.2 first word only\n` });
    expect(await metalctl([...FPING_ENGINE, '-f', list as string])).toEqual(fping(['-f', list as string]));
    const gen = ['-g', '127.0.0.1/30'];
    const want = fping(gen);
    expect(want.stdout).toEqual(['127.0.0.1 is alive', '127.0.0.2 is alive', '']);
    expect(await metalctl([...FPING_ENGINE, ...gen])).toEqual(want);
  });

  it('reports a name that does not resolve on stderr and exits 2, as fping, while the others are still probed', async () => {
    const args = ['-t', '150', '-r', '0', ALIVE, NOWHERE, 'localhost'];
    const want = fping(args);
    expect(want.code).toBe(2);
    expect(await metalctl([...FPING_ENGINE, ...args])).toEqual(want);
  });

  it('prints the -c per-ping lines, the summaries and -s as fping does, on the same streams (the raw engine)', async () => {
    for (const extra of [[], ['-q'], ['-s'], ['-a']]) {
      const args = ['-c', '2', '-p', '20', '-t', '150', ...extra, ALIVE, SILENT, 'localhost'];
      const want = fping(args);
      const got = await metalctl([...RAW_ENGINE, ...args]);
      expect({ ...got, stdout: byTargetThenSeq(got.stdout) }, extra.join(' ')).toEqual({ ...want, stdout: byTargetThenSeq(want.stdout) });
    }
  });

  it('exits 3 for bad arguments (fping 5.1 itself exits 1 there, against its manual), with the reason on stderr', async () => {
    const stderr = new Sink();
    expect(await run(['ping', '-B', '0.5', ALIVE], { stdout: new Sink(), stderr, env: {} })).toBe(3);
    expect(stderr.text).toBe("metalctl ping: backoff factor 0.5 not valid, must be between 1.0 and 5.0\nsee 'metalctl ping --help' for usage information\n");
    const peer = spawnSync(FPING, ['-B', '0.5', ALIVE], { encoding: 'utf8' });
    expect({ code: peer.status, stderr: peer.stderr }).toEqual({ code: 1, stderr: `${FPING}: backoff factor 0.5 not valid, must be between 1.0 and 5.0\n` });
    expect((await metalctl(['-g', '10.0.0.0/8'])).code).toBe(3);
    expect((await metalctl([])).code).toBe(3);
  });
});

describe('metalctl ping: engine choice and failures', () => {
  const choice = (engine: 'raw' | 'fping', reason: string): EngineChoice => ({
    engine,
    reason,
    pinger: { engine, ping: (addrs) => Promise.resolve(addrs.map((addr) => ({ addr, alive: true, rtt_ms: 0.05 }))) },
  });

  it('says on stderr, in one line with the reason, when auto falls back to fping; nothing when raw runs', async () => {
    const fallback = await metalctl(['127.0.0.1'], { openPinger: () => Promise.resolve(choice('fping', 'auto: the raw socket did not open (EPERM: needs CAP_NET_RAW)')) });
    expect(fallback).toEqual({ code: 0, stdout: ['127.0.0.1 is alive', ''], stderr: ['metalctl ping: using the fping engine: auto: the raw socket did not open (EPERM: needs CAP_NET_RAW)', ''] });
    const raw = await metalctl(['127.0.0.1'], { openPinger: () => Promise.resolve(choice('raw', 'auto: the raw socket opened')) });
    expect(raw.stderr).toEqual(['']);
  });

  it('passes --engine and --fping-path to the engine choice and fping knobs to the engine', async () => {
    const seen: unknown[] = [];
    const c = choice('fping', 'configured');
    const spy: Pinger = { engine: 'fping', ping: (addrs, o) => (seen.push({ ...o, onEvent: typeof o.onEvent }), c.pinger.ping(addrs, o)) };
    await metalctl(['--engine', 'fping', '--fping-path', '/opt/f', '-t', '70', '-r', '2', '-B', '2', '-i', '3', '127.0.0.1'], {
      openPinger: (o) => (seen.push(o), Promise.resolve({ ...c, pinger: spy })),
    });
    expect(seen).toEqual([{ engine: 'fping', fpingPath: '/opt/f' }, { timeoutMs: 70, retries: 2, backoff: 2, packetIntervalMs: 3, onEvent: 'function' }]);
  });

  it('exits 4 when the engine cannot open or fails, saying why', async () => {
    const cannot = await metalctl(['127.0.0.1'], { openPinger: () => Promise.reject(new Error('raw socket: EPERM')) });
    expect(cannot).toEqual({ code: 4, stdout: [''], stderr: ['metalctl ping: cannot open the auto ICMP engine: raw socket: EPERM', ''] });
    const broken: EngineChoice = { engine: 'raw', reason: 'x', pinger: { engine: 'raw', ping: () => Promise.reject(new Error('sendto: ENOBUFS')) } };
    expect((await metalctl(['127.0.0.1'], { openPinger: () => Promise.resolve(broken) })).stderr[0]).toBe('metalctl ping: the raw engine failed: sendto: ENOBUFS');
  });

  it('reads the targets from stdin with -f -', async () => {
    const stdout = new Sink();
    const stdin = (async function* () {
      yield '127.0.0.1\n127.0.0.3\n';
    })();
    const code = await runPing(['-f', '-', '-a'], { stdout, stderr: new Sink(), env: {}, stdin }, { openPinger: () => Promise.resolve(choice('raw', 'x')) });
    expect({ code, out: stdout.text }).toEqual({ code: 0, out: '127.0.0.1\n127.0.0.3\n' });
  });

  it('prints an ICMP error as fping does (stderr) and still calls the target unreachable', async () => {
    const c: EngineChoice = {
      engine: 'raw',
      reason: 'x',
      pinger: {
        engine: 'raw',
        ping: (addrs, o) => {
          o.onEvent?.({ kind: 'icmp-error', addr: '10.9.0.7', seq: 0, error: { kind: 'host-unreachable', from: '10.9.0.254' } });
          return Promise.resolve(addrs.map((addr) => ({ addr, alive: false, rtt_ms: null, sent: 1, received: 0, icmp_error: { kind: 'host-unreachable', from: '10.9.0.254' } })));
        },
      },
    };
    const got = await metalctl(['-r', '0', '-s', '10.9.0.7'], { openPinger: () => Promise.resolve(c) });
    expect(got.code).toBe(1);
    expect(got.stdout).toEqual(['10.9.0.7 is unreachable', '']);
    expect(got.stderr.slice(0, 1)).toEqual(['ICMP Host Unreachable from 10.9.0.254 for ICMP Echo sent to 10.9.0.7']);
    expect(got.stderr).toContain('       0 timeouts (waiting for response)');
    expect(got.stderr).toContain('       1 other ICMP received');
  });
});
