/**
 * Real hosts for liveness tests, in network namespaces made by the test (../shared/recipes/real-peers.md). Needs root
 * and Debian's `iproute2` and `nftables`; where they are missing the builders throw saying why (tests then FAIL, never
 * skip). Every namespace is named with the test process's pid, so two runs never collide, and `destroy()` removes
 * all of them (call it in afterAll/afterEach; it is safe to call twice and after a half-built lab).
 *
 * `buildLivenessLab()` makes this topology (IPv4 and IPv6 on the bridge):
 *
 *   [probe ns] br0 10.77.0.1/24 fd77::1/64 --+-- [h1] .11 ::11  answers
 *              |                            +-- [h2] .12 ::12  answers
 *              |                            +-- [h3] .13 ::13  answers
 *              |                            +-- [h4] .14 ::14  present, nft DROPs echo requests (silent)
 *              |                            +-- [h5] .15 ::15  nft rejects with ICMP host-unreachable
 *              |                                     .50 ::50  nobody owns it (silent)
 *              gw 10.78.0.2/30 ---- [gateway ns] 10.78.0.1, owns 10.80.0.0/22 (route `local` on lo):
 *                                   1,024 targets; every 10th (i % 10 === 9) DROPped by nft there
 *
 * Probe work runs INSIDE the probe namespace in a child process (`lab.spawnProbe` / `lab.run`), because Node has no
 * setns: `ip netns exec NS CMD ...`.
 *
 * With `rootLink: true` the probe namespace also gets a veth pair to the test's own (root) namespace, one /30 in
 * 10.79.0.0/16 picked by the pid: a server started inside the probe namespace (the daemon) listening on
 * `rootLink.probe` is reachable from the test process. The root end goes when the probe namespace is deleted.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Runs `cmd args` and returns its stdout; throws with the command and its stderr. */
function sh(cmd: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

/** An nftables table `inet t` whose input chain holds `rules` (one a line), with optional declarations before it. */
export function nftInput(rules: readonly string[], declarations = ''): string {
  return ['table inet t {', declarations, '  chain in {', '    type filter hook input priority 0;', ...rules.map((r) => `    ${r}`), '  }', '}', ''].join('\n');
}

/** Throws, saying what is missing, unless this process can build namespaces and nftables rules. */
export function requireNetnsPeers(): void {
  if (process.getuid?.() !== 0) throw new Error('network-namespace tests need root (CI runs as root)');
  for (const bin of ['/usr/sbin/ip', '/usr/sbin/nft']) {
    if (!existsSync(bin) && !existsSync(bin.replace('/usr/sbin', '/sbin'))) throw new Error(`${bin} is missing: apt-get install iproute2 nftables`);
  }
}

/** A set of namespaces owned by one test; every name carries the pid. */
export class Netns {
  private readonly made: string[] = [];
  constructor(readonly prefix = `md${process.pid}`) {}

  /** Creates namespace `<prefix>-<short>` with `lo` up; returns its name. */
  add(short: string): string {
    const name = `${this.prefix}-${short}`;
    sh('ip', ['netns', 'add', name]);
    this.made.push(name);
    this.ip(name, 'link set lo up');
    return name;
  }

  /** `ip -n NS <words>` (words split on spaces). */
  ip(ns: string, words: string): string {
    return sh('ip', ['-n', ns, ...words.split(' ')]);
  }

  /** Runs a command inside a namespace and returns its stdout. */
  exec(ns: string, cmd: string, args: readonly string[] = [], input?: string): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args], input);
  }

  /** Loads an nftables ruleset (nft -f -) inside a namespace. */
  nft(ns: string, ruleset: string): void {
    this.exec(ns, 'nft', ['-f', '-'], ruleset);
  }

  /** Sets sysctls (`key=value`) inside a namespace. */
  sysctl(ns: string, ...kv: string[]): void {
    for (const x of kv) this.exec(ns, 'sysctl', ['-q', '-w', x]);
  }

  /** Starts a process inside a namespace (stdout/stderr piped). The caller waits for it or kills it. */
  spawn(ns: string, cmd: string, args: readonly string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Deletes every namespace this object made (their interfaces, routes and nftables tables go with them). */
  destroy(): void {
    const errors: string[] = [];
    while (this.made.length > 0) {
      const name = this.made.pop()!;
      try {
        sh('ip', ['netns', 'del', name]);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    if (errors.length > 0) throw new Error(`netns cleanup: ${errors.join('; ')}`);
  }
}

/** Runs a child to its end: stdout, stderr and exit code. Rejects after `timeoutMs` (and kills the child). */
export function collect(child: ChildProcess, timeoutMs = 60_000): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not finish in ${String(timeoutMs)} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ stdout, stderr, code });
    });
  });
}

export interface LivenessLab {
  netns: Netns;
  /** The namespace probes run in. */
  probe: string;
  /** The routed gateway namespace that owns the far /22. */
  gateway: string;
  v4: { answering: string[]; dropped: string[]; noAddress: string[]; rejected: string[] };
  v6: { answering: string[]; dropped: string[]; noAddress: string[]; rejected: string[] };
  /** The far targets behind the gateway, in address order, and which of them the gateway drops. */
  far: { all: string[]; silent: string[] };
  /**
   * Adds a host namespace `<prefix>-<short>` on the bridge with these addresses (IPv4 /24 in 10.77.0.0, IPv6 /64 in
   * fd77::), for a test's own peer (a responder that crafts replies, say). Returns the namespace's name.
   */
  attachHost(short: string, v4: readonly string[], v6?: readonly string[]): string;
  /** With `rootLink: true`: the veth pair's addresses, `probe` in the probe namespace, `root` in the test's. */
  rootLink: { probe: string; root: string } | null;
  /** Runs a command in the probe namespace to its end. */
  run(cmd: string, args: readonly string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string; code: number | null }>;
  destroy(): void;
}

