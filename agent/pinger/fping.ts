/**
 * A Pinger that runs the `fping` binary (the second engine; the first is agent/pinger/raw). It answers the same
 * shape as the raw engine where fping has the flag: -t, -r, -B, -i; count mode -c with -p, whose per-probe lines
 * give sent/received/rtts_ms and the events; ICMP error lines on stderr give icmp_error.
 * Addresses are validated as IP literals before they reach argv, so nothing is resolved and nothing is injected.
 */
import { execa } from 'execa';
import { isIP } from 'node:net';
import type { IcmpErrorReport, PingOptions, PingResult, Pinger, ProbeEvent } from '../ports.js';

/** Parses fping's per-target lines: `ADDR is alive (0.05 ms)` / `ADDR is unreachable`. */
export function parseFpingOutput(text: string): Map<string, { alive: boolean; rtt_ms: number | null }> {
  const out = new Map<string, { alive: boolean; rtt_ms: number | null }>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) is (alive|unreachable)(?: \(([\d.]+) ms\))?/.exec(line.trim());
    if (!m || !m[1]) continue;
    out.set(m[1], { alive: m[2] === 'alive', rtt_ms: m[3] !== undefined ? Number(m[3]) : null });
  }
  return out;
}

/** fping 5.1's words for ICMP errors (its icmp_unreach_str table and "ICMP Time Exceeded") -> our kinds. */
const FPING_ICMP_WORDS: Record<string, IcmpErrorReport['kind']> = {
  'ICMP Network Unreachable': 'net-unreachable',
  'ICMP Host Unreachable': 'host-unreachable',
  'ICMP Protocol Unreachable': 'protocol-unreachable',
  'ICMP Port Unreachable': 'port-unreachable',
  'ICMP Unreachable (Destination Network Unknown)': 'net-unreachable',
  'ICMP Unreachable (Destination Host Unknown)': 'host-unreachable',
  'ICMP Unreachable (Communication with Network Prohibited)': 'admin-prohibited',
  'ICMP Unreachable (Communication with Host Prohibited)': 'admin-prohibited',
  'ICMP Unreachable (Communication Administratively Prohibited)': 'admin-prohibited',
  'ICMP Time Exceeded': 'time-exceeded',
};

/** One line of fping's stderr about an ICMP error: `ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to 10.0.0.9`. */
export function parseFpingIcmpError(line: string): { target: string; error: IcmpErrorReport } | null {
  const m = /^(ICMP .+?) from (\S+) for ICMP Echo sent to (\S+)/.exec(line.trim());
  if (!m || !m[1] || !m[2] || !m[3]) return null;
  return { target: m[3], error: { kind: FPING_ICMP_WORDS[m[1]] ?? 'other', from: m[2] } };
}

/** One per-probe line of `fping -c`: `ADDR : [k], 64 bytes, 0.066 ms (...)` or `ADDR : [k], timed out (...)`. */
export function parseFpingCountLine(line: string): ProbeEvent | null {
  const m = /^(\S+)\s+: \[(\d+)\], (?:(\d+) bytes, ([\d.]+) ms|timed out)/.exec(line.trim());
  if (!m || !m[1] || !m[2]) return null;
  if (m[4] === undefined) return { kind: 'timeout', addr: m[1], seq: Number(m[2]) };
  return { kind: 'reply', addr: m[1], seq: Number(m[2]), rtt_ms: Number(m[4]), bytes: Number(m[3]) };
}

/** `-c`'s summary line on stderr: `ADDR : xmt/rcv/%loss = 3/2/33%...`. */
function parseFpingSummary(line: string): { addr: string; sent: number; received: number } | null {
  const m = /^(\S+)\s+: xmt\/rcv\/%loss = (\d+)\/(\d+)\//.exec(line.trim());
  return m?.[1] && m[2] && m[3] ? { addr: m[1], sent: Number(m[2]), received: Number(m[3]) } : null;
}

/** fping's argv for the options (targets follow). Exported for the tests. */
export function fpingArgs(o: PingOptions): string[] {
  const num = (x: number) => String(Math.max(0, Math.round(x * 1000) / 1000));
  const args = ['-e', '-t', String(Math.max(1, Math.round(o.timeoutMs))), '-i', num(o.packetIntervalMs ?? 1)];
  if (o.count !== undefined) args.push('-c', String(o.count), '-p', num(o.periodMs ?? 1000));
  else args.push('-r', String(o.retries), '-B', String(o.backoff ?? 1.5));
  return args;
}

