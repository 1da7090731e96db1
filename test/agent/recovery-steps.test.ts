/**
 * Issue 6, "a test kills the daemon in the middle of each step of a plan that waits and sees the plan resume at that
 * step": the real daemon (a child process) is SIGKILLed while a reinstall (a plan that waits on the installer and on
 * the installed OS) is in each of its steps, then started again on the same state_dir. The simulated BMC keeps its
 * state, the installer's job included, in a file (fake option `state_file`), so it outlives the daemon as a rack
 * does. What is checked is what the records and the BMC show after the restart:
 * - the reinstall succeeds, and the interrupted step's event is the same event, now closed Success;
 * - no step before it ran again, and every later step ran once;
 * - the BMC received no power command twice (an interrupted one that had been sent is verified, not re-sent);
 * - an interrupted deploy finished the installer job that was running (same job, same start), not a second one.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FakeCommand, FakeServerStateFile } from '../../drivers/fake/lab.js';
import { ADMIN_PROJECT, ADMIN_TOKEN, ADOPTED_ID, MEMBER_TOKEN, PROJECT, writeConfig } from '../helpers/harness.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/daemon.js';

let daemon: Daemon | null = null;
const dirs: string[] = [];
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Event {
  event: string;
  start_time: string;
  finish_time: string | null;
  result: string | null;
}

const bmcState = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as FakeServerStateFile;
const powerSets = (log: readonly FakeCommand[]) => log.filter((c) => c.op === 'power.set').map((c) => c.arg);

async function action(d: Daemon, requestId: string): Promise<{ events: Event[]; finished: boolean; message: string | null }> {
  const r = await d.call('GET', `/v2/${PROJECT}/servers/${ADOPTED_ID}/os-instance-actions/${requestId}`, MEMBER_TOKEN);
  expect(r.status).toBe(200);
  const a = (r.body as { instanceAction: { events: Event[]; message: string | null } }).instanceAction;
  return { events: a.events, finished: r.headers.get('x-metald-action-finished') !== null, message: a.message };
}

/**
 * The reinstall of a running instance (pxe image): its action events in order; `power` is the command each power step
 * sends. `instant`: a step with nothing to wait for on the fake lab (its deployer's prepare is a no-op, opened and
 * closed in one commit), so there is no middle to kill it in.
 */
const EVENTS: { event: string; power?: 'on' | 'off'; instant?: true }[] = [
  { event: 'power_off', power: 'off' },
  { event: 'prepare_boot', instant: true },
  { event: 'set_boot_device' },
  { event: 'power_on', power: 'on' },
  { event: 'deploy' },
  { event: 'set_boot_device' },
  { event: 'power_off', power: 'off' },
  { event: 'power_on', power: 'on' },
  { event: 'confirm_alive' },
];

describe('SIGKILL in the middle of each step of a reinstall, then restart: the plan resumes at that step', () => {
  EVENTS.forEach((target, k) => {
    if (target.instant) return;
    it(`event ${k} (${target.event})`, async () => {
      const bmcDir = mkdtempSync(join(tmpdir(), 'metald-bmc-'));
      dirs.push(bmcDir);
      const stateFile = join(bmcDir, 'node.json');
      // Every step lasts long enough to be caught: a power change shows after 700 ms, the BMC takes one command
      // every 300 ms (so a boot-device step waits its turn), the installer takes 1.2 s, the OS boots in 700 ms.
      const cfg = writeConfig({
        nodes: 0,
        adopt: true,
        adoptFake: `{power_delay: 700ms, install: 1200ms, os_boot: 700ms, initial_power: "on", os_installed: debian-12, state_file: "${stateFile}"}`,
        deploy: '30s',
        power: '10s',
        editConfig: (y) => y.replace('bmc: {min_gap: 0ms}', 'bmc: {min_gap: 300ms}'),
      });
      dirs.push(cfg.dir);
      daemon = await startDaemon(cfg.configPath);
      await waitFor(async () => (await daemon!.call('GET', `/v1/${PROJECT}/instances/${ADOPTED_ID}/status`, MEMBER_TOKEN)).status === 200, 15_000, 'the adopted instance');

      const setsAtStart = powerSets(bmcState(stateFile).log).length;
      const r = await daemon.call('POST', `/v1/${PROJECT}/instances/${ADOPTED_ID}/actions`, MEMBER_TOKEN, { reinstall: {} });
      expect(r.status).toBe(202);
      const requestId = (r.body as { request_id: string }).request_id;
      // The power commands the steps up to the target send; a power step is caught once its own command was sent.
      const sentBy = EVENTS.slice(0, k + 1).filter((e) => e.power).length;
      let before: Event[] = [];
      await waitFor(async () => {
        before = (await action(daemon!, requestId)).events;
        const open = before.length === k + 1 && before[k]!.finish_time === null;
        return open && (!target.power || powerSets(bmcState(stateFile).log).length - setsAtStart === sentBy);
      }, 30_000, `event ${k} (${target.event}) open`);
      const jobBefore = bmcState(stateFile).job;
      await daemon.kill('SIGKILL');
      const atKill = bmcState(stateFile);

      daemon = await startDaemon(cfg.configPath);
      let after = await action(daemon, requestId);
      await waitFor(async () => (after = await action(daemon!, requestId)).finished, 60_000, 'the reinstall to finish');
      if (after.message !== null) {
        const why = await daemon.call("GET", `/v2/${ADMIN_PROJECT}/servers/${ADOPTED_ID}/os-instance-actions/${requestId}`, ADMIN_TOKEN);
        expect.fail(`the reinstall failed: ${JSON.stringify(why.body)}`);
      }
      const status = await daemon.call('GET', `/v1/${PROJECT}/instances/${ADOPTED_ID}/status`, MEMBER_TOKEN);
      expect(status.body).toMatchObject({ state: 'running', operation_state: 'reinstall-succeed', error: null });

      // The records: the steps before are as they were, the interrupted one the same event (its start kept).
      expect(after.events.slice(0, k)).toEqual(before.slice(0, k));
      expect(after.events[k]).toMatchObject({ event: target.event, start_time: before[k]!.start_time, result: 'Success' });
      expect(after.events.map((e) => e.event)).toEqual(EVENTS.map((e) => e.event));
      expect(after.events.every((e) => e.result === 'Success' && e.finish_time !== null)).toBe(true);

      // What the BMC saw: after the restart only the later steps' power commands, each once; none sent twice.
      const later = EVENTS.slice(k + 1).flatMap((e) => (e.power ? [e.power] : []));
      expect(powerSets(bmcState(stateFile).log.slice(atKill.log.length))).toEqual(later);
      expect(powerSets(bmcState(stateFile).log).slice(setsAtStart)).toEqual(EVENTS.flatMap((e) => (e.power ? [e.power] : [])));
      if (target.event === 'deploy') {
        expect(jobBefore?.outcome).toBeNull();
        expect(bmcState(stateFile).job).toMatchObject({ id: jobBefore!.id, startedAt: jobBefore!.startedAt, outcome: { ok: true } });
      }
    }, 120_000);
  });
});
