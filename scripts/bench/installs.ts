/**
 * The installs section of `npm run bench` (issue 11): 8 emulated servers installed at once through metald's REST
 * API, against the sum of their image transfer times measured in the same run (the peer: busybox `wget` of the same
 * image from the same server, one after the other, as each server's ramdisk fetches it).
 *
 * The rack: the Redfish emulator with a node emulator behind each system (test/emulators/node/node.ts) running the
 * real reference installer under busybox against a disk file; metald as the real daemon (dist/agent/main.js) with
 * its boot server; an image server here that sends each transfer at `rateMiBs` (a server's link), so that a
 * transfer's time is the image's size over the link, not the loopback's. The image is of os `other` (written as it
 * is, no mount: no root needed). Each disk is checked to hold the image byte for byte.
 *
 * Figures: the wall time from the first create to the last `install-succeed`, the sum and the longest of the peer's
 * transfer times, and wall / sum (the target: at most 0.5, i.e. the installs overlap; 1/8 is a perfect overlap).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { IMAGE2, MEMBER_TOKEN, PROJECT, nodeId } from '../../test/helpers/harness.js';
import { startLab } from '../../test/e2e/real-bmc/lab.js';
import { freeTcpPort } from '../../test/helpers/peers.js';
import { call, spawnDaemon } from './daemon.js';
import { MAX_RATIO, type InstallsOptions, type InstallsResults } from './installs-report.js';
import { throttledImageServer } from '../image-server.js';

function busyboxWget(url: string): Promise<number> {
  const busybox = execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim();
  const t0 = performance.now();
  const child = spawn(busybox, ['wget', '-q', '-O', '/dev/null', url], { stdio: 'ignore' });
  return new Promise((res, rej) => child.once('exit', (code) => (code === 0 ? res((performance.now() - t0) / 1000) : rej(new Error(`busybox wget ${url}: exit ${code}`)))));
}


export async function runInstalls(o: InstallsOptions, log: (m: string) => void): Promise<InstallsResults> {
  const work = mkdtempSync(join(tmpdir(), 'metald-bench-installs-'));
  const image = randomBytes(o.imageMiB * 1024 * 1024);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const images = await throttledImageServer(image, o.rateMiBs);
  const url = `http://127.0.0.1:${(images.address() as AddressInfo).port}/image.img`;
  let lab: Awaited<ReturnType<typeof startLab>> | undefined;
  let daemon: Awaited<ReturnType<typeof spawnDaemon>> | undefined;
  try {
    log(`installs: the peer: busybox wget of the ${o.imageMiB} MiB image at ${o.rateMiBs} MiB/s, ${o.nodes} times in a row`);
    const transfersS: number[] = [];
    for (let i = 0; i < o.nodes; i++) transfersS.push(await busyboxWget(url));

    const bootPort = await freeTcpPort();
    const disks = Array.from({ length: o.nodes }, (_, k) => join(work, `disk-${k + 1}.img`));
    for (const d of disks) writeFileSync(d, Buffer.alloc((o.imageMiB + 8) * 1024 * 1024));
    const mac = (i: number) => `fa:16:3e:00:01:${String(i).padStart(2, '0')}`;
    lab = await startLab({
      ipmi: [],
      redfish: disks.map((disk, k) => ({ id: `sys-${k + 1}`, power: 'Off' as const, profile: { node: { mac: mac(k + 1), bootUrl: `http://127.0.0.1:${bootPort}`, disk } } })),
      nodes: disks.map((_, k) => ({ kind: 'redfish' as const, system: `sys-${k + 1}` })),
      extra: `boot: {listen: "127.0.0.1:${bootPort}"}`,
      liveness: '{engine: fping, interval: 30s, timeout: 200ms, retries: 0}',
      edit: (y) => y.replace(/url: "http:\/\/127\.0\.0\.1:1\/ubuntu\.img", sha256: "b{64}", os: linux/, `url: "${url}", sha256: "${sha(image)}", os: other`).replace(/deploy: 5s/, 'deploy: 300s'),
    });
    daemon = await spawnDaemon(lab.configPath);
    log(`installs: ${o.nodes} installs at once through metald`);
    const t0 = performance.now();
    const ids = await Promise.all(
      disks.map(async (_, k) => {
        const r = await call(daemon!.url, 'POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: `bench-${k + 1}`, image_uuid: IMAGE2, extra: { node_id: nodeId(k + 1) } });
        if (r.status !== 201) throw new Error(`create ${k + 1}: ${r.status} ${JSON.stringify(r.body)}`);
        return (r.body as { uuid: string }).uuid;
      }),
    );
    const doneAt = new Map<string, number>();
    const deadline = t0 + 600_000;
    while (doneAt.size < ids.length) {
      if (performance.now() > deadline) throw new Error(`only ${doneAt.size} of ${ids.length} installs ended in 600 s`);
      await new Promise((r) => setTimeout(r, 50));
      for (const id of ids) {
        if (doneAt.has(id)) continue;
        const s = (await call(daemon.url, 'GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN)).body as { operation_state: string | null; error: unknown };
        if (s.operation_state === 'install-succeed') doneAt.set(id, performance.now());
        else if (s.operation_state === 'install-failed') throw new Error(`install of ${id} failed: ${JSON.stringify(s.error)}`);
      }
    }
    const wallS = (Math.max(...doneAt.values()) - t0) / 1000;
    for (const [k, d] of disks.entries()) {
      if (sha(readFileSync(d).subarray(0, image.length)) !== sha(image)) throw new Error(`disk ${k + 1} does not hold the image`);
    }
    const sumTransfersS = transfersS.reduce((a, b) => a + b, 0);
    const ratio = wallS / sumTransfersS;
    return {
      ...o,
      transfersS,
      sumTransfersS,
      wallS,
      installsS: ids.map((id) => (doneAt.get(id)! - t0) / 1000),
      ratio,
      pass: ratio <= MAX_RATIO,
    };
  } finally {
    await daemon?.stop();
    await lab?.stop();
    await new Promise((r) => images.close(r));
    rmSync(work, { recursive: true, force: true });
  }
}
