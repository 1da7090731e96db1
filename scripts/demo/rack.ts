/**
 * The demo's emulated rack, all on loopback: 8 servers, half behind ipmi_sim BMCs (each running the node emulator as
 * a process through its chassis_control program) and half behind the Redfish emulator (a node emulator in-process
 * per system); an image server; the reference controller; and metald with its boot server, on a config written here
 * (embedded defaults: nothing to edit). Nodes 1 (IPMI) and 5 (Redfish) already run a tenant's OS (adopted); the
 * others are free. The image is one of os `other` (written to the disk as it is: no root needed).
 *
 * Everything is started under `root` (the demo's TMPDIR, inherited by every child) so that stop() can tell its own
 * processes from any other: see scripts/demo/leftovers.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { startLab, type Lab } from '../../test/e2e/real-bmc/lab.js';
import { startUpstream, type Ctl } from '../../test/helpers/controller.js';
import { freeTcpPort, missingPeers } from '../../test/helpers/peers.js';
import { spawnDaemon, type Child } from '../bench/daemon.js';
import { throttledImageServer } from '../image-server.js';

export const NODES = 8;
/** The servers that run a tenant's OS from the start (adopted), 1-based. */
export const ADOPTED = [1, 5] as const;
const UPSTREAM_TOKEN = 'demo-upstream-token-0123456789abcdef';
const MiB = 1024 * 1024;

export interface Rack {
  lab: Lab;
  daemon: Child;
  ctl: Ctl;
  /** The API's URL. */
  url: string;
  bootUrl: string;
  imageUrl: string;
  /** The harness's token files and the config (in the lab's config folder). */
  configPath: string;
  stop(): Promise<void>;
}

const mac = (i: number) => `fa:16:3e:00:01:${String(i).padStart(2, '0')}`;

/** @throws Error naming what is missing (Debian packages, the build) or what failed to start. */
/** `onLog`: each line of metald's log (pino JSON). */
export async function startRack(root: string, say: (m: string) => void, o: { imageMiB?: number; rateMiBs?: number } = {}, onLog?: (line: string) => void): Promise<Rack> {
  const why = missingPeers('the demo rack', ['ipmi_sim', 'ipmitool', 'busybox', 'fping'], 'openipmi ipmitool busybox-static fping (./scripts/setup.sh installs them)');
  if (why) throw new Error(why);
  const nodeCli = resolve(import.meta.dirname, '../../test/emulators/node/cli.js');
  if (!existsSync(nodeCli)) throw new Error(`${nodeCli} is missing: run \`npm run build\` first (npm run demo does)`);

  const image = randomBytes((o.imageMiB ?? 24) * MiB);
  const sha = createHash('sha256').update(image).digest('hex');
  const images = await throttledImageServer(image, o.rateMiBs ?? 6, '/demo.img');
  const imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/demo.img`;
  const disk = (i: number) => join(root, `disk-${i}.img`);
  for (let i = 1; i <= NODES; i++) writeFileSync(disk(i), Buffer.alloc(image.length + 8 * MiB));

  let lab: Lab | undefined;
  let ctl: Ctl | undefined;
  let daemon: Child | undefined;
  const stop = async () => {
    await daemon?.stop('SIGTERM');
    await ctl?.kill('SIGTERM');
    // The node processes behind ipmi_sim outlive their BMC: power them off first.
    for (const s of lab?.sims ?? []) {
      const pidFile = join(s.dir, 'state', 'node.pid');
      if (!existsSync(pidFile)) continue;
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await lab?.stop();
    await new Promise((r) => images.close(r));
  };
  try {
    const bootPort = await freeTcpPort();
    const bootUrl = `http://127.0.0.1:${bootPort}`;
    say('starting the reference controller');
    const upstream = await startUpstream(root, UPSTREAM_TOKEN, 'demo-agent');
    ctl = upstream.ctl;
    say('starting 4 ipmi_sim BMCs and the Redfish emulator with 4 systems, a node emulator behind each');
    const half = NODES / 2;
    const on = (i: number) => (ADOPTED as readonly number[]).includes(i);
    lab = await startLab({
      ipmi: Array.from({ length: half }, (_, k) => (on(k + 1) ? 'on' : 'off')),
      redfish: Array.from({ length: half }, (_, k) => ({
        id: `sys-${k + 1}`,
        power: on(half + k + 1) ? ('On' as const) : ('Off' as const),
        profile: { powerDelayMs: 400, node: { mac: mac(half + k + 1), bootUrl, disk: disk(half + k + 1) } },
      })),
      nodes: Array.from({ length: NODES }, (_, k) => {
        const adopt = on(k + 1) ? { adopt: `tenant-${k + 1}` } : {};
        return k < half ? { kind: 'ipmi' as const, sim: k, ...adopt } : { kind: 'redfish' as const, system: `sys-${k - half + 1}`, ...adopt };
      }),
      extra: `boot: {listen: "127.0.0.1:${bootPort}"}\n${upstream.yaml}`,
      liveness: '{engine: fping, interval: 5s, timeout: 300ms, retries: 1}',
      powerSync: '{interval: 10s, failures_before_unknown: 2}',
      edit: (y) =>
        y
          .replace('agent_id: test-agent', 'agent_id: demo-agent')
          .replace(`url: "http://127.0.0.1:1/ubuntu.img", sha256: "${'b'.repeat(64)}", os: linux`, `url: "${imageUrl}", sha256: "${sha}", os: other`)
          .replace(/retry_timeout_s: 1\}/g, 'retry_timeout_s: 1, persistent_boot: false}')
          .replace(/deploy: 5s/, 'deploy: 300s')
          .replace(/power: 5s/g, 'power: 20s')
          .replace(/bmc_call: 2s/, 'bmc_call: 10s'),
    });
    for (const [k, s] of lab.sims.entries()) {
      writeFileSync(join(s.dir, 'state', 'node.json'), JSON.stringify({ mac: mac(k + 1), bootUrl, disk: disk(k + 1) }));
      writeFileSync(join(s.dir, 'state', 'node.env'), `NODE_BIN=${process.execPath}\nNODE_CLI=${nodeCli}\n`);
    }
    say('starting metald');
    daemon = await spawnDaemon(lab.configPath, 120_000, [], onLog);
    return { lab, daemon, ctl, url: daemon.url, bootUrl, imageUrl, configPath: lab.configPath, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