/** How long fping may run before we kill it: its own worst case plus 5 s. */
function worstCaseMs(o: PingOptions, targets: number): number {
  const iv = (o.packetIntervalMs ?? 1) * targets;
  if (o.count !== undefined) return o.count * ((o.periodMs ?? 1000) + iv) + o.timeoutMs + 5000;
  let sum = 0;
  for (let k = 0; k <= o.retries; k++) sum += o.timeoutMs * (o.backoff ?? 1.5) ** k + iv;
  return sum + 5000;
}

export class FpingPinger implements Pinger {
  readonly engine = 'fping';
  constructor(private readonly path: string) {}

  async ping(addrs: readonly string[], opts: PingOptions): Promise<PingResult[]> {
    const targets = [...new Set(addrs)];
    for (const a of targets) if (isIP(a) === 0 || a.includes('%')) throw new Error(`not an IP address: ${JSON.stringify(a)}`);
    if (targets.length === 0) return [];
    const counting = opts.count !== undefined;
    const rtts = new Map<string, number[]>(targets.map((t) => [t, []]));
    const icmp = new Map<string, IcmpErrorReport>();
    const icmpSeen = new Map<string, number>();
    const emit = (e: ProbeEvent) => {
      try {
        opts.onEvent?.(e);
      } catch {
        // a caller's handler must not break the parse of the other lines
      }
    };
    const onStdout = (line: string) => {
      const e = counting ? parseFpingCountLine(line) : null;
      if (!e) return;
      if (e.kind === 'reply') rtts.get(e.addr)?.push(e.rtt_ms);
      emit(e);
    };
    const onStderr = (line: string) => {
      const x = parseFpingIcmpError(line);
      if (!x) return;
      icmp.set(x.target, x.error);
      // fping does not say which probe an error answers; it prints one per probe, so count them.
      const seq = icmpSeen.get(x.target) ?? 0;
      icmpSeen.set(x.target, seq + 1);
      emit({ kind: 'icmp-error', addr: x.target, seq, error: x.error });
    };
    const child = execa(this.path, [...fpingArgs(opts), ...targets], {
      reject: false,
      stdin: 'ignore',
      timeout: worstCaseMs(opts, targets.length),
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    });
    lines(child.stdout, onStdout);
    lines(child.stderr, onStderr);
    const res = await child;
    if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted');
    if (res.exitCode !== 0 && res.exitCode !== 1) {
      throw new Error(`fping failed (exit ${String(res.exitCode)}): ${String(res.stderr).trim() || String(res.shortMessage)}`);
    }
    const plain = parseFpingOutput(`${String(res.stdout)}\n${String(res.stderr)}`);
    const summary = new Map<string, { sent: number; received: number }>();
    for (const l of String(res.stderr).split('\n')) {
      const s = parseFpingSummary(l);
      if (s) summary.set(s.addr, s);
    }
    return targets.map((addr) => {
      if (counting) {
        const r = rtts.get(addr) ?? [];
        const s = summary.get(addr);
        const alive = (s?.received ?? r.length) > 0;
        return { addr, alive, rtt_ms: r[0] ?? null, sent: s?.sent ?? 0, received: s?.received ?? r.length, rtts_ms: r, icmp_error: alive ? null : (icmp.get(addr) ?? null) };
      }
      const p = plain.get(addr);
      const alive = p?.alive ?? false;
      return { addr, alive, rtt_ms: p?.rtt_ms ?? null, icmp_error: alive ? null : (icmp.get(addr) ?? null) };
    });
  }
}

/** Calls `fn` for each complete line of a stream as it arrives. */
function lines(stream: NodeJS.ReadableStream | null | undefined, fn: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.on('data', (d: Buffer | string) => {
    rest += d.toString();
    let i;
    while ((i = rest.indexOf('\n')) >= 0) {
      fn(rest.slice(0, i));
      rest = rest.slice(i + 1);
    }
  });
  stream.on('end', () => {
    if (rest) fn(rest);
  });
}
