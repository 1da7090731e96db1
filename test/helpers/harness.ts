/**
 * Test harness: a real agent (SQLite store in a temp dir, fake lab, real engine and API) built in-process from a
 * YAML config with short waiting policies. Every address is on loopback.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { loadConfigFile } from '../../agent/config/load.js';
import type { Config } from '../../agent/config/types.js';
import type { RequestContext } from '../../agent/model.js';
import type { StoreFaultInjector } from '../../agent/store/sqlite.js';
import { InlineWalSync, type WalSyncPort } from '../../agent/store/wal-sync.js';
import type { Clock, Pinger } from '../../agent/ports.js';
import { FakeLab } from '../../drivers/fake/lab.js';

export const ADMIN_TOKEN = 'a'.repeat(32);
export const MEMBER_TOKEN = 'b'.repeat(32);
export const OTHER_TOKEN = 'c'.repeat(32);
export const ADMIN_PROJECT = '5d8b99310e6c49eaa5413aa659170deb';
export const PROJECT = 'ad355aa6ed3e4cf5ae0fa0df652bc291';
export const OTHER_PROJECT = 'ad355aa6ed3e4cf5ae0fa0df652bc290';
export const IMAGE = '1fd5ab9b-1769-4dd5-b0bd-e075614cc866';
export const IMAGE2 = '2fd5ab9b-1769-4dd5-b0bd-e075614cc866';
export const TYPE_SMALL = '3fd5ab9b-1769-4dd5-b0bd-e075614cc866';
export const NETWORK = '4fd5ab9b-1769-4dd5-b0bd-e075614cc866';
export const ADOPTED_ID = 'cbce6087-6156-453c-a512-60bf3d75d69f';

export function nodeId(i: number): string {
  return `1b8c5f0e-0000-4000-8000-${String(i).padStart(12, '0')}`;
}

export interface HarnessOptions {
  nodes?: number;
  /** Fake options of every node (YAML flow mapping text). */
  fake?: string;
  /** Fake options of node i (1-based), overriding `fake`. */
  fakeFor?: (i: number) => string | undefined;
  /** Adds an adopted node (running a tenant's OS) as the last node. */
  adopt?: boolean;
  /** Fake options of the adopted node. */
  adoptFake?: string;
  listenPort?: number;
  /** Extra top-level YAML appended. */
  extra?: string;
  stateDir?: string;
  deploy?: string;
  /** timeouts.power and timeouts.soft_power (default 1s): longer where a test's fake power delay is close to a second. */
  power?: string;
  /** The liveness section (YAML flow mapping); default: the fake lab's pinger. */
  liveness?: string;
  /** Rewrites the finished YAML (catalogue variants the options above do not cover). */
  editConfig?: (yaml: string) => string;
  /** TEST-ONLY store fault injector (startHarness only). */
  storeFault?: StoreFaultInjector;
  /** TEST-ONLY: the store's WAL sync port (startHarness only); with `clock` and none given, one inline (InlineWalSync). */
  walSync?: WalSyncPort;
  /** The agent's clock, also the fake lab's (test/helpers/manual-clock.ts); default: the system clock. */
  clock?: Clock;
  /** The liveness pinger (startHarness only); default: the one the liveness section names. */
  pinger?: Pinger;
}

