/**
 * The ICMP engine by config (`liveness.engine`): `raw` (metald's raw-socket engine, needs CAP_NET_RAW), `fping`
 * (the binary), `auto` (raw where its socket opens, else fping). The choice comes with the reason, which the daemon
 * logs at start and shows on /readyz and /metrics.
 *
 * `raw` and `auto` open the process's shared IPv4 ICMP socket here, so a missing capability is found at start, not at
 * the first sweep; the socket stays open for the engine (agent/pinger/raw/socket.ts).
 */
import { existsSync } from 'node:fs';
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

const HOW_TO_GRANT = 'grant CAP_NET_RAW (systemd AmbientCapabilities=CAP_NET_RAW, or setcap cap_net_raw+ep on node) or set liveness.engine to fping';

/** Opens the raw engine and its IPv4 socket, or says why not in a few words ("raw socket refused (EPERM: needs CAP_NET_RAW)"). */
async function tryRaw(): Promise<{ pinger: Pinger } | { why: string }> {
  let engine: import('./raw/engine.js').RawPinger | undefined;
  try {
    const { RawPinger } = await import('./raw/engine.js');
    engine = new RawPinger();
    engine.open(4);
    return { pinger: engine };
  } catch (e) {
    await engine?.close();
    const { SocketRefusedError } = await import('./raw/socket.js');
    if (e instanceof SocketRefusedError) return { why: e.reason };
    return { why: `raw engine unavailable (${(e as Error).message})` };
  }
}

/**
 * @throws Error for `raw` when the raw socket cannot open: the message names CAP_NET_RAW and how to grant it.
 */
export async function openPinger(o: OpenPingerOptions): Promise<EngineChoice> {
  const fping = async (reason: string): Promise<EngineChoice> => {
    const { FpingPinger } = await import('./fping.js');
    return { pinger: new FpingPinger(o.fpingPath), engine: 'fping', reason };
  };
  if (o.engine === 'fping') return fping('configured (liveness.engine: fping)');
  const raw = await tryRaw();
  if ('pinger' in raw) {
    return { pinger: raw.pinger, engine: 'raw', reason: o.engine === 'raw' ? 'configured (liveness.engine: raw)' : 'auto: the raw socket opened (CAP_NET_RAW)' };
  }
  if (o.engine === 'raw') throw new Error(`liveness.engine raw: ${raw.why}; ${HOW_TO_GRANT}`);
  const missing = existsSync(o.fpingPath) ? '' : ` (which does not exist: install fping or grant CAP_NET_RAW)`;
  return fping(`auto: ${raw.why}; using fping at ${o.fpingPath}${missing}`);
}
