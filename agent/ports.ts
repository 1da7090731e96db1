/**
 * Ports: every side effect of the core goes through one of these, injected by the composition root
 * (agent/build-agent.ts), so logic is tested with fakes and integration against real peers.
 */
import type { Logger } from 'pino';
import type { Bmc } from '../drivers/types.js';
import type { Address, Node, OsOperation } from './model.js';

export interface Clock {
  /** Wall clock, ms since the epoch. */
  now(): number;
  /** Resolves after ms; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/** An ICMP error sent back for a probe instead of a reply (host unreachable, administratively prohibited ...). */
export interface IcmpErrorReport {
  /** `net-unreachable`, `host-unreachable`, `protocol-unreachable`, `port-unreachable`, `admin-prohibited`, `time-exceeded`, or `other`. */
  kind: string;
  /** The address the ICMP error came from (a router, or the host itself). */
  from: string;
}

export interface PingResult {
  addr: string;
  alive: boolean;
  /** Round-trip time in ms of the first reply (plain mode) when alive, else null. */
  rtt_ms: number | null;
  /** Echo requests sent and replies counted (engines that know; count mode always). */
  sent?: number;
  received?: number;
  /** Every counted reply's round trip in ms, in the order the probes were sent (count mode). */
  rtts_ms?: number[];
  /** The last ICMP error a probe of this address got back, when no reply came. */
  icmp_error?: IcmpErrorReport | null;
}

/** One probe's outcome as it happens (what `metalctl ping -c` prints a line for). `seq` counts the target's probes from 0. */
export type ProbeEvent =
  | { kind: 'reply'; addr: string; seq: number; rtt_ms: number; bytes: number }
  | { kind: 'timeout'; addr: string; seq: number }
  | { kind: 'icmp-error'; addr: string; seq: number; error: IcmpErrorReport };

/** fping's knobs. Only timeoutMs and retries are required; the rest default as the engine says. */
export interface PingOptions {
  /** The first probe's timeout (fping -t). */
  timeoutMs: number;
  /** Probes after the first before a target counts as unreachable (fping -r); not used in count mode, as fping. */
  retries: number;
  /** Each retry's timeout is the previous one times this (fping -B); default 1.5. */
  backoff?: number;
  /** Least gap in ms between any two echo requests the engine sends (fping -i). */
  packetIntervalMs?: number;
  /** Count mode: this many probes to every target (fping -c). */
  count?: number;
  /** Count mode: the gap in ms between two probes to one target (fping -p); default 1000. */
  periodMs?: number;
  /** Called for every reply, timeout and ICMP error as it happens. */
  onEvent?: (e: ProbeEvent) => void;
  signal?: AbortSignal;
}

/** ICMP liveness (fping-like). Never throws for a silent host: that is `alive: false`. */
export interface Pinger {
  /** `raw`, `fping` or `fake`. */
  readonly engine: string;
  ping(addrs: readonly string[], opts: PingOptions): Promise<PingResult[]>;
  /** Releases the engine's socket or processes (the daemon's stop). */
  close?(): Promise<void>;
}

/** What the installer is asked to do (the job document of design 4.5). Secrets inside are never logged. */
export interface DeployJob {
  /** The OS operation, or change-password (the ramdisk sets the password on the installed system). */
  operation: OsOperation | 'change-password';
  instance_id: string;
  image: { uuid: string; name: string; url: string; sha256: string; os: string } | null;
  hostname: string | null;
  addresses: Address[];
  password_hash: string | null;
  ssh_keys: string[];
  user_data: string | null;
}

/** How a deploy is run: the job's identity and its absolute deadline, both kept by the agent across restarts. */
export interface DeployOptions {
  /**
   * The job's id, chosen by the agent and persisted (in the action's plan data) before the job is handed over. A
   * deploy with an id the installer already holds (the agent restarted while the installer worked) attaches to that
   * job and waits for it, instead of starting another; an id the installer finished reports that job's outcome.
   */
  jobId: string;
  signal: AbortSignal;
  /** When the job must be over, ms since the epoch: fixed when the job first starts, so a resumed wait keeps it. */
  deadlineAt: number;
  onProgress: (p: number) => void;
}

/**
 * Runs the installer on a node that metald has set to network-boot and powered on, and resolves when the installer
 * reports success. Progress 0-100 through `onProgress`. The job runs outside the agent (on the server), so waiting
 * for it survives an agent restart: see `DeployOptions.jobId`.
 * @throws Error with a message naming what failed (the installer's report, the deadline, an abort, a job the
 *   installer does not know after a restart).
 */
export interface Deployer {
  /**
   * Makes the job ready for the node's next boot (docs/boot-protocol.md: the iPXE script chosen by the node's
   * provisioning MAC, the job document behind its one-time token), before the node is set to boot and powered on.
   * Idempotent by `opts.jobId`: a prepare of a job already prepared (a restart) changes nothing.
   */
  prepare(node: Node, job: DeployJob, opts: PrepareOptions): Promise<void>;
  /** Waits for the prepared job's result (prepares it first if it was not). */
  deploy(node: Node, job: DeployJob, opts: DeployOptions): Promise<void>;
  /**
   * Revokes every job of the instance that has no result yet (its token refused from now on): a delete aborting a
   * pending install, an operation that failed. Resolves once the revocation is committed.
   */
  revoke(instanceId: string, reason: string): Promise<void>;
  /**
   * True once the job's installer has fetched its document: the node did boot into it (a power on that a quick
   * installer already ended by powering the node off is still a power on that happened). Absent: never known.
   */
  booted?(jobId: string): boolean;
}

/** How a job is prepared: the same id and deadline its deploy will use. */
export type PrepareOptions = Pick<DeployOptions, 'jobId' | 'deadlineAt'>;

/** Gives the BMC handle of a node (built from its settings by drivers/registry.ts). */
export interface BmcProvider {
  forNode(node: Node): Bmc;
  /** Drops cached handles (settings or secrets changed). */
  invalidate(nodeId?: string): Promise<void>;
}

export interface Ports {
  clock: Clock;
  pinger: Pinger;
  deployer: Deployer;
  bmcs: BmcProvider;
  log: Logger;
  /** Random UUIDs (injected so tests can be deterministic). */
  uuid: () => string;
}
