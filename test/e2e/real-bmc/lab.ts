/**
 * A lab of REAL BMC peers for the end-to-end tests of this folder: ipmi_sim BMCs (test/emulators/ipmi-sim.ts) and one
 * Redfish BMC emulator process (test/emulators/redfish/, over HTTPS with its test CA), plus the metald config naming
 * them (test/helpers/harness.ts writeConfig, its nodes replaced) and the reads the tests assert with: the instance as
 * metald shows it, its seed-001 action, and each peer's own record (ipmi_sim's chassis log, the emulator's commands).
 *
 * Every process started here is stopped by `stop()`, also when a test fails (call it from afterAll).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireIpmiPeers, startIpmiSims, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { emulatorControl, launchEmulator, type EmulatorControl, type EmulatorProcess } from '../../emulators/redfish/launch.js';
import type { CommandRecord } from '../../emulators/redfish/model.js';
import { METALCTL, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_PROJECT, ADMIN_TOKEN, MEMBER_TOKEN, PROJECT, nodeId, writeConfig } from '../../helpers/harness.js';

export const IPMI_PASSWORD = 'Kp4-e2e-real-pw';
export const REDFISH_PASSWORD = 'Rf-e2e-real-pw';

/** One node of the lab: which peer it is, and an instance to adopt when `adopt` is set. */
export type LabNode =
  | { kind: 'ipmi'; sim: number; adopt?: string; bootMode?: 'uefi' | 'legacy' }
  | { kind: 'redfish'; system: string; adopt?: string; bootMode?: 'uefi' | 'legacy' };

export interface LabOptions {
  /** Initial power of each ipmi_sim BMC, in order. */
  ipmi: ('on' | 'off')[];
  /** Systems of the emulator with their initial power, and per-system settings (`--system ID=JSON`). */
  redfish: { id: string; power: 'On' | 'Off'; profile?: Record<string, unknown> }[];
  nodes: LabNode[];
  /** The config's liveness section (YAML flow mapping); default the harness's fake engine. */
  liveness?: string;
  /** The config's power_sync section (YAML flow mapping); default the harness's (1 h: no sweep during a test). */
  powerSync?: string;
  /** Top-level YAML appended to the config (e.g. a `boot` section). */
  extra?: string;
  /** Rewrites the finished YAML (after the nodes are in). */
  edit?: (yaml: string) => string;
}

export interface Lab {
  sims: IpmiSim[];
  emulator: EmulatorProcess;
  emu: EmulatorControl;
  dir: string;
  configPath: string;
  stop(): Promise<void>;
}

/** The instance id adopted on node `i` (1-based). */
export function adoptedId(i: number): string {
  return `cbce6087-6156-453c-a512-${String(i).padStart(12, '0')}`;
}

/**
 * Starts the peers and writes the config. Short waiting policies: 5 ms..20 ms read-backs, 5 s power deadline, the
 * emulator's transitions 50 ms, ipmitool `-R 1 -N 1`.
 * @throws Error saying which peer could not start (ipmi_sim/ipmitool missing, no dist/ build): the test fails with it.
 */
