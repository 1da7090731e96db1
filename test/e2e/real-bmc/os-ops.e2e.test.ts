/**
 * The OS operations' power steps on REAL BMCs: reinstall, switch-install and uninstall of adopted running instances.
 * metald runs as its TEST-ONLY installer build (scripts/test-metald-installer.ts: the real daemon with a stand-in for
 * the deploy ramdisk, as no network installer exists yet); the power off, boot device and power on steps go through
 * the real drivers and are asserted on the peer (the emulator's resets and boot overrides and its boots, ipmi_sim's
 * chassis log), the ICMP confirmation through the real fping (the instances' addresses are on loopback).
 *
 * Nodes: 1-3 redfish On + adopted (reinstall, switch-install, uninstall), 4 ipmi on + adopted (reinstall: ipmi_sim
 * keeps no persistent boot device, so the final set_boot_device fails and the node ends powered off), 5 redfish On +
 * adopted whose PATCHes need If-Match and whose resets answer with a task, 6 redfish On + adopted, boot_mode uefi,
 * 7 redfish On + adopted, switched to an image that boots its ramdisk from virtual media.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_TOKEN, IMAGE, IMAGE2, MEMBER_TOKEN, PROJECT, nodeId } from '../../helpers/harness.js';
import { adoptedId, emulatorCommands, finishedAction, putPower, startLab, status, type Lab } from './lab.js';

const MEDIA_IMAGE = '5fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const INSTALLER_MAIN = resolve(import.meta.dirname, '../../../dist/scripts/test-metald-installer.js');

let lab: Lab | undefined;
let daemon: Daemon | undefined;
let jobLog = '';

beforeAll(async () => {
  if (!existsSync(INSTALLER_MAIN)) throw new Error(`${INSTALLER_MAIN} is missing: run \`npm run build\` first (npm test does)`);
  if (!existsSync('/usr/bin/fping')) throw new Error('/usr/bin/fping is missing: install Debian\'s fping (scripts/setup.sh does)');
  lab = await startLab({
    ipmi: ['on'],
    redfish: [
      { id: 'sys-1', power: 'On' },
      { id: 'sys-2', power: 'On' },
      { id: 'sys-3', power: 'On' },
      { id: 'sys-4', power: 'On', profile: { requireIfMatch: true, tasks: true } },
      { id: 'sys-5', power: 'On' },
      { id: 'sys-6', power: 'On' },
    ],
    nodes: [
      { kind: 'redfish', system: 'sys-1', adopt: 'vm-reinstall' },
      { kind: 'redfish', system: 'sys-2', adopt: 'vm-switch' },
      { kind: 'redfish', system: 'sys-3', adopt: 'vm-uninstall' },
      { kind: 'ipmi', sim: 0, adopt: 'vm-ipmi' },
      { kind: 'redfish', system: 'sys-4', adopt: 'vm-if-match' },
      { kind: 'redfish', system: 'sys-5', adopt: 'vm-uefi', bootMode: 'uefi' },
      { kind: 'redfish', system: 'sys-6', adopt: 'vm-media' },
    ],
    // The ramdisk ISO for virtual media, and an image that boots it that way.
    extra: `boot: {listen: "127.0.0.1:0", public_url: "http://127.0.0.1:8081", ramdisk: {iso: /var/lib/metald/boot/ramdisk.iso}}`,
    edit: (yaml) => yaml.replace(/\ninstance_types:\n/, `\n  - {uuid: ${MEDIA_IMAGE}, name: debian-12-vmedia, url: "http://127.0.0.1:1/debian-12.img", sha256: "${'c'.repeat(64)}", os: linux, boot_method: virtual-media}\ninstance_types:\n`),
    liveness: '{engine: fping, interval: 30s, timeout: 200ms, retries: 0}',
  });
  jobLog = join(lab.dir, 'jobs.jsonl');
  daemon = await startDaemon(lab.configPath, { METALD_TEST_INSTALL_LOG: jobLog, METALD_TEST_INSTALL_MS: '50' }, INSTALLER_MAIN);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await lab?.stop();
});

async function osAction(d: Daemon, id: string, body: Record<string, unknown>): Promise<string> {
  const r = await d.call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER_TOKEN, body);
  if (r.status !== 202) throw new Error(`POST actions ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  return r.headers.get('x-compute-request-id')!;
}

function jobs(): { node: string; operation: string; image: string | null }[] {
  if (!existsSync(jobLog)) return [];
  return readFileSync(jobLog, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const { node, operation, image } = JSON.parse(l) as { node: string; operation: string; image: string | null };
      return { node, operation, image };
    });
}

// From running: PowerOff edge first, then the ramdisk's boot (pxe, next boot only), the installer, the installed
// system's boot (disk, persistent) from a verified off.
const INSTALL_STEPS = ['power_off', 'prepare_boot', 'set_boot_device', 'power_on', 'deploy', 'set_boot_device', 'power_off', 'power_on', 'confirm_alive'];
const INSTALL_PEER = [
  'reset ForceOff 204',
  'boot Pxe Once 200',
  'reset On 204',
  'boot Hdd Continuous 200',
  'reset ForceOff 204',
  'reset On 204',
];

describe('OS operations through the real drivers', () => {
  for (const [node, system, op, body, image] of [
    [1, 'sys-1', 'reinstall', { reinstall: {} }, 'debian-12'],
    [2, 'sys-2', 'switch-install', { 'switch-install': { image_uuid: IMAGE2 } }, 'ubuntu-24.04'],
    [5, 'sys-4', 'reinstall', { reinstall: {} }, 'debian-12'],
    [6, 'sys-5', 'reinstall', { reinstall: {} }, 'debian-12'],
  ] as const) {
    it(`redfish${node === 5 ? ' (If-Match required, tasks)' : node === 6 ? ' (uefi)' : ''}: ${op} of a running instance powers off, boots pxe, powers on, boots disk: running, ${op}-succeed`, async () => {
      const d = daemon!;
      const id = adoptedId(node);
      const rid = await osAction(d, id, body);
      // One mutating operation per instance: while it runs, a power request and another operation are 409.
      for (const [method, path, other] of [
        ['PUT', `/v1/instances/${id}/states/power`, { target: 'power off' }],
        ['POST', `/v1/${PROJECT}/instances/${id}/actions`, { uninstall: {} }],
      ] as const) {
        const r = await d.call(method, path, MEMBER_TOKEN, other);
        expect(r.status, `${method} ${path}: ${r.text}`).toBe(409);
      }
      const a = await finishedAction(d, id, rid, 20_000);
      const s = await status(d, id, 'admin');
      const sys = await lab!.emu.system(system);
      const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, system) });
      expect(a.message, why).toBeNull();
      expect(a.action, why).toBe(op);
      expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(INSTALL_STEPS.map((e) => `${e} Success`));
      expect(s, why).toEqual({ state: 'running', operation_state: `${op}-succeed`, error: null });
      expect(await emulatorCommands(lab!.emu, system), why).toEqual(node === 5 ? INSTALL_PEER.map((x) => x.replace(/^(reset .*) 204$/, '$1 202')) : INSTALL_PEER);
      // The server itself booted the ramdisk from pxe, then the installed system from disk.
      expect(sys.boots.map((b) => b.device), why).toEqual(['Pxe', 'Hdd']);
      // In the node's boot mode (the override's BootSourceOverrideMode).
      expect(sys.boots.map((b) => b.mode), why).toEqual(node === 6 ? ['UEFI', 'UEFI'] : ['Legacy', 'Legacy']);
      expect(sys.powerState).toBe('On');
      expect(jobs().filter((j) => j.node === `node-0${node}`)).toEqual([{ node: `node-0${node}`, operation: op, image }]);
      const server = await d.call('GET', `/v2/${PROJECT}/servers/${id}`, MEMBER_TOKEN);
      expect((server.body as { server: { image: { id: string } } }).server.image.id).toBe(node === 2 ? IMAGE2 : IMAGE);
    });
  }

  it('redfish: uninstall of a running instance powers off, boots pxe, powers on, then leaves it off: stopped, uninstall-succeed', async () => {
    const d = daemon!;
    const id = adoptedId(3);
    const a = await finishedAction(d, id, await osAction(d, id, { uninstall: {} }), 20_000);
    const s = await status(d, id, 'admin');
    const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, 'sys-3') });
    expect(a.message, why).toBeNull();
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['power_off', 'prepare_boot', 'set_boot_device', 'power_on', 'deploy', 'set_boot_device', 'power_off'].map((e) => `${e} Success`));
    expect(s, why).toEqual({ state: 'stopped', operation_state: 'uninstall-succeed', error: null });
    expect(await emulatorCommands(lab!.emu, 'sys-3'), why).toEqual(INSTALL_PEER.slice(0, 5));
    expect((await lab!.emu.system('sys-3')).powerState).toBe('Off');
    expect(jobs().filter((j) => j.node === 'node-03')).toEqual([{ node: 'node-03', operation: 'uninstall', image: 'debian-12' }]);
  });

  it('ipmi: reinstall reaches ipmi_sim (off, pxe, on); its persistent disk boot is not kept: error, reinstall-failed, powered off', async () => {
    const d = daemon!;
    const id = adoptedId(4);
    const sim = lab!.sims[0]!;
    const a = await finishedAction(d, id, await osAction(d, id, { reinstall: {} }), 20_000);
    const s = await status(d, id, 'admin');
    const why = JSON.stringify({ a, s, log: await sim.log() });
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual([
      'power_off Success',
      'prepare_boot Success',
      'set_boot_device Success',
      'power_on Success',
      'deploy Success',
      'set_boot_device Error',
      'power_off_after_failure Success',
    ]);
    expect(s.state, why).toBe('error');
    expect(s.operation_state, why).toBe('reinstall-failed');
    expect(s.error?.error_code, why).toBe('BMC_ERR_BOOT_FLAGS_IGNORED');
    expect(s.error?.error_type, why).toBe('install_error');
    expect(s.error?.error_msg, why).toContain("step 'set_boot_device' failed");
    expect(s.error?.error_msg, why).toContain('persistent');
    expect(await sim.log(), why).toEqual(['power 0', 'boot pxe', 'power 1', 'boot default', 'power 0']);
    expect(await sim.power()).toBe('off');
  });

  it('ipmi: power on, then off, of the instance left in error reach ipmi_sim; state stays error, the error is kept', async () => {
    const d = daemon!;
    const id = adoptedId(4);
    const sim = lab!.sims[0]!;
    const before = await status(d, id, 'admin');
    expect(before.state).toBe('error');
    const logBefore = await sim.log();
    for (const [target, power, line] of [['power on', 'power on', 'power 1'], ['power off', 'power off', 'power 0']] as const) {
      const a = await finishedAction(d, id, await putPower(d, id, target));
      const why = JSON.stringify({ a, log: await sim.log() });
      expect(a.message, why).toBeNull();
      expect(await status(d, id, 'admin'), why).toEqual(before);
      expect((await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN)).body, why).toEqual({ power_state: power, target_power_state: null });
      logBefore.push(line);
      expect(await sim.log(), why).toEqual(logBefore);
    }
  });

  it('redfish: delete of the reinstalled running instance powers off, wipes through the ramdisk, ends off: terminated, node free', async () => {
    const d = daemon!;
    const id = adoptedId(1);
    const before = await emulatorCommands(lab!.emu, 'sys-1');
    const r = await d.call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN);
    expect(r.status, r.text).toBe(202);
    const a = await finishedAction(d, id, r.headers.get('x-compute-request-id')!, 20_000);
    const s = await status(d, id, 'admin');
    const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, 'sys-1') });
    expect(a.action, why).toBe('delete');
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['power_off', 'prepare_boot', 'set_boot_device', 'power_on', 'wipe', 'power_off', 'eject_media', 'clear_boot_override', 'release_node'].map((e) => `${e} Success`));
    expect(s, why).toMatchObject({ state: 'terminated', error: null });
    expect(await emulatorCommands(lab!.emu, 'sys-1'), why).toEqual([...before, 'reset ForceOff 204', 'boot Pxe Once 200', 'reset On 204', 'reset ForceOff 204', 'boot Disabled 200']); // eject_media: the CD was empty (the driver sends nothing)
    expect((await lab!.emu.system('sys-1')).powerState).toBe('Off');
    expect((await lab!.emu.system('sys-1')).boot.enabled, 'the BMC holds no boot override').toBe('Disabled');
    expect(jobs().filter((j) => j.node === 'node-01').map((j) => j.operation)).toEqual(['reinstall', 'uninstall']);
    const node = (await d.call('GET', `/v1/nodes/${nodeId(1)}`, ADMIN_TOKEN)).body as { instance_uuid: string | null; power_state: string };
    expect(node).toMatchObject({ instance_uuid: null, power_state: 'power off' });
  });

  it('redfish: switch-install to a virtual-media image inserts the ramdisk ISO, boots the CD, ejects it, boots disk: running', async () => {
    const d = daemon!;
    const id = adoptedId(7);
    const a = await finishedAction(d, id, await osAction(d, id, { 'switch-install': { image_uuid: MEDIA_IMAGE } }), 20_000);
    const s = await status(d, id, 'admin');
    const sys = await lab!.emu.system('sys-6');
    const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, 'sys-6') });
    expect(a.message, why).toBeNull();
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(
      ['power_off', 'prepare_boot', 'insert_media', 'set_boot_device', 'power_on', 'deploy', 'eject_media', 'set_boot_device', 'power_off', 'power_on', 'confirm_alive'].map((e) => `${e} Success`),
    );
    expect(s, why).toEqual({ state: 'running', operation_state: 'switch-install-succeed', error: null });
    expect(await emulatorCommands(lab!.emu, 'sys-6'), why).toEqual([
      'reset ForceOff 204',
      'media-insert 204',
      'boot Cd Once 200',
      'reset On 204',
      'media-eject 204',
      'boot Hdd Continuous 200',
      'reset ForceOff 204',
      'reset On 204',
    ]);
    const inserted = sys.commands.find((c) => c.kind === 'media-insert');
    expect(inserted?.args['Image'], why).toBe('http://127.0.0.1:8081/v1/ramdisk/ramdisk.iso');
    expect(sys.boots.map((b) => b.device), why).toEqual(['Cd', 'Hdd']);
    expect(sys.media.inserted, why).toBe(false);
  });
});
