/**
 * fping 5.1's output lines, so that `metalctl ping` reads like fping: the per-target verdicts, the count-mode
 * lines and summaries, the -s statistics block and the ICMP error lines. Pure functions of the figures.
 */
import type { IcmpErrorReport } from '../ports.js';

/** A round trip in ms as fping writes it: 3 decimals under 1 ms, 2 under 10, 1 under 100, none above. */
export function fpingMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'NaN';
  if (ms < 1) return ms.toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  if (ms < 1_000_000) return ms.toFixed(0);
  return ms.toExponential(3);
}

/** fping's loss: whole percent, truncated. */
export function lossPercent(lost: number, total: number): number {
  return total === 0 ? 0 : Math.floor((lost * 100) / total);
}

/** One target's figures while a count-mode run goes on. */
export class TargetTally {
  readonly rtts: number[] = [];
  /** Probes whose fate is known: replied, timed out or answered by an ICMP error. */
  settled = 0;
  timeouts = 0;
  icmpErrors = 0;

  reply(rttMs: number): void {
    this.rtts.push(rttMs);
    this.settled++;
  }

  timeout(): void {
    this.timeouts++;
    this.settled++;
  }

  icmpError(): void {
    this.icmpErrors++;
    this.settled++;
  }

  avg(): number {
    return this.rtts.length === 0 ? NaN : this.rtts.reduce((a, b) => a + b, 0) / this.rtts.length;
  }

  /** The loss among the settled probes (what fping shows on each count-mode line). */
  loss(): number {
    return lossPercent(this.settled - this.rtts.length, this.settled);
  }
}

/** `NAME : [SEQ], 64 bytes, 0.041 ms (0.041 avg, 0% loss)` (stdout). `name` already padded. */
export function replyLine(name: string, seq: number, bytes: number, rttMs: number, t: TargetTally): string {
  return `${name} : [${String(seq)}], ${String(bytes)} bytes, ${fpingMs(rttMs)} ms (${fpingMs(t.avg())} avg, ${String(t.loss())}% loss)\n`;
}

/** `NAME : [SEQ], timed out (NaN avg, 100% loss)` (stdout). */
export function timeoutLine(name: string, seq: number, t: TargetTally): string {
  return `${name} : [${String(seq)}], timed out (${fpingMs(t.avg())} avg, ${String(t.loss())}% loss)\n`;
}

/** `NAME : xmt/rcv/%loss = 3/3/0%, min/avg/max = a/b/c` (stderr; no min/avg/max without a reply). */
export function summaryLine(name: string, sent: number, rtts: readonly number[]): string {
  const head = `${name} : xmt/rcv/%loss = ${String(sent)}/${String(rtts.length)}/${String(lossPercent(sent - rtts.length, sent))}%`;
  if (rtts.length === 0) return `${head}\n`;
  const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
  return `${head}, min/avg/max = ${fpingMs(Math.min(...rtts))}/${fpingMs(avg)}/${fpingMs(Math.max(...rtts))}\n`;
}

/** fping's words for an ICMP error, by the engine's kind (ports.ts IcmpErrorReport). */
const ICMP_WORDS: Readonly<Record<string, string>> = {
  'net-unreachable': 'ICMP Network Unreachable',
  'host-unreachable': 'ICMP Host Unreachable',
  'protocol-unreachable': 'ICMP Protocol Unreachable',
  'port-unreachable': 'ICMP Port Unreachable',
  'admin-prohibited': 'ICMP Unreachable (Communication Administratively Prohibited)',
  'time-exceeded': 'ICMP Time Exceeded',
};

/** `ICMP Host Unreachable from 10.0.0.254 for ICMP Echo sent to 10.0.0.7` (stderr). */
export function icmpErrorLine(e: IcmpErrorReport, to: string): string {
  const words = Object.prototype.hasOwnProperty.call(ICMP_WORDS, e.kind) ? ICMP_WORDS[e.kind] : 'ICMP Unreachable';
  return `${words as string} from ${e.from} for ICMP Echo sent to ${to}\n`;
}

export interface RunStats {
  targets: number;
  alive: number;
  unreachable: number;
  unknown: number;
  timeouts: number;
  sent: number;
  received: number;
  otherIcmp: number;
  rtts: readonly number[];
  elapsedMs: number;
}

const n7 = (n: number): string => ` ${String(n).padStart(7)}`;

/** The -s block (stderr), fping's lines with our figures; min/avg/max read 0.000 without a reply, as fping's. */
export function statsBlock(s: RunStats): string {
  const any = s.rtts.length > 0;
  const min = any ? Math.min(...s.rtts) : 0;
  const max = any ? Math.max(...s.rtts) : 0;
  const avg = any ? s.rtts.reduce((a, b) => a + b, 0) / s.rtts.length : 0;
  return [
    '',
    `${n7(s.targets)} targets`,
    `${n7(s.alive)} alive`,
    `${n7(s.unreachable)} unreachable`,
    `${n7(s.unknown)} unknown addresses`,
    '',
    `${n7(s.timeouts)} timeouts (waiting for response)`,
    `${n7(s.sent)} ICMP Echos sent`,
    `${n7(s.received)} ICMP Echo Replies received`,
    `${n7(s.otherIcmp)} other ICMP received`,
    '',
    ` ${fpingMs(min)} ms (min round trip time)`,
    ` ${fpingMs(avg)} ms (avg round trip time)`,
    ` ${fpingMs(max)} ms (max round trip time)`,
    ` ${(s.elapsedMs / 1000).toFixed(3).padStart(12)} sec (elapsed real time)`,
    '',
    '',
  ].join('\n');
}
