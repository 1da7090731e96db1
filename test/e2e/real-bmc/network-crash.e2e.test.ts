/**
 * Issue 11 point 7 on the network path: the real daemon SIGKILLed in the middle of each step of an install through
 * its boot server (Redfish emulator, node emulators running the real installer), then started again on the same
 * state: the install resumes at that step and succeeds; no step before it ran again; the BMC got no reset twice
 * (an interrupted one that had been sent is verified, not re-sent); one installer run, whose report was accepted once.
 * Each step is slowed enough to be caught: the emulator's power changes take 700 ms, metald leaves 300 ms between
 * two commands to a BMC, the image takes about 6 s to arrive. A power step is killed once the emulator has its
 * reset (killed before, the command never left and the step fails cleanly by design: agent/operations/plans/steps.ts).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { freeTcpPort, missingPeers } from '../../helpers/peers.js';
import { ADMIN_PROJECT, ADMIN_TOKEN, IMAGE, IMAGE2, MEMBER_TOKEN, PROJECT, nodeId } from '../../helpers/harness.js';
import { startLab, status, type Lab } from './lab.js';

const MiB = 1024 * 1024;
const mac = (i: number) => `fa:16:3e:00:01:${String(i).padStart(2, '0')}`;

/** The install's events from a free node, in order; `instant`: nothing to wait for (no middle to kill it in). */
/** `reset`: the ResetType the step sends; it is caught once the emulator has received it (else it never left). */
const STEPS: { event: string; instant?: true; reset?: string }[] = [
  { event: 'power_off', reset: 'ForceOff' },
  { event: 'prepare_boot', instant: true },
  { event: 'set_boot_device' },
  { event: 'power_on', reset: 'On' },
  { event: 'deploy' },
  { event: 'set_boot_device' },
  { event: 'power_off', reset: 'ForceOff' },
  { event: 'power_on', reset: 'On' },
  { event: 'confirm_alive', instant: true },
];
const CAUGHT = STEPS.map((s, k) => ({ ...s, k })).filter((s) => !s.instant);
const RESETS = STEPS.flatMap((s) => (s.reset ? [s.reset] : []));

/**
 * A delete of a running instance: its events, the same way (revoke_jobs is silent). Its power steps are safe to
 * repeat (plans/delete.ts): an interrupted one is sent again. The delete's servers boot slowly (their installer starts
 * 3 s after the boot), so that the wipe step, waiting for an installer with little to do, can be interrupted: the
 * installer starts during or after the restart, and its one report is taken by the resumed step.
 */
const DELETE_STEPS: { event: string; instant?: true; reset?: string }[] = [
  { event: 'power_off', reset: 'ForceOff' },
  { event: 'prepare_boot', instant: true },
  { event: 'set_boot_device' },
  { event: 'power_on', reset: 'On' },
  { event: 'wipe' },
  { event: 'power_off', reset: 'ForceOff' },
  { event: 'eject_media', instant: true },
  { event: 'clear_boot_override' },
  { event: 'release_node', instant: true },
];
const DELETE_CAUGHT = DELETE_STEPS.map((s, k) => ({ ...s, k })).filter((s) => !s.instant);
const DELETE_RESETS = DELETE_STEPS.flatMap((s) => (s.reset ? [s.reset] : []));

const why = missingPeers(null, ['busybox'], 'busybox-static');