export interface LivenessLabOptions {
  /** How many far targets behind the gateway (at most 1,024, the /22); default 1,024. 0 makes no gateway routes. */
  far?: number;
  /** A veth pair from the test's (root) namespace into the probe namespace; default false. */
  rootLink?: boolean;
}

/** The /30 of 10.79.0.0/16 a process uses for its root link (by pid, so parallel runs differ): [root end, probe end]. */
function rootLinkAddresses(pid: number): [string, string] {
  const base = (pid % 16384) * 4;
  const at = (k: number): string => `10.79.${String((base + k) >> 8)}.${String((base + k) & 255)}`;
  return [at(1), at(2)];
}

/** Builds the topology drawn at the top of this file. On any failure it removes what it made and throws. */
export function buildLivenessLab(o: LivenessLabOptions = {}): LivenessLab {
  requireNetnsPeers();
  const farCount = Math.min(1024, o.far ?? 1024);
  const n = new Netns();
  try {
    const probe = n.add('p');
    n.ip(probe, 'link add br0 type bridge forward_delay 0 mcast_snooping 0');
    n.ip(probe, 'addr add 10.77.0.1/24 dev br0');
    n.ip(probe, 'addr add fd77::1/64 dev br0 nodad');
    n.ip(probe, 'link set br0 up');
    const attachHost = (short: string, v4: readonly string[], v6: readonly string[] = []): string => {
      const ns = n.add(short);
      n.ip(probe, `link add ${short} type veth peer name eth0 netns ${ns}`);
      n.ip(probe, `link set ${short} master br0 up`);
      for (const a of v4) n.ip(ns, `addr add ${a}/24 dev eth0`);
      for (const a of v6) n.ip(ns, `addr add ${a}/64 dev eth0 nodad`);
      n.ip(ns, 'link set eth0 up');
      return ns;
    };
    const host = (i: number): string => attachHost(`h${String(i)}`, [`10.77.0.1${String(i)}`], [`fd77::1${String(i)}`]);
    for (const i of [1, 2, 3]) host(i);
    n.nft(host(4), nftInput(['icmp type echo-request drop', 'icmpv6 type echo-request drop']));
    const h5 = host(5);
    // The kernel rate-limits the ICMP errors it sends (1/s per peer after a burst): off here, so every probe is rejected.
    n.sysctl(h5, 'net.ipv4.icmp_ratelimit=0', 'net.ipv4.icmp_msgs_per_sec=100000', 'net.ipv6.icmp.ratelimit=0');
    n.nft(
      h5,
      nftInput(['icmp type echo-request reject with icmp type host-unreachable', 'icmpv6 type echo-request reject with icmpv6 type addr-unreachable']),
    );

    const gateway = n.add('g');
    const far: string[] = [];
    const silent: string[] = [];
    n.ip(probe, `link add gw type veth peer name eth0 netns ${gateway}`);
    n.ip(probe, 'addr add 10.78.0.2/30 dev gw');
    n.ip(probe, 'link set gw up');
    n.ip(gateway, 'addr add 10.78.0.1/30 dev eth0');
    n.ip(gateway, 'link set eth0 up');
    if (farCount > 0) {
      n.ip(gateway, 'route add local 10.80.0.0/22 dev lo');
      n.ip(probe, 'route add 10.80.0.0/22 via 10.78.0.1');
      for (let i = 0; i < farCount; i++) {
        const a = `10.80.${String(i >> 8)}.${String(i & 255)}`;
        far.push(a);
        if (i % 10 === 9) silent.push(a);
      }
      n.nft(gateway, nftInput(['ip daddr @silent icmp type echo-request drop'], `set silent { type ipv4_addr; elements = { ${silent.join(', ')} } }`));
    }
    let rootLink: { probe: string; root: string } | null = null;
    if (o.rootLink) {
      const [root, inProbe] = rootLinkAddresses(process.pid);
      const outside = `${n.prefix}r`;
      sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', 'root', 'netns', probe]);
      sh('ip', ['addr', 'add', `${root}/30`, 'dev', outside]);
      sh('ip', ['link', 'set', outside, 'up']);
      n.ip(probe, `addr add ${inProbe}/30 dev root`);
      n.ip(probe, 'link set root up');
      rootLink = { probe: inProbe, root };
    }
    return {
      netns: n,
      probe,
      gateway,
      v4: { answering: ['10.77.0.11', '10.77.0.12', '10.77.0.13'], dropped: ['10.77.0.14'], noAddress: ['10.77.0.50'], rejected: ['10.77.0.15'] },
      v6: { answering: ['fd77::11', 'fd77::12', 'fd77::13'], dropped: ['fd77::14'], noAddress: ['fd77::50'], rejected: ['fd77::15'] },
      far: { all: far, silent },
      attachHost,
      rootLink,
      run: (cmd, args, timeoutMs) => collect(n.spawn(probe, cmd, args), timeoutMs),
      destroy: () => n.destroy(),
    };
  } catch (e) {
    try {
      n.destroy();
    } catch {
      // the build error below is the one that matters
    }
    throw e;
  }
}
