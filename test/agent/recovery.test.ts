/**
 * Crash recovery: the real daemon (a child process) is SIGKILLed in the middle of each operation and started again
 * on the same state_dir. Every operation in flight resumes from the step its plan had reached (issue 6): nothing is
 * left -processing or locked, every action and step is closed, the state is on the diagram, and the instance is open
 * to the next operation. A resumed power step whose command had been sent verifies it and never sends it again; one
 * that cannot be verified fails cleanly, naming the step.
 *
 * The fake BMC keeps its state in a file (fake option `state_file`), the installer's job included, so it outlives the
 * daemon as a real BMC does, and the test asserts what the BMC saw across the kill: no power command sent twice (the
 * interrupted one is not sent again; a reset is never sent), and the server ends in the power the operation leaves.
 * test/agent/recovery-steps.test.ts kills a reinstall in each of its steps.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeCommand, FakeServerStateFile } from '../../drivers/fake/lab.js';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, IMAGE, IMAGE2, MEMBER_TOKEN, NETWORK, PROJECT, nodeId, writeConfig } from '../helpers/harness.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/daemon.js';

const FAKE = '{power_delay: 150ms, install: 1500ms}';
let daemon: Daemon | null = null;
let dir: string | null = null;
let bmcDir: string | null = null;

afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = null;
  for (const d of [dir, bmcDir]) if (d) rmSync(d, { recursive: true, force: true });
  dir = null;
  bmcDir = null;
});

/** What the fake BMC of node 1 holds now (its state file). */
function bmcState(file: string): FakeServerStateFile {
  return JSON.parse(readFileSync(file, 'utf8')) as FakeServerStateFile;
}
/** Power once the change under way (if any) is done. */
const finalPower = (st: FakeServerStateFile) => st.pending?.to ?? st.power;
const powerSets = (log: readonly FakeCommand[], ...args: string[]) => log.filter((c) => c.op === 'power.set' && args.includes(c.arg ?? ''));

interface Status {
  state: string;
  operation_state: string | null;
  error: { error_type: string; error_msg: string } | null;
}

async function status(d: Daemon, id: string): Promise<Status> {
  const r = await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN);
  expect(r.status).toBe(200);
  return r.body as Status;
}

async function target(d: Daemon, id: string): Promise<string | null> {
  const r = await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN);
  return (r.body as { target_power_state: string | null }).target_power_state;
}

async function create(d: Daemon): Promise<string> {
  const r = await d.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'crash', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
  expect(r.status).toBe(201);
  return (r.body as { uuid: string }).uuid;
}

/** Every action of the instance is finished (seed 001 record, X-Metald-Action-Finished header). */
async function actionsFinished(d: Daemon, id: string): Promise<boolean> {
  const list = await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions`, MEMBER_TOKEN);
  if (list.status !== 200) return false;
  for (const a of (list.body as { instanceActions: { request_id: string }[] }).instanceActions) {
    const one = await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions/${a.request_id}`, MEMBER_TOKEN);
    if (one.headers.get('x-metald-action-finished') === null) return false;
  }
  return true;
}

async function settle(d: Daemon, id: string): Promise<Status> {
  let s: Status = await status(d, id);
  await waitFor(async () => {
    // Every action over first (an operation without operation_state, change-password, shows nothing else); then
    // the target: once it reads null the outcome is committed, so the status read after it is the settled one.
    if (!(await actionsFinished(d, id))) return false;
    if ((await target(d, id)) !== null) return false;
    s = await status(d, id);
    return !(s.operation_state ?? '').endsWith('-processing') && s.state !== 'pending' && s.state !== 'shutting-down';
  }, 30_000, `instance ${id} to settle`);
  return s;
}

async function bring(d: Daemon, state: 'running' | 'stopped' | 'error'): Promise<string> {
  if (state === 'error') {
    const f = await d.call('PUT', `/v1/nodes/${nodeId(1)}/fake-faults`, ADMIN_TOKEN, { fail_install: 1 });
    expect(f.status).toBe(204);
  }
  const id = await create(d);
  let s = await settle(d, id);
  if (state === 'stopped') {
    expect((await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'power off' })).status).toBe(202);
    s = await settle(d, id);
  }
  expect(s.state).toBe(state);
  return id;
}