let work = '';
let images: Server | null = null;
let lab: Lab | undefined;
let daemon: Daemon | undefined;
let image: Buffer;
let fast: Buffer;
const disk = (i: number) => join(work, `disk-${i}.img`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Event {
  event: string;
  start_time: string;
  finish_time: string | null;
  result: string | null;
}

async function events(requestId: string, id: string): Promise<{ events: Event[]; finished: boolean; message: string | null }> {
  const r = await daemon!.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions/${requestId}`, MEMBER_TOKEN);
  if (r.status !== 200) throw new Error(`GET the action ${requestId}: ${r.status} ${r.text}`);
  const a = (r.body as { instanceAction: { events: Event[]; message: string | null } }).instanceAction;
  return { events: a.events.filter((e) => e.event !== 'schedule'), finished: r.headers.get('x-metald-action-finished') !== null, message: a.message };
}

beforeAll(async () => {
  if (why) return;
  work = mkdtempSync(join(tmpdir(), 'metald-netcrash-'));
  image = Buffer.concat([createHash('sha256').update('crash').digest(), Buffer.alloc(12 * MiB, 9)]);
  fast = Buffer.concat([createHash('sha256').update('fast').digest(), Buffer.alloc(1 * MiB, 8)]);
  images = createServer((req, res) => {
    if (req.url === '/fast') {
      res.writeHead(200, { 'content-length': fast.length });
      return res.end(req.method === 'HEAD' ? undefined : fast);
    }
    if (req.url !== '/img') return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': image.length });
    if (req.method === 'HEAD') return res.end();
    let off = 0;
    const pump = () => {
      if (res.destroyed) return;
      if (off >= image.length) return res.end();
      res.write(image.subarray(off, (off += 128 * 1024)));
      setTimeout(pump, 60);
    };
    pump();
  });
  await new Promise<void>((r) => images!.listen(0, '127.0.0.1', r));
  const port = (images.address() as AddressInfo).port;
  const bootPort = await freeTcpPort();
  const n = CAUGHT.length + DELETE_CAUGHT.length;
  for (let i = 1; i <= n; i++) writeFileSync(disk(i), Buffer.alloc(16 * MiB, 0xee));
  lab = await startLab({
    ipmi: [],
    redfish: Array.from({ length: n }, (_, k) => ({ id: `sys-${k + 1}`, power: 'Off' as const, profile: { powerDelayMs: 700, node: { mac: mac(k + 1), bootUrl: `http://127.0.0.1:${bootPort}`, disk: disk(k + 1), ...(k >= CAUGHT.length ? { bootDelayMs: 3000 } : {}) } } })),
    nodes: Array.from({ length: n }, (_, k) => ({ kind: 'redfish' as const, system: `sys-${k + 1}` })),
    extra: `boot: {listen: "127.0.0.1:${bootPort}"}`,
    liveness: '{engine: fping, interval: 30s, timeout: 200ms, retries: 0}',
    edit: (y) =>
      y
        .replace(/url: "http:\/\/127\.0\.0\.1:1\/ubuntu\.img", sha256: "b{64}", os: linux/, `url: "http://127.0.0.1:${port}/img", sha256: "${sha(image)}", os: other`)
        .replace(/url: "http:\/\/127\.0\.0\.1:1\/debian-12\.img", sha256: "a{64}", os: linux/, `url: "http://127.0.0.1:${port}/fast", sha256: "${sha(fast)}", os: other`)
        .replace('bmc: {min_gap: 0ms}', 'bmc: {min_gap: 300ms}')
        .replace(/deploy: 5s/, 'deploy: 60s')
        .replace(/power: 5s/, 'power: 10s')
        .replace(/bmc_call: 2s/, 'bmc_call: 10s'),
  });
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGKILL');
  await lab?.stop();
  await new Promise((r) => (images ? images.close(r) : r(undefined)));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('SIGKILL in the middle of each step of a network install, then restart: it resumes at that step', () => {
  CAUGHT.forEach((target, idx) => {
    const i = idx + 1;
    it(`event ${target.k} (${target.event})`, async () => {
      if (why) expect.fail(why);
      const sys = `sys-${i}`;
      const resets = async () => (await lab!.emu.system(sys)).commands.filter((c) => c.kind === 'reset' && c.by === 'client').map((c) => String(c.args['ResetType']));
      const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: `crash-${i}`, image_uuid: IMAGE2, extra: { node_id: nodeId(i) } });
      expect(r.status, r.text).toBe(201);
      const id = (r.body as { uuid: string }).uuid;
      const requestId = r.headers.get('x-compute-request-id')!;
      let before: Event[] = [];
      const sentBy = STEPS.slice(0, target.k + 1).filter((s) => s.reset).length;
      await waitFor(async () => {
        before = (await events(requestId, id)).events;
        const open = before.length === target.k + 1 && before[target.k]!.finish_time === null;
        return open && (!target.reset || (await resets()).length === sentBy);
      }, 30_000, `event ${target.k} (${target.event}) open`);
      await daemon!.kill('SIGKILL');
      const resetsAtKill = await resets();
      daemon = await startDaemon(lab!.configPath);

      let after = await events(requestId, id);
      await waitFor(async () => (after = await events(requestId, id)).finished, 60_000, 'the install to finish');
      expect(after.message, JSON.stringify(await status(daemon, id, 'admin'))).toBeNull();
      expect(await status(daemon, id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
      // The records: the steps before as they were, the interrupted one the same event (its start kept), all Success.
      expect(after.events.slice(0, target.k)).toEqual(before.slice(0, target.k));
      expect(after.events[target.k]).toMatchObject({ event: target.event, start_time: before[target.k]!.start_time, result: 'Success' });
      expect(after.events.map((e) => e.event)).toEqual(STEPS.map((s) => s.event));
      // The peers: one installer run, which reported success once; no reset sent twice; the disk holds the image.
      const nodeRecord = (await lab!.emu.system(sys)).commands.filter((c) => c.kind === 'node').map((c) => String(c.args['what']));
      expect(nodeRecord.filter((w) => w === 'installer-started')).toHaveLength(1);
      expect((await resets()).slice(0, resetsAtKill.length)).toEqual(resetsAtKill);
      expect(await resets()).toEqual(RESETS);
      expect(sha(readFileSync(disk(i)).subarray(0, image.length))).toBe(sha(image));
    }, 120_000);
  });
});

