/**
 * The ICMP bench's hosts: 1,024 addresses of one /22 behind ONE routed gateway namespace, so the prober (this
 * process, in the host's namespace) needs one neighbour entry (the host's table holds 1,024: see
 * ../shared/recipes/real-peers.md). The gateway owns the whole /22 (`route local`), so every address answers, except
 * the silent ones: an nftables set in the gateway drops their echo requests (present but silent, as a host that
 * filters ICMP). Needs root, iproute2 and nftables; names carry the pid so two runs never collide.
 *
 *   host ns: vethA 10.199.K.1/30 ──── vethB 10.199.K.2/30 : gateway ns, local route 10.T.0.0/22, DROP @silent
 *            route 10.T.0.0/22 via 10.199.K.2
 */
import { execFileSync } from 'node:child_process';

export interface IcmpNet {
  /** Every target, in order (1,024). */
  targets: string[];
  /** The targets that answer. */
  answering: string[];
  /** The targets whose echo requests are dropped. */
  silent: string[];
  ns: string;
  /** Removes the namespace, the veth pair and the route. Idempotent. */
  close(): void;
}

/** Target i of the /22 at 10.T.0.0 is silent when i % 10 === 9: 102 of 1,024 (10%). */
export const isSilentIndex = (i: number): boolean => i % 10 === 9;

/** The /22's addresses in order. */
export function slash22(t: number): string[] {
  return Array.from({ length: 1024 }, (_, i) => `10.${String(t)}.${String(i >> 8)}.${String(i & 0xff)}`);
}

function sh(cmd: string, args: string[], input?: string): void {
  try {
    execFileSync(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], ...(input !== undefined ? { input } : {}) });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`${cmd} ${args.join(' ')}: ${stderr || (e as Error).message}`);
  }
}

/**
 * Builds the gateway namespace and its targets.
 * @throws Error saying what is missing (root, ip, nft) or which command failed; nothing is left behind then.
 */
export function openIcmpNet(pid = process.pid): IcmpNet {
  if (process.getuid?.() !== 0) throw new Error('the ICMP bench needs root: network namespaces, nftables and the raw socket (CAP_NET_RAW)');
  const k = pid % 250;
  const t = 200 + (pid % 50);
  const ns = `metald-bench-gw-${String(pid)}`;
  const [a, b] = [`mbg${String(pid)}a`, `mbg${String(pid)}b`];
  const net = `10.${String(t)}.0.0/22`;
  const targets = slash22(t);
  const silent = targets.filter((_, i) => isSilentIndex(i));
  const answering = targets.filter((_, i) => !isSilentIndex(i));
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    for (const args of [['route', 'del', net], ['link', 'del', a], ['netns', 'del', ns]]) {
      try {
        execFileSync('ip', args, { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  };
  try {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    sh('ip', ['link', 'set', b, 'netns', ns]);
    sh('ip', ['addr', 'add', `10.199.${String(k)}.1/30`, 'dev', a]);
    sh('ip', ['link', 'set', a, 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `10.199.${String(k)}.2/30`, 'dev', b]);
    sh('ip', ['-n', ns, 'link', 'set', b, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'route', 'add', 'local', net, 'dev', 'lo']);
    sh('ip', ['route', 'add', net, 'via', `10.199.${String(k)}.2`]);
    const rules = `table inet metald_bench {
  set silent { type ipv4_addr; elements = { ${silent.join(', ')} } }
  chain in { type filter hook input priority 0; policy accept; ip daddr @silent icmp type echo-request drop; }
}
`;
    sh('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], rules);
  } catch (e) {
    close();
    throw e;
  }
  return { targets, answering, silent, ns, close };
}