type Start = (d: Daemon, id: string) => Promise<void>;
const power = (t: string): Start => async (d, id) => {
  expect((await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: t })).status).toBe(202);
};
const action = (body: unknown): Start => async (d, id) => {
  expect((await d.call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER_TOKEN, body)).status).toBe(202);
};
const del: Start = async (d, id) => {
  expect((await d.call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN)).status).toBe(202);
};

interface Case {
  name: string;
  from: 'pending' | 'running' | 'stopped' | 'error';
  start: Start;
  /** In flight: what to wait for before the kill. */
  inFlight: (d: Daemon, id: string) => Promise<boolean>;
  /** Faults set on the node just before the operation starts. */
  faults?: Record<string, unknown>;
  /** The power command the operation's first step sends (its arg in the BMC's log): sent once across the kill. */
  power?: string;
  /** How it ends after the restart: resumed to success in this state, or failed (cleanly) in this state. */
  ends: { state: 'running' | 'stopped' | 'terminated'; operation_state?: string } | { failedIn: 'running' | 'stopped' };
}

const processing = (op: string) => async (d: Daemon, id: string) => (await status(d, id)).operation_state === `${op}-processing`;
const targeted = async (d: Daemon, id: string) => (await target(d, id)) !== null;
const deleting = async (d: Daemon, id: string) => (await status(d, id)).state === 'shutting-down';

const CASES: Case[] = [
  { name: 'create (install)', from: 'pending', start: async () => undefined, inFlight: processing('install'), ends: { state: 'running', operation_state: 'install-succeed' } },
  { name: 'power off', from: 'running', start: power('power off'), inFlight: targeted, power: 'off', ends: { state: 'stopped' } },
  { name: 'soft power off', from: 'running', start: power('soft power off'), inFlight: targeted, power: 'soft-off', ends: { state: 'stopped' } },
  { name: 'power on', from: 'stopped', start: power('power on'), inFlight: targeted, power: 'on', ends: { state: 'running' } },
  // A reboot is a verified off, then a verified on. The off's answer is lost, so the kill lands while the agent waits
  // for it: the restarted agent verifies the off (applied), takes PowerReboot, and goes on with the on.
  { name: 'reboot', from: 'running', start: power('rebooting'), inFlight: targeted, faults: { lose_reply: 1 }, power: 'off', ends: { state: 'running' } },
  { name: 'soft reboot', from: 'running', start: power('soft rebooting'), inFlight: targeted, faults: { lose_reply: 1 }, power: 'soft-off', ends: { state: 'running' } },
  // The BMC accepts the on and does nothing: the restarted agent cannot verify it and, never re-sending a command
  // that was sent, fails the request naming the step; the instance stays stopped.
  { name: 'power on the BMC ignored', from: 'stopped', start: power('power on'), inFlight: targeted, faults: { ignore_power: 1 }, power: 'on', ends: { failedIn: 'stopped' } },
  { name: 'reinstall', from: 'running', start: action({ reinstall: {} }), inFlight: processing('reinstall'), ends: { state: 'running', operation_state: 'reinstall-succeed' } },
  { name: 'switch-install', from: 'stopped', start: action({ 'switch-install': { image_uuid: IMAGE2 } }), inFlight: processing('switch-install'), ends: { state: 'running', operation_state: 'switch-install-succeed' } },
  { name: 'modify-ip', from: 'stopped', start: action({ 'modify-ip': { networks: [{ uuid: NETWORK }] } }), inFlight: processing('modify-ip'), ends: { state: 'running', operation_state: 'modify-ip-succeed' } },
  { name: 'uninstall', from: 'stopped', start: action({ uninstall: {} }), inFlight: processing('uninstall'), ends: { state: 'stopped', operation_state: 'uninstall-succeed' } },
  { name: 'change-password', from: 'stopped', start: action({ 'change-password': { password_hash: '$6$salt$hash' } }), inFlight: async (d, id) => (await d.call('GET', `/v2/${PROJECT}/servers/${id}`, MEMBER_TOKEN)).text.includes('"updating_password"'), ends: { state: 'stopped' } },
  { name: 'retry', from: 'error', start: action({ retry: {} }), inFlight: processing('install'), ends: { state: 'running', operation_state: 'install-succeed' } },
  { name: 'delete', from: 'stopped', start: del, inFlight: deleting, ends: { state: 'terminated' } },
  { name: 'delete of a pending instance', from: 'pending', start: del, inFlight: deleting, ends: { state: 'terminated' } },
];