export async function startLab(o: LabOptions): Promise<Lab> {
  requireIpmiPeers();
  const dir = mkdtempSync(join(tmpdir(), 'metald-real-bmc-'));
  const sims: IpmiSim[] = [];
  let emulator: EmulatorProcess | undefined;
  const stop = async () => {
    await emulator?.stop();
    await Promise.all(sims.map((s) => s.stop()));
    await stopAllIpmiSims();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (o.ipmi.length > 0) sims.push(...(await startIpmiSims(o.ipmi.length, { password: IPMI_PASSWORD, power: 'off' })));
    // Setup, not a command: the server behind the BMC is on (the chassis log stays empty).
    for (const [i, p] of o.ipmi.entries()) if (p === 'on') writeFileSync(join(sims[i]!.dir, 'state', 'power'), '1\n');

    const emuPw = join(dir, 'emu.pw');
    writeFileSync(emuPw, `${REDFISH_PASSWORD}\n`, { mode: 0o600 });
    // At least one system (the emulator refuses none): a lab of IPMI nodes only leaves it unused.
    const args = ['--systems', String(Math.max(1, o.redfish.length)), '--port', '0', '--tls-dir', join(dir, 'tls'), '--password-file', emuPw, '--power-delay-ms', '50'];
    for (const [i, s] of o.redfish.entries()) {
      if (s.id !== `sys-${i + 1}`) throw new Error(`redfish system ${i + 1} must be sys-${i + 1}`);
      if (s.profile) args.push('--system', `${s.id}=${JSON.stringify(s.profile)}`);
    }
    emulator = await launchEmulator(args);
    const ca = readFileSync(emulator.caFile!, 'utf8');
    const emu = emulatorControl(emulator.url, ca);
    for (const s of o.redfish) await emu.configure(s.id, { powerState: s.power });

    const pw = join(dir, 'ipmi.pw');
    writeFileSync(pw, `${IPMI_PASSWORD}\n`, { mode: 0o600 });
    const nodes = o.nodes.map((n, k) => {
      const i = k + 1;
      const bmc =
        n.kind === 'ipmi'
          ? `{driver: ipmi, address: ${sims[n.sim]!.host}, port: ${sims[n.sim]!.port}, username: ${sims[n.sim]!.username}, password_file: ${pw}, retries: 1, retry_timeout_s: 1}`
          : `{driver: redfish, address: "${emulator!.url}", system_id: /redfish/v1/Systems/${n.system}, username: ${emulator!.username}, password_file: ${emuPw}, ca_file: ${emulator!.caFile}}`;
      const adopt = n.adopt
        ? `
    adopt:
      instance_id: ${adoptedId(i)}
      project_id: ${PROJECT}
      user_id: f5a98f28f61e4fd19622f9016c481d48
      name: ${n.adopt}
      image_uuid: 1fd5ab9b-1769-4dd5-b0bd-e075614cc866
      addresses: [{addr: 127.0.2.${i + 1}, mac: "fa:16:3e:1c:d1:${String(i).padStart(2, '0')}", version: 4, type: fixed, network: private}]`
        : '';
      return `  - id: ${nodeId(i)}
    name: node-${String(i).padStart(2, '0')}
    type: small
    boot_mode: ${n.bootMode ?? 'legacy'}
    macs: [{mac: "fa:16:3e:00:01:${String(i).padStart(2, '0')}", pxe: true}]
    bmc: ${bmc}${adopt}`;
    });
    const { dir: cfgDir, configPath } = writeConfig({
      nodes: 0,
      power: '5s',
      ...(o.liveness ? { liveness: o.liveness } : {}),
      ...(o.extra ? { extra: o.extra } : {}),
      editConfig: (yaml) => {
        const edited = yaml.replace(/\nnodes:\n[\s\S]*$/, `\nnodes:\n${nodes.join('\n')}\n`);
        const synced = o.powerSync ? edited.replace(/\npower_sync: .*\n/, `\npower_sync: ${o.powerSync}\n`) : edited;
        return o.edit ? o.edit(synced) : synced;
      },
    });
    const lab: Lab = {
      sims,
      emulator,
      emu,
      dir,
      configPath,
      async stop() {
        await stop();
        rmSync(cfgDir, { recursive: true, force: true });
      },
    };
    return lab;
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface Status {
  state: string;
  operation_state: string | null;
  error: { error_code: string; error_msg: string; error_type: string } | null;
}

/** Seed 003 status as the owning member reads it, or as an admin (whose `error_msg` is the raw one, the BMC's words). */
export async function status(d: Daemon, id: string, as: 'member' | 'admin' = 'member'): Promise<Status> {
  const r = as === 'admin'
    ? await d.call('GET', `/v1/${ADMIN_PROJECT}/instances/${id}/status`, ADMIN_TOKEN)
    : await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN);
  if (r.status !== 200) throw new Error(`status of ${id}: ${r.status} ${r.text}`);
  return r.body as Status;
}

export interface ActionRecord {
  action: string;
  request_id: string;
  message: string | null;
  events: { event: string; result: string | null; finish_time: string | null; traceback: string | null }[];
}

/** The seed-001 action of `requestId` once metald marks it finished (X-Metald-Action-Finished). */
export async function finishedAction(d: Daemon, id: string, requestId: string, timeoutMs = 15_000): Promise<ActionRecord> {
  let found: ActionRecord | undefined;
  await waitFor(async () => {
    const r = await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions/${requestId}`, MEMBER_TOKEN);
    if (r.status !== 200 || r.headers.get('x-metald-action-finished') === null) return false;
    found = (r.body as { instanceAction: ActionRecord }).instanceAction;
    return true;
  }, timeoutMs, `action ${requestId} of ${id} to finish`);
  return found!;
}

/** PUT /v1/instances/{id}/states/power, expecting 202; returns the action's request id. */
export async function putPower(d: Daemon, id: string, target: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target, ...extra });
  if (r.status !== 202) throw new Error(`PUT power ${target} of ${id}: ${r.status} ${r.text}`);
  return r.headers.get('x-compute-request-id')!;
}

/** The client commands the emulator received for a system (resets and boot overrides), in order, as `Kind:Value`. */
export async function emulatorCommands(emu: EmulatorControl, system: string): Promise<string[]> {
  return (await emu.system(system)).commands.filter((c) => c.by === 'client').map(describeCommand);
}

function describeCommand(c: CommandRecord): string {
  if (c.kind === 'reset') return `reset ${String(c.args['ResetType'])} ${c.status}`;
  if (c.kind === 'boot-override') {
    // Accepted overrides are logged as the Boot object applied, refused ones as the request body.
    const b = (c.args['Boot'] ?? c.args) as Record<string, unknown>;
    // A clear sends the Enabled field alone: `boot Disabled 200`.
    const fields = [b['BootSourceOverrideTarget'], b['BootSourceOverrideEnabled']].filter((v) => v !== undefined).map(String);
    return `boot ${fields.join(' ')} ${c.status}`;
  }
  return `${c.kind} ${c.status}`;
}

/** Runs the built metalctl as a user would: a child process, the token in a file named by the environment. */
export function metalctl(d: Daemon, args: string[], tokenFile: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [METALCTL, '--url', d.url, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, METALCTL_TOKEN_FILE: tokenFile, METALCTL_PROJECT: PROJECT },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', rej);
    child.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}
