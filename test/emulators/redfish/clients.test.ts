/**
 * The emulator checked by real Redfish clients: Debian's python3-sushy (OpenStack's library, run with /usr/bin/python3)
 * and DMTF's redfishtool, over HTTPS with the test CA, against the built standalone emulator (`npm run build` first).
 * Each case asserts what the emulator itself recorded (its system state and command log), not only the client's output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { emulatorControl, launchEmulator, type EmulatorProcess, type EmulatorStats } from './launch.js';
import type { SystemDump } from './model.js';

const PYTHON = '/usr/bin/python3';
const REDFISHTOOL = '/usr/bin/redfishtool';
const dir = mkdtempSync(join(tmpdir(), 'rfemu-clients-'));
let emu: EmulatorProcess;
let ca: string;

/** The clients' environment: this machine's CA bundle variables replaced by the test CA. */
function clientEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, REQUESTS_CA_BUNDLE: emu.caFile!, ...extra };
  delete env.CURL_CA_BUNDLE;
  return env;
}

const state = (id: string): Promise<SystemDump> => emulatorControl(emu.url, ca).system(id);
/** Sessions open now and logins so far, as the emulator counts them. */
const sessions = (): Promise<EmulatorStats> => emulatorControl(emu.url, ca).stats();
const clientCommands = async (id: string): Promise<[string, Record<string, unknown>, number][]> =>
  (await state(id)).commands.filter((c) => c.by === 'client').map((c) => [c.kind, c.args, c.status]);

async function until(what: string, f: () => Promise<boolean>, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  const sushy = spawnSync(PYTHON, ['-c', 'import sushy'], { encoding: 'utf8' });
  if (sushy.status !== 0) throw new Error(`${PYTHON} cannot import sushy (install Debian's python3-sushy; scripts/setup.sh does): ${sushy.error?.message ?? sushy.stderr}`);
  if (!existsSync(REDFISHTOOL)) throw new Error(`${REDFISHTOOL} is missing (install Debian's redfishtool; scripts/setup.sh does)`);
  emu = await launchEmulator(['--systems', '4', '--tls-dir', join(dir, 'tls'), '--power-delay-ms', '50', '--system', 'sys-4={"resetTypes":["On","ForceOff"]}']);
  ca = readFileSync(emu.caFile!, 'utf8');
});