export function writeConfig(opts: HarnessOptions = {}): { dir: string; configPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'metald-test-'));
  writeFileSync(join(dir, 'admin.token'), `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'member.token'), `${MEMBER_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'other.token'), `${OTHER_TOKEN}\n`, { mode: 0o600 });
  const n = opts.nodes ?? 3;
  const fake = opts.fake ?? '{power_delay: 5ms, install: 30ms}';
  const nodes: string[] = [];
  for (let i = 1; i <= n; i++) {
    nodes.push(`  - id: ${nodeId(i)}
    name: node-${String(i).padStart(2, '0')}
    type: small
    macs: [{mac: "fa:16:3e:00:00:${String(i).padStart(2, '0')}", pxe: true}]
    bmc: {driver: fake, address: "fake://node-${i}", fake: ${opts.fakeFor?.(i) ?? fake}}`);
  }
  if (opts.adopt) {
    const i = n + 1;
    nodes.push(`  - id: ${nodeId(i)}
    name: node-${String(i).padStart(2, '0')}
    type: large
    macs: [{mac: "fa:16:3e:00:00:${String(i).padStart(2, '0')}", pxe: true}]
    bmc: {driver: fake, address: "fake://node-${i}", fake: ${opts.adoptFake ?? '{power_delay: 5ms, install: 30ms, initial_power: "on", os_installed: debian-12}'}}
    adopt:
      instance_id: ${ADOPTED_ID}
      project_id: ${PROJECT}
      user_id: f5a98f28f61e4fd19622f9016c481d48
      name: Testvm1
      addresses: [{addr: 127.0.2.2, mac: "fa:16:3e:1c:d0:5b", version: 4, type: fixed, network: private}]`);
  }
  const yaml = `agent_id: test-agent
state_dir: ${opts.stateDir ?? join(dir, 'state')}
log_level: info
allow_fake_drivers: true
terminated_retention: 7d
api:
  listen: 127.0.0.1:${opts.listenPort ?? 0}
  rate_limit: {per_token_per_s: 1000, burst: 1000}
  tokens:
    - {token_file: ${join(dir, 'admin.token')}, project_id: ${ADMIN_PROJECT}, user_id: ops, roles: [admin]}
    - {token_file: ${join(dir, 'member.token')}, project_id: ${PROJECT}, user_id: 9789b276da0643e8b88bc7d6b85cf939, roles: [member]}
    - {token_file: ${join(dir, 'other.token')}, project_id: ${OTHER_PROJECT}, user_id: someone-else, roles: [member]}
power_sync: {interval: 1h, failures_before_unknown: 2}
timeouts: {bmc_call: 2s, power: ${opts.power ?? '1s'}, deploy: ${opts.deploy ?? '5s'}, soft_power: ${opts.power ?? '1s'}}
power_poll: [5ms, 10ms, 20ms]
bmc: {min_gap: 0ms}
liveness: ${opts.liveness ?? '{engine: fake, interval: 30s, timeout: 100ms, retries: 0}'}
images:
  - {uuid: ${IMAGE}, name: debian-12, url: "http://127.0.0.1:1/debian-12.img", sha256: "${'a'.repeat(64)}", os: linux}
  - {uuid: ${IMAGE2}, name: ubuntu-24.04, url: "http://127.0.0.1:1/ubuntu.img", sha256: "${'b'.repeat(64)}", os: linux}
instance_types:
  - {uuid: ${TYPE_SMALL}, name: bm.small, node_type: small}
networks:
  - {uuid: ${NETWORK}, name: private, cidr: 127.0.2.0/24, gateway: 127.0.2.1, dns: [127.0.2.1], pool: 127.0.2.100-127.0.2.199}
${opts.extra ?? ''}
nodes:
${nodes.join('\n')}
`;
  const configPath = join(dir, 'metald.yaml');
  writeFileSync(configPath, opts.editConfig ? opts.editConfig(yaml) : yaml);
  return { dir, configPath };
}

export interface Harness {
  agent: Agent;
  config: Config;
  dir: string;
  configPath: string;
  close(): Promise<void>;
}

/** Lets accepted work finish before the store closes (engine.idle() waits for node-level power requests too). */
export async function settle(h: Harness): Promise<void> {
  await h.agent.engine.idle();
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const { dir, configPath } = writeConfig(opts);
  const config = loadConfigFile(configPath);
  const clock = opts.clock ? { clock: opts.clock, fakeLab: new FakeLab({ now: () => opts.clock!.now(), sleep: opts.clock.sleep }) } : {};
  const agent = await buildAgent(config, { log: pino({ level: 'silent' }), ...clock, ...(opts.storeFault ? { storeFault: opts.storeFault } : {}), ...(opts.walSync ? { walSync: opts.walSync } : opts.clock ? { walSync: new InlineWalSync() } : {}), ...(opts.pinger ? { pinger: opts.pinger } : {}) });
  await agent.start();
  return {
    agent,
    config,
    dir,
    configPath,
    async close() {
      await agent.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;
export function ctx(kind: 'admin' | 'member' | 'other' = 'member'): RequestContext {
  counter += 1;
  const rid = `req-00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`;
  if (kind === 'admin') return { request_id: rid, project_id: ADMIN_PROJECT, user_id: 'ops', roles: ['admin'], is_admin: true };
  if (kind === 'other') return { request_id: rid, project_id: OTHER_PROJECT, user_id: 'someone-else', roles: ['member'], is_admin: false };
  return { request_id: rid, project_id: PROJECT, user_id: '9789b276da0643e8b88bc7d6b85cf939', roles: ['member'], is_admin: false };
}

/** An OpenSSH public key that parses (agent/ssh-keys.ts): an ed25519 key of 32 bytes of 1. */
export const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB test@metald';
/** A second one (32 bytes of 2). */
export const SSH_KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC ops@metald';
