/**
 * Faults injected into the REAL Redfish emulator (test/emulators/redfish/, the built program as a child process),
 * through metald running as a child process: a system that answers 503, a session dropped mid power change, a boot
 * override the BMC reverts, a 30 s power-on, a rejected password, and a certificate from another CA. Each ends in its
 * typed error within its deadline (or, for the dropped session, completes after one new login), the API keeps
 * answering meanwhile, the emulator's own record (its system state, command log, stats) shows what it was sent, and
 * the instance is as design.md section 3 says.
 *
 * The short waiting policies are this test's (faultConfig: bmc_call 1 s, power 1.5 s, power_poll 20/50/100 ms); the
 * real ones live in config (docs/config.md `timeouts.power`, `timeouts.bmc_call`, `power_poll`).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulatorControl, launchEmulator, type EmulatorControl, type EmulatorProcess } from '../../emulators/redfish/launch.js';
import { makeTestPki } from '../../emulators/redfish/tls.js';
import { startDaemon, type Daemon } from '../../helpers/daemon.js';

const INSTALLER_MAIN = resolve(import.meta.dirname, '../../../dist/scripts/test-metald-installer.js');
import { ADMIN_PROJECT, IMAGE } from '../../helpers/harness.js';
import { faultConfig, instanceId, powerAction, runAction, statusOf, waitAdopted } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'metald-faults-redfish-'));
const pwFile = join(work, 'bmc.pw');
const PASSWORD = 'Rf-faults-pw-7';
const pkiA = join(work, 'pki-a');
const pkiB = join(work, 'pki-b');
let emu: EmulatorProcess | undefined;
let tlsEmu: EmulatorProcess | undefined;
let ctl: EmulatorControl;
let daemon: Daemon | undefined;
let configDir: string | undefined;

const redfishBmc = (url: string, system: string) =>
  `{driver: redfish, address: "${url}", system_id: /redfish/v1/Systems/${system}, username: admin, password_file: ${pwFile}, ca_file: ${join(pkiA, 'ca.pem')}}`;

beforeAll(async () => {
  writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
  makeTestPki(pkiA);
  makeTestPki(pkiB);
  const common = ['--password-file', pwFile, '--power', 'On', '--power-delay-ms', '50'];
  emu = await launchEmulator(['--systems', '5', '--tls-dir', pkiA, ...common]);
  tlsEmu = await launchEmulator(['--systems', '1', '--tls-dir', pkiA, ...common]);
  ctl = emulatorControl(emu.url, readFileSync(join(pkiA, 'ca.pem'), 'utf8'));
  await ctl.configure('sys-4', { powerState: 'Off' });
  const { dir, configPath } = faultConfig([1, 2, 3, 4, 5].map((i) => redfishBmc(emu!.url, `sys-${i}`)).concat(redfishBmc(tlsEmu.url, 'sys-1')));
  configDir = dir;
  // The test-only installer build (scripts/test-metald-installer.ts): the reinstall below must get past prepare_boot
  // to reach the boot override this suite faults.
  daemon = await startDaemon(configPath, { METALD_TEST_INSTALL_LOG: join(dir, 'jobs.log'), METALD_TEST_INSTALL_MS: '50' }, INSTALLER_MAIN);
  await waitAdopted(daemon, 6);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await emu?.stop();
  await tlsEmu?.stop();
  rmSync(work, { recursive: true, force: true });
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

const clientResets = async (c: EmulatorControl, id: string) =>
  (await c.system(id)).commands.filter((x) => x.kind === 'reset' && x.by === 'client').map((x) => `${String(x.args['ResetType'])} ${x.status}`);

describe('faults of the real Redfish emulator, through metald', () => {
  it('a system answering 503: power off ends in BMC_ERR_BUSY (nothing sent), the system stays On, the instance running with power_off_error', async () => {
    await ctl.setFaults({ unavailable: true, systems: ['sys-1'] });
    try {
      const act = await powerAction(daemon!, 1, 'power off', 5_000);
      expect(act.tookMs).toBeLessThan(3_000);
      expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
    } finally {
      await ctl.clearFaults();
    }
    expect(await statusOf(daemon!, 1)).toMatchObject({ state: 'running', error: { error_code: 'BMC_ERR_BUSY', error_type: 'power_off_error' } });
    expect((await ctl.system('sys-1')).powerState).toBe('On');
    expect(await clientResets(ctl, 'sys-1')).toEqual([]);
  });

  it('a session dropped mid-call (the reset itself gets 401): the driver logs in once more and the change completes', async () => {
    const before = await ctl.stats();
    await ctl.setFaults({ dropSession: true, dropSessionOn: 'POST', systems: ['sys-2'] });
    const act = await powerAction(daemon!, 2, 'power off', 5_000);
    expect(act.message).toBeNull();
    expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Success']]);
    const after = await ctl.stats();
    expect((await ctl.clearFaults()).dropSession).toBeUndefined();
    // The emulator's own record: one refused reset (its 401), one second login, one reset carried out.
    expect(after.authRefused - before.authRefused).toBe(1);
    expect(after.logins - before.logins).toBe(1);
    expect(await clientResets(ctl, 'sys-2')).toEqual(['ForceOff 204']);
    expect((await ctl.system('sys-2')).powerState).toBe('Off');
    expect(await statusOf(daemon!, 2)).toMatchObject({ state: 'stopped', error: null });
  });

  it('a BMC that reverts the boot override: reinstall fails with BMC_ERR_BOOT_FLAGS_IGNORED, the instance in error, the server off', async () => {
    await ctl.setFaults({ revertBootAfterMs: 0, systems: ['sys-3'] });
    let act;
    try {
      act = await runAction(daemon!, 3, 'POST', `/v1/${ADMIN_PROJECT}/instances/${instanceId(3)}/actions`, { reinstall: { image_uuid: IMAGE } }, 8_000);
    } finally {
      await ctl.clearFaults();
    }
    expect(act.tookMs).toBeLessThan(5_000);
    const events = act.events.map((e) => [e.event, e.result]);
    expect(events.slice(0, 3)).toEqual([['power_off', 'Success'], ['prepare_boot', 'Success'], ['set_boot_device', 'Error']]);
    expect(await statusOf(daemon!, 3)).toMatchObject({ state: 'error', operation_state: 'reinstall-failed', error: { error_code: 'BMC_ERR_BOOT_FLAGS_IGNORED' } });
    const sys = await ctl.system('sys-3');
    expect(sys.commands.filter((c) => c.kind === 'boot-override' || c.kind === 'boot-revert').map((c) => `${c.kind} ${c.by}`)).toEqual(['boot-override client', 'boot-revert emulator']);
    expect(sys.powerState).toBe('Off');
  });

  it('a system that takes 30 s to power on: power on ends at the test\'s 1.5 s verification deadline, the instance stays stopped with power_on_error', async () => {
    // timeouts.power is 1.5 s in this test's config; the real policy (docs/config.md, default 120 s) lives in config.
    await ctl.setFaults({ powerOnDelayMs: 30_000, systems: ['sys-4'] });
    try {
      const act = await powerAction(daemon!, 4, 'power on', 6_000);
      expect(act.tookMs).toBeGreaterThanOrEqual(1_500);
      expect(act.tookMs).toBeLessThan(4_000);
      expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_on', 'Error']]);
    } finally {
      await ctl.clearFaults();
    }
    const s = await statusOf(daemon!, 4);
    expect(s).toMatchObject({ state: 'stopped', error: { error_code: 'BMC_ERR_VERIFY_FAILED', error_type: 'power_on_error' } });
    expect(s.error!.error_msg).toMatch(/within 1500 ms/);
    expect(await clientResets(ctl, 'sys-4')).toEqual(['On 204']);
    expect((await ctl.system('sys-4')).powerState).toBe('PoweringOn');
  });

  it('a rejected password: power off ends in BMC_ERR_AUTH at once, a bounded number of refused attempts and none after', async () => {
    const before = (await ctl.stats()).authRefused;
    await ctl.setFaults({ rejectPassword: true });
    let refused: number;
    try {
      const act = await powerAction(daemon!, 5, 'power off', 5_000);
      expect(act.tookMs).toBeLessThan(2_000);
      expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
      refused = (await ctl.stats()).authRefused - before;
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await ctl.stats()).authRefused - before).toBe(refused);
    } finally {
      await ctl.clearFaults();
    }
    // Acceptance's read: its session token refused, then one new login refused (docs/decisions.md: re-login once);
    // the off: one login refused. Nothing more.
    expect(refused).toBe(3);
    expect(await statusOf(daemon!, 5)).toMatchObject({ state: 'running', error: { error_code: 'BMC_ERR_AUTH', error_type: 'power_off_error' } });
    expect(await clientResets(ctl, 'sys-5')).toEqual([]);
    expect((await ctl.system('sys-5')).powerState).toBe('On');
  });

  it('a certificate from another CA: power off ends in BMC_ERR_AUTH, not one request reached the BMC', async () => {
    // The same BMC now serves a certificate the node's ca_file does not vouch for (its connections closed, as at a
    // restart; the same process and port, so no other process can take the port meanwhile).
    await emulatorControl(tlsEmu!.url, readFileSync(join(pkiA, 'ca.pem'), 'utf8')).setTls(readFileSync(join(pkiB, 'server.key'), 'utf8'), readFileSync(join(pkiB, 'server.pem'), 'utf8'));
    const wrong = emulatorControl(tlsEmu!.url, readFileSync(join(pkiB, 'ca.pem'), 'utf8'));
    await wrong.resetStats();
    const act = await powerAction(daemon!, 6, 'power off', 5_000);
    expect(act.tookMs).toBeLessThan(3_000);
    const s = await statusOf(daemon!, 6);
    expect(s).toMatchObject({ state: 'running', error: { error_code: 'BMC_ERR_AUTH', error_type: 'power_off_error' } });
    expect(s.error!.error_msg).toMatch(/certificate/i);
    expect((await wrong.stats()).requests).toBe(0);
    expect(await clientResets(wrong, 'sys-1')).toEqual([]);
    expect((await wrong.system('sys-1')).powerState).toBe('On');
  });
});
