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

export interface PingResult {
  addr: string;
  alive: boolean;
  /** Round-trip time in ms when alive. */
  rtt_ms: number | null;
}

/** ICMP liveness (fping-like). Never throws for a silent host: that is `alive: false`. */
export interface Pinger {
  readonly engine: string;
  ping(addrs: readonly string[], opts: { timeoutMs: number; retries: number; signal?: AbortSignal }): Promise<PingResult[]>;
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
  deploy(node: Node, job: DeployJob, opts: DeployOptions): Promise<void>;
}

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