describe('SIGKILL in the middle of each operation, then restart', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      // Power changes take 2 s to show, so the kill lands while the change is being verified, and the restarted agent
      // (up in about a second) first reads the old power: it must wait for the change in flight, not judge at once.
      bmcDir = mkdtempSync(join(tmpdir(), 'metald-bmc-'));
      const stateFile = join(bmcDir, 'node-1.json');
      const fake = (c.inFlight === targeted ? '{power_delay: 2s, install: 300ms}' : FAKE).replace(/}$/, `, state_file: "${stateFile}"}`);
      const failing = 'failedIn' in c.ends;
      // The power deadline is well past the fake's 2 s delay: a loaded machine must not turn the set-up into a failure.
      const cfg = writeConfig({ nodes: 1, fake, deploy: '20s', power: '5s' });
      dir = cfg.dir;
      daemon = await startDaemon(cfg.configPath);
      const id = c.from === 'pending' ? await create(daemon) : await bring(daemon, c.from);
      if (c.faults) expect((await daemon.call('PUT', `/v1/nodes/${nodeId(1)}/fake-faults`, ADMIN_TOKEN, c.faults)).status).toBe(204);
      const atStart = bmcState(stateFile).log.length;
      await c.start(daemon, id);
      await waitFor(() => c.inFlight(daemon!, id), 15_000, `${c.name} in flight`);
      // Let it get into a step that talks to the BMC or the installer.
      await new Promise((r) => setTimeout(r, 200));
      await daemon.kill('SIGKILL');
      const atKill = bmcState(stateFile);

      daemon = await startDaemon(cfg.configPath);
      const s = await settle(daemon, id);
      const bmc = bmcState(stateFile);
      const after = bmc.log.slice(atKill.log.length);
      // What the BMC saw across the kill.
      const interrupted = c.power ? powerSets(atKill.log, c.power).at(-1) : undefined;
      if (c.power) {
        expect(interrupted, `${c.power} reached the BMC before the kill`).toBeDefined();
        expect(powerSets(after, c.power), `${c.power} sent again after the restart`).toEqual([]);
      }
      // metald never sends the BMC's own reset (a reboot is off then on), so none can run twice.
      expect(powerSets(bmc.log.slice(atStart), 'reboot', 'soft-reboot'), 'a BMC reset was sent').toEqual([]);
      if (c.power) expect(powerSets(bmc.log.slice(atStart), c.power).length, `${c.power} sent exactly once across the kill`).toBe(1);
      // The server ends in the power the operation leaves (a failed one as it was).
      if (!failing) expect(finalPower(bmc), 'the power the operation leaves').toBe(s.state === 'running' ? 'on' : 'off');
      expect(s.operation_state ?? '').not.toMatch(/-processing$/);
      if ('failedIn' in c.ends) {
        expect(s.state).toBe(c.ends.failedIn);
        expect(s.error).not.toBeNull();
        // (the member's view of the message: the code's text; the step is named)
        expect(s.error!.error_msg).toMatch(/^step 'power_on' failed: interrupted by an agent restart/);
      } else {
        expect(s.state).toBe(c.ends.state);
        expect(s.error).toBeNull();
        if (c.ends.operation_state) expect(s.operation_state).toBe(c.ends.operation_state);
      }
      // Every action and every step is closed.
      const list = await daemon.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions`, MEMBER_TOKEN);
      expect(list.status).toBe(200);
      const actions = (list.body as { instanceActions: { request_id: string }[] }).instanceActions;
      for (const a of actions) {
        const one = await daemon.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions/${a.request_id}`, MEMBER_TOKEN);
        const ev = (one.body as { instanceAction: { events: { finish_time: string | null; result: string | null }[] } }).instanceAction.events;
        for (const e of ev) {
          expect(e.finish_time).not.toBeNull();
          expect(e.result).not.toBeNull();
        }
      }
      // The lock is released: the instance takes the next operation.
      if (s.state !== 'terminated') {
        await del(daemon, id);
        // From running, the delete first powers off (no edge yet): wait for the end, not for the first quiet moment.
        await waitFor(async () => (await status(daemon!, id)).state === 'terminated', 30_000, 'terminated');
      }
    }, 90_000);
  }
});
