/**
 * The bench's fleet: a metald config in a temp dir with `adopted` fake nodes that each run a tenant's instance (one
 * fixed address each, so a liveness sweep probes `adopted` addresses) and `free` fake nodes a create can fill.
 * test/helpers/harness.ts writeConfig adopts at most one node, hence this generator (same shape, same tokens).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ADMIN_TOKEN = 'a'.repeat(32);
export const MEMBER_TOKEN = 'b'.repeat(32);
export const PROJECT = 'ad355aa6ed3e4cf5ae0fa0df652bc291';
export const IMAGE = '1fd5ab9b-1769-4dd5-b0bd-e075614cc866';
export const NETWORK = '4fd5ab9b-1769-4dd5-b0bd-e075614cc866';

/** Intervals of the timers that run while the agent is idle. */
export interface Intervals {
  power_sync: string;
  liveness: string;
}
/** docs/config.md defaults. */
export const DEFAULT_INTERVALS: Intervals = { power_sync: '30s', liveness: '30s' };
/** examples/demo.yaml. */
export const DEMO_INTERVALS: Intervals = { power_sync: '5s', liveness: '5s' };

export interface FleetOptions {
  adopted: number;
  free: number;
  intervals: Intervals;
  logLevel?: string;
  /** Fake install duration of the free nodes (long: creates stay in flight). */
  install?: string;
  stateDir?: string;
  /** Each fake BMC's command log bound (the simulation's memory, not metald's); default 20. */
  commandLog?: number;
  /** The `bmc:` flow mapping of node i (1-based), for real BMCs; default a fake BMC. */
  bmc?: (i: number) => string;
  /** power_sync.concurrency; default docs/config.md's. */
  powerSyncConcurrency?: number;
}

export interface Fleet {
  dir: string;
  configPath: string;
  stateDir: string;
  /** Instance ids of the adopted nodes, in order. */
  adoptedIds: string[];
  /** Node ids of the free nodes, in order. */
  freeNodeIds: string[];
}

const hex = (i: number, width: number) => i.toString(16).padStart(width, '0');
export const nodeIdOf = (i: number) => `1b8c5f0e-0000-4000-8000-${hex(i, 12)}`;
export const instanceIdOf = (i: number) => `cbce6087-0000-4000-8000-${hex(i, 12)}`;
const macOf = (prefix: string, i: number) => `${prefix}:${hex((i >> 16) & 0xff, 2)}:${hex((i >> 8) & 0xff, 2)}:${hex(i & 0xff, 2)}`;
/** Address i of 127.16.0.0/12 (i from 1; .0 and .255 of each /24 skipped). */
export function addressOf(i: number): string {
  const k = i + Math.floor(i / 254) * 2 + 1;
  return `127.${16 + ((k >> 16) & 0x0f)}.${(k >> 8) & 0xff}.${k & 0xff}`;
}

export function writeFleet(opts: FleetOptions): Fleet {
  const dir = mkdtempSync(join(tmpdir(), 'metald-bench-'));
  writeFileSync(join(dir, 'admin.token'), `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'member.token'), `${MEMBER_TOKEN}\n`, { mode: 0o600 });
  const stateDir = opts.stateDir ?? join(dir, 'state');
  const nodes: string[] = [];
  const adoptedIds: string[] = [];
  const freeNodeIds: string[] = [];
  for (let i = 1; i <= opts.adopted + opts.free; i++) {
    const adopted = i <= opts.adopted;
    // command_log: a fake BMC's in-memory command log (the fake's, not metald's) kept small, so the RSS measured is
    // metald's own and not the simulation's (1,000 commands a node by default, ~130 B each).
    const log = opts.commandLog ?? 20;
    const fake = adopted ? `{initial_power: "on", os_installed: debian-12, command_log: ${log}}` : `{install: ${opts.install ?? '60s'}, command_log: ${log}}`;
    let node = `  - id: ${nodeIdOf(i)}
    name: node-${i}
    type: small
    macs: [{mac: "${macOf('fa:16:3e', i)}", pxe: true}]
    bmc: ${opts.bmc?.(i) ?? `{driver: fake, address: "fake://node-${i}", fake: ${fake}}`}`;
    if (adopted) {
      adoptedIds.push(instanceIdOf(i));
      node += `
    adopt:
      instance_id: ${instanceIdOf(i)}
      project_id: ${PROJECT}
      user_id: f5a98f28f61e4fd19622f9016c481d48
      name: vm-${i}
      addresses: [{addr: ${addressOf(i)}, mac: "${macOf('fa:16:3f', i)}", version: 4, type: fixed, network: private}]`;
    } else {
      freeNodeIds.push(nodeIdOf(i));
    }
    nodes.push(node);
  }
  const first = opts.adopted + 1;
  const yaml = `agent_id: bench-agent
state_dir: ${stateDir}
log_level: ${opts.logLevel ?? 'info'}
allow_fake_drivers: true
api:
  listen: 127.0.0.1:0
  rate_limit: {per_token_per_s: 1000000, burst: 1000000}
  tokens:
    - {token_file: ${join(dir, 'admin.token')}, project_id: 5d8b99310e6c49eaa5413aa659170deb, user_id: ops, roles: [admin]}
    - {token_file: ${join(dir, 'member.token')}, project_id: ${PROJECT}, user_id: 9789b276da0643e8b88bc7d6b85cf939, roles: [member]}
power_sync: {interval: ${opts.intervals.power_sync}, failures_before_unknown: 2${opts.powerSyncConcurrency !== undefined ? `, concurrency: ${opts.powerSyncConcurrency}` : ''}}
timeouts: {bmc_call: 5s, power: 10s, deploy: 10m, soft_power: 10s}
power_poll: [5ms, 10ms, 20ms]
bmc: {min_gap: 0ms}
liveness: {engine: fake, interval: ${opts.intervals.liveness}, timeout: 100ms, retries: 0}
images:
  - {uuid: ${IMAGE}, name: debian-12, url: "http://127.0.0.1:1/debian-12.img", sha256: "${'a'.repeat(64)}", os: linux}
instance_types:
  - {uuid: 3fd5ab9b-1769-4dd5-b0bd-e075614cc866, name: bm.small, node_type: small}
networks:
  - {uuid: ${NETWORK}, name: private, cidr: 127.16.0.0/12, gateway: 127.16.0.1, dns: [127.16.0.1], pool: ${addressOf(first)}-127.31.255.254}
nodes:
${nodes.join('\n')}
`;
  const configPath = join(dir, 'metald.yaml');
  writeFileSync(configPath, yaml);
  return { dir, configPath, stateDir, adoptedIds, freeNodeIds };
}