afterAll(async () => {
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const SUSHY_SCRIPT = String.raw`
import json, os, sys, time
import sushy
from sushy import auth, exceptions

url, sys_id = sys.argv[1], sys.argv[2]
out = {}
a = auth.SessionAuth(username=os.environ['EMU_USER'], password=os.environ['EMU_PASSWORD'])
root = sushy.Sushy(url + '/redfish/v1', auth=a, verify=os.environ['EMU_CA'])
system = root.get_system('/redfish/v1/Systems/' + sys_id)
out['session'] = a.can_refresh_session()
out['power_before'] = str(system.power_state.value)

def wait(state):
    for _ in range(150):
        system.refresh()
        if system.power_state == state:
            return True
        time.sleep(0.02)
    return False

system.reset_system(sushy.RESET_ON)
out['powered_on'] = wait(sushy.POWER_STATE_ON)
system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE, mode=sushy.BOOT_SOURCE_MODE_UEFI)
system.refresh()
out['boot'] = [str(system.boot.target.value), str(system.boot.enabled.value), str(system.boot.mode.value)]
try:
    system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_FLOPPY)
    out['floppy'] = 'accepted'
except exceptions.InvalidParameterValueError:
    out['floppy'] = 'refused by sushy from AllowableValues'

manager = system.managers[0]
cd = manager.virtual_media.get_members()[0]
cd.insert_media('http://10.0.0.1/boot.iso')
cd.refresh()
out['inserted'] = [cd.inserted, cd.image]
cd.eject_media()
cd.refresh()
out['ejected'] = [cd.inserted, cd.image]
system.reset_system(sushy.RESET_FORCE_OFF)
out['powered_off'] = wait(sushy.POWER_STATE_OFF)

other = root.get_system('/redfish/v1/Systems/sys-4')
out['sys4_resets'] = sorted(str(v.value) for v in other.get_allowed_reset_system_values())
try:
    other.reset_system(sushy.RESET_GRACEFUL_SHUTDOWN)
    out['sys4_graceful'] = 'accepted'
except exceptions.InvalidParameterValueError:
    out['sys4_graceful'] = 'refused by sushy from AllowableValues'
a.close()
print(json.dumps(out))
`;

describe('python3-sushy', () => {
  test('session login, power on/off, boot override, virtual media through the Manager: the emulator saw each command', async () => {
    const script = join(dir, 'sushy-check.py');
    writeFileSync(script, SUSHY_SCRIPT);
    const r = spawnSync(PYTHON, [script, emu.url, 'sys-1'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: clientEnv({ EMU_USER: emu.username, EMU_PASSWORD: emu.password, EMU_CA: emu.caFile! }),
    });
    if (r.status !== 0) throw new Error(`sushy script failed (${r.status ?? r.error?.message}):\n${r.stdout}\n${r.stderr}`);
    expect(JSON.parse(r.stdout)).toEqual({
      session: true,
      power_before: 'Off',
      powered_on: true,
      boot: ['Pxe', 'Once', 'UEFI'],
      floppy: 'refused by sushy from AllowableValues',
      inserted: [true, 'http://10.0.0.1/boot.iso'],
      ejected: [false, null],
      powered_off: true,
      sys4_resets: ['ForceOff', 'On'],
      sys4_graceful: 'refused by sushy from AllowableValues',
    });
    const s = await state('sys-1');
    expect(s.powerState).toBe('Off');
    expect(s.boot).toEqual({ target: 'Pxe', enabled: 'Once', mode: 'UEFI' });
    expect(s.media).toMatchObject({ inserted: false, image: null });
    expect(await clientCommands('sys-1')).toEqual([
      ['reset', { ResetType: 'On', from: 'Off' }, 204],
      ['boot-override', { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' }, 200],
      ['media-insert', { Image: 'http://10.0.0.1/boot.iso' }, 204],
      ['media-eject', {}, 204],
      ['reset', { ResetType: 'ForceOff', from: 'On' }, 204],
    ]);
    expect(await clientCommands('sys-4')).toEqual([]);
    expect(await sessions()).toMatchObject({ sessions: 0, logins: 1 });
  });
});

describe('redfishtool', () => {
  const run = (args: string[], auth: 'Basic' | 'Session' = 'Basic'): { status: number | null; stdout: string; stderr: string } => {
    const cfg = join(dir, 'redfishtool.json');
    writeFileSync(cfg, JSON.stringify({ user: emu.username, password: emu.password }), { mode: 0o600 });
    const rhost = new URL(emu.url).host;
    return spawnSync(REDFISHTOOL, ['-r', rhost, '-c', cfg, '-S', 'Always', '-A', auth, '-T', '10', ...args], { encoding: 'utf8', timeout: 60_000, env: clientEnv() });
  };

  test('Systems get, reset On/ForceOff, setBootOverride (Basic and Session auth): the emulator state changed', async () => {
    const got = run(['Systems', '-I', 'sys-2', 'get']);
    if (got.status !== 0) throw new Error(`redfishtool failed (${got.status}):\n${got.stdout}\n${got.stderr}`);
    expect(JSON.parse(got.stdout)).toMatchObject({ Id: 'sys-2', PowerState: 'Off' });

    expect(run(['Systems', '-I', 'sys-2', 'reset', 'On']).status).toBe(0);
    await until('sys-2 On', async () => (await state('sys-2')).powerState === 'On');
    const boot = run(['Systems', '-I', 'sys-2', 'setBootOverride', 'Continuous', 'Hdd']);
    expect(boot.status, boot.stderr).toBe(0);
    expect((await state('sys-2')).boot).toMatchObject({ target: 'Hdd', enabled: 'Continuous' });
    const before = (await sessions()).logins;
    expect(run(['Systems', '-I', 'sys-2', 'reset', 'ForceOff'], 'Session').status).toBe(0);
    expect(await sessions()).toMatchObject({ sessions: 0, logins: before + 1 });
    await until('sys-2 Off', async () => (await state('sys-2')).powerState === 'Off');
    expect(await clientCommands('sys-2')).toEqual([
      ['reset', { ResetType: 'On', from: 'Off' }, 204],
      ['boot-override', { BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Hdd' }, 200],
      ['reset', { ResetType: 'ForceOff', from: 'On' }, 204],
    ]);
  });

  test('a reset type the system does not list is refused by redfishtool from the AllowableValues; nothing reached the system', async () => {
    const r = run(['Systems', '-I', 'sys-4', 'reset', 'GracefulShutdown']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/not supported by the remote service \(via @Redfish\.AllowableValues\)/);
    expect(await clientCommands('sys-4')).toEqual([]);
  });

  test('a wrong password: redfishtool fails and the emulator changed nothing', async () => {
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ user: emu.username, password: 'wrong' }), { mode: 0o600 });
    const r = spawnSync(REDFISHTOOL, ['-r', new URL(emu.url).host, '-c', cfg, '-S', 'Always', 'Systems', '-I', 'sys-3', 'reset', 'On'], { encoding: 'utf8', timeout: 60_000, env: clientEnv() });
    expect(r.status).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/401|Unauthorized/i);
    expect((await state('sys-3')).powerState).toBe('Off');
    expect(await clientCommands('sys-3')).toEqual([]);
  });
});
