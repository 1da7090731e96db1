/**
 * A Pinger that runs the `fping` binary (the first engine; the exact raw-socket engine is the liveness issue).
 * Addresses are validated as IP literals before they reach argv, so nothing is resolved and nothing is injected.
 */
import { execa } from 'execa';
import { isIP } from 'node:net';
import type { PingResult, Pinger } from '../ports.js';

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

export class FpingPinger implements Pinger {
  readonly engine = 'fping';
  constructor(private readonly path: string) {}

  async ping(addrs: readonly string[], opts: { timeoutMs: number; retries: number; signal?: AbortSignal }): Promise<PingResult[]> {
    const targets = [...new Set(addrs)];
    for (const a of targets) if (isIP(a) === 0) throw new Error(`not an IP address: ${JSON.stringify(a)}`);
    if (targets.length === 0) return [];
    const timeout = Math.max(1, Math.round(opts.timeoutMs));
    const res = await execa(this.path, ['-e', '-t', String(timeout), '-r', String(opts.retries), '-i', '1', ...targets], {
      reject: false,
      stdin: 'ignore',
      timeout: timeout * (opts.retries + 1) + 5000,
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    });
    if (res.exitCode !== 0 && res.exitCode !== 1) {
      throw new Error(`fping failed (exit ${String(res.exitCode)}): ${String(res.stderr).trim() || String(res.shortMessage)}`);
    }
    const parsed = parseFpingOutput(`${String(res.stdout)}\n${String(res.stderr)}`);
    return targets.map((addr) => {
      const p = parsed.get(addr);
      return { addr, alive: p?.alive ?? false, rtt_ms: p?.rtt_ms ?? null };
    });
  }
}