describe('SIGKILL in the middle of each step of a delete through the boot server, then restart: it resumes at that step', () => {
  DELETE_CAUGHT.forEach((target, idx) => {
    const i = CAUGHT.length + idx + 1;
    it(`event ${target.k} (${target.event})`, async () => {
      if (why) expect.fail(why);
      const sys = `sys-${i}`;
      const resets = async () => (await lab!.emu.system(sys)).commands.filter((c) => c.kind === 'reset' && c.by === 'client').map((c) => String(c.args['ResetType']));
      const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: `del-${i}`, image_uuid: IMAGE, extra: { node_id: nodeId(i) } });
      expect(r.status, r.text).toBe(201);
      const id = (r.body as { uuid: string }).uuid;
      await waitFor(async () => (await status(daemon!, id)).operation_state === 'install-succeed', 60_000, 'the install').catch(async (e) => {
        throw new Error(`${(e as Error).message}: ${JSON.stringify(await status(daemon!, id, 'admin'))}`);
      });
      const installResets = await resets();
      const d = await daemon!.call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN);
      expect(d.status, d.text).toBeLessThan(300);
      const requestId = d.headers.get('x-compute-request-id')!;
      let before: Event[] = [];
      const sentBy = installResets.length + DELETE_STEPS.slice(0, target.k + 1).filter((s) => s.reset).length;
      await waitFor(async () => {
        before = (await events(requestId, id)).events;
        const open = before.length === target.k + 1 && before[target.k]!.finish_time === null;
        return open && (!target.reset || (await resets()).length === sentBy);
      }, 30_000, `event ${target.k} (${target.event}) open`).catch(async (e) => {
        throw new Error(`${(e as Error).message}: ${JSON.stringify(before)} ${JSON.stringify((await lab!.emu.system(sys)).commands.slice(-14).map((c) => [c.atMs, c.kind, c.by, c.args]))}`);
      });
      await daemon!.kill('SIGKILL');
      daemon = await startDaemon(lab!.configPath);

      let after = await events(requestId, id);
      await waitFor(async () => (after = await events(requestId, id)).finished, 60_000, 'the delete to finish');
      expect(after.message, JSON.stringify((await daemon!.call('GET', `/v2/${ADMIN_PROJECT}/servers/${id}/os-instance-actions/${requestId}`, ADMIN_TOKEN)).body) + JSON.stringify((await lab!.emu.system(sys)).commands.slice(-12).map((c) => [c.kind, c.by, c.args]))).toBeNull();
      expect(after.events.slice(0, target.k)).toEqual(before.slice(0, target.k));
      expect(after.events[target.k]).toMatchObject({ event: target.event, start_time: before[target.k]!.start_time, result: 'Success' });
      expect(after.events.map((e) => e.event)).toEqual(DELETE_STEPS.map((s) => s.event));
      // The interrupted power step's command once more (repeat), the others once.
      const j = DELETE_STEPS.slice(0, target.k).filter((x) => x.reset).length;
      const expected = target.reset ? [...DELETE_RESETS.slice(0, j + 1), target.reset, ...DELETE_RESETS.slice(j + 1)] : DELETE_RESETS;
      expect(await resets()).toEqual([...installResets, ...expected]);
      const nodeRecord = (await lab!.emu.system(sys)).commands.filter((c) => c.kind === 'node').map((c) => String(c.args['what']));
      expect(nodeRecord.filter((w) => w === 'installer-started')).toHaveLength(2); // the install, then one wipe
      expect(readFileSync(disk(i)).every((b) => b === 0)).toBe(true);
      expect((await lab!.emu.system(sys)).powerState).toBe('Off');
      expect((await lab!.emu.system(sys)).boot.enabled, 'the BMC holds no boot override after the delete').toBe('Disabled');
    }, 120_000);
  });
});
