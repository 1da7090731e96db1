/**
 * The ICMP engine by config (`liveness.engine`): `raw` (metald's raw-socket engine, needs CAP_NET_RAW), `fping`
 * (the binary), `auto` (raw where its socket opens, else fping). The choice comes with the reason, which the daemon
 * logs at start and shows on /readyz and /metrics.
 *
 * PLACEHOLDER for issue 9 point 1: the raw engine is being built; until it lands `raw` is refused and `auto` picks
 * fping. The signature is the one callers use (the daemon, metalctl ping, the bench).
 */
import type { Pinger } from '../ports.js';

export interface EngineChoice {
  pinger: Pinger;
  engine: 'raw' | 'fping';
  /** Why this engine runs, in words for the log and /readyz (e.g. "auto: the raw socket opened (CAP_NET_RAW)"). */
  reason: string;
}

export interface OpenPingerOptions {
  engine: 'auto' | 'raw' | 'fping';
  fpingPath: string;
}

export async function openPinger(o: OpenPingerOptions): Promise<EngineChoice> {
  if (o.engine === 'raw') throw new Error('liveness.engine: raw is not built yet');
  const { FpingPinger } = await import('./fping.js');
  return { pinger: new FpingPinger(o.fpingPath), engine: 'fping', reason: o.engine === 'auto' ? 'auto: the raw engine is not built yet' : 'configured' };
}
