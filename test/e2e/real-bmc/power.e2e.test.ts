/**
 * Every power path of metald, end to end on REAL drivers: metald (dist/agent/main.js, a child process) on a config
 * naming ipmi_sim BMCs (ipmi driver, ipmitool) and Redfish emulator systems (redfish driver, HTTPS). Each change is
 * asserted on the PEER (ipmi_sim's chassis log and power, the emulator's own command log and PowerState) and on
 * metald (instance state, its seed-001 action and step events, the node's power).
 *
 * Nodes: 1 ipmi on + adopted, 2 redfish On + adopted, 3 ipmi off + adopted, 4 redfish Off + adopted, 5 ipmi free,
 * 6 redfish free, 7 redfish On + adopted whose resets answer 202 with a TaskService task (followed to completion).
 */
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_TOKEN, MEMBER_TOKEN, PROJECT, nodeId } from '../../helpers/harness.js';
import { adoptedId, emulatorCommands, finishedAction, IPMI_PASSWORD, metalctl, putPower, REDFISH_PASSWORD, startLab, status, type Lab } from './lab.js';

let lab: Lab | undefined;
let daemon: Daemon | undefined;

beforeAll(async () => {
  lab = await startLab({
    ipmi: ['on', 'off', 'on'],
    redfish: [
      { id: 'sys-1', power: 'On' },
      { id: 'sys-2', power: 'Off' },
      { id: 'sys-3', power: 'On' },
      { id: 'sys-4', power: 'On', profile: { tasks: true } },
    ],
    nodes: [
      { kind: 'ipmi', sim: 0, adopt: 'vm-ipmi' },
      { kind: 'redfish', system: 'sys-1', adopt: 'vm-redfish' },
      { kind: 'ipmi', sim: 1, adopt: 'vm-ipmi-off' },
      { kind: 'redfish', system: 'sys-2', adopt: 'vm-redfish-off' },
      { kind: 'ipmi', sim: 2 },
      { kind: 'redfish', system: 'sys-3' },
      { kind: 'redfish', system: 'sys-4', adopt: 'vm-redfish-tasks' },
    ],
  });
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await lab?.stop();
});

/** What the peer of a node saw: ipmi_sim's chassis log, or the emulator's client commands. */
async function peerLog(node: 'ipmi' | 'redfish', which: number | string): Promise<string[]> {
  return node === 'ipmi' ? lab!.sims[which as number]!.log() : emulatorCommands(lab!.emu, which as string);
}
async function peerPower(node: 'ipmi' | 'redfish', which: number | string): Promise<string> {
  return node === 'ipmi' ? lab!.sims[which as number]!.power() : (await lab!.emu.system(which as string)).powerState;
}

interface Change {
  target: string;
  state: 'running' | 'stopped';
  action: string;
  events: string[];
  ipmi: string[];
  redfish: string[];
}

// Seed 004's targets (and an alias), from running: each with the instance state, the action and its step events, and
// what each peer must have been sent (a reboot is a verified off, then a verified on: never the BMC's own reset).
const CHANGES: Change[] = [
  { target: 'power off', state: 'stopped', action: 'stop', events: ['power_off'], ipmi: ['power 0'], redfish: ['reset ForceOff 204'] },
  { target: 'power on', state: 'running', action: 'start', events: ['power_on'], ipmi: ['power 1'], redfish: ['reset On 204'] },
  { target: 'rebooting', state: 'running', action: 'reboot', events: ['power_off', 'power_on'], ipmi: ['power 0', 'power 1'], redfish: ['reset ForceOff 204', 'reset On 204'] },
  { target: 'soft power off', state: 'stopped', action: 'stop', events: ['soft_power_off'], ipmi: ['shutdown 1'], redfish: ['reset GracefulShutdown 204'] },
  { target: 'on', state: 'running', action: 'start', events: ['power_on'], ipmi: ['power 1'], redfish: ['reset On 204'] },
  { target: 'soft rebooting', state: 'running', action: 'reboot', events: ['soft_power_off', 'power_on'], ipmi: ['shutdown 1', 'power 1'], redfish: ['reset GracefulShutdown 204', 'reset On 204'] },
];

describe('PUT /v1/instances/{id}/states/power on real BMCs', () => {
  for (const [kind, node, peer, label] of [['ipmi', 1, 0, 'ipmi'], ['redfish', 2, 'sys-1', 'redfish'], ['redfish', 7, 'sys-4', 'redfish with tasks']] as const) {
    it(`${label}: power off, power on, rebooting, soft power off, on, soft rebooting: each reaches the BMC, verified`, async () => {
      const d = daemon!;
      const id = adoptedId(node);
      expect((await status(d, id)).state).toBe('running');
      const sent: string[] = [];
      for (const c of CHANGES) {
        const rid = await putPower(d, id, c.target);
        const a = await finishedAction(d, id, rid);
        const s = await status(d, id);
        const why = `${c.target}: ${JSON.stringify({ a, s, peer: await peerLog(kind, peer) })}`;
        expect(a.message, why).toBeNull();
        expect(a.action, why).toBe(c.action);
        expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(c.events.map((e) => `${e} Success`));
        expect(s, why).toEqual({ state: c.state, operation_state: null, error: null });
        // With tasks the emulator answers a reset 202 (and a task metald follows), else 204.
        sent.push(...c[kind].map((x) => (peer === 'sys-4' ? x.replace(/ 204$/, ' 202') : x)));
        expect(await peerLog(kind, peer), why).toEqual(sent);
        expect(await peerPower(kind, peer), why).toBe(c.state === 'running' ? (kind === 'ipmi' ? 'on' : 'On') : kind === 'ipmi' ? 'off' : 'Off');
        const states = await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN);
        expect(states.body, why).toEqual({ power_state: c.state === 'running' ? 'power on' : 'power off', target_power_state: null });
      }
      for (const pw of [IPMI_PASSWORD, REDFISH_PASSWORD]) expect(d.stdout() + d.stderr()).not.toContain(pw);
    });
  }
});

describe('adoption reads power through the real drivers', () => {
  it('a node adopted at start whose BMC is off comes up stopped, read from the BMC, and nothing was changed', async () => {
    const d = daemon!;
    for (const [node, kind] of [[3, 'ipmi'], [4, 'redfish']] as const) {
      const id = adoptedId(node);
      expect(await status(d, id), kind).toEqual({ state: 'stopped', operation_state: null, error: null });
      const states = await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN);
      expect(states.body, kind).toEqual({ power_state: 'power off', target_power_state: null });
      const list = await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions`, MEMBER_TOKEN);
      const actions = (list.body as { instanceActions: { action: string; request_id: string }[] }).instanceActions;
      expect(actions.map((a) => a.action), kind).toEqual(['adopt']);
      const adopt = await finishedAction(d, id, actions[0]!.request_id);
      expect(adopt.events.map((e) => `${e.event} ${e.result}`), kind).toEqual(['read_power Success']);
    }
    // The peers: ipmi_sim was read (its chassis_control counts every `get power`) and carried out no `set` (its
    // chassis log has every one), the emulator was read and sent nothing.
    expect(await lab!.sims[1]!.reads()).toBeGreaterThan(0);
    expect(await lab!.sims[1]!.log()).toEqual([]);
    expect(await lab!.sims[1]!.power()).toBe('off');
    const sys2 = await lab!.emu.system('sys-2');
    expect(sys2.reads).toBeGreaterThan(0);
    expect(sys2.commands.filter((c) => c.by === 'client')).toEqual([]);
    expect(sys2.powerState).toBe('Off');
  });
});

describe('the node power API on real BMCs', () => {
  for (const [kind, node, peer] of [['ipmi', 5, 2], ['redfish', 6, 'sys-3']] as const) {
    it(`${kind}: PUT /v1/nodes/{id}/states/power off, on, rebooting, soft rebooting reach the free node's BMC, verified`, async () => {
      const d = daemon!;
      const steps = [
        { target: 'power off', want: 'power off', ipmi: ['power 0'], redfish: ['reset ForceOff 204'] },
        { target: 'power on', want: 'power on', ipmi: ['power 1'], redfish: ['reset On 204'] },
        { target: 'rebooting', want: 'power on', ipmi: ['power 0', 'power 1'], redfish: ['reset ForceOff 204', 'reset On 204'] },
        { target: 'soft rebooting', want: 'power on', ipmi: ['shutdown 1', 'power 1'], redfish: ['reset GracefulShutdown 204', 'reset On 204'] },
      ];
      const sent: string[] = [];
      for (const st of steps) {
        const r = await d.call('PUT', `/v1/nodes/${nodeId(node)}/states/power`, ADMIN_TOKEN, { target: st.target });
        expect(r.status, r.text).toBe(202);
        await waitFor(async () => {
          const n = (await d.call('GET', `/v1/nodes/${nodeId(node)}`, ADMIN_TOKEN)).body as { power_state: string; target_power_state: string | null };
          return n.power_state === st.want && n.target_power_state === null;
        }, 15_000, `node ${node} ${st.target}`);
        sent.push(...st[kind]);
        expect(await peerLog(kind, peer), st.target).toEqual(sent);
        expect(await peerPower(kind, peer), st.target).toBe(kind === 'ipmi' ? (st.want === 'power on' ? 'on' : 'off') : st.want === 'power on' ? 'On' : 'Off');
        expect((await d.call('GET', `/v1/nodes/${nodeId(node)}`, ADMIN_TOKEN)).body, st.target).toMatchObject({ last_error: null });
      }
    });
  }
});

describe('metalctl power on real BMCs', () => {
  it('metalctl instance power ID on --wait powers the adopted stopped instances through ipmitool and Redfish', async () => {
    const cfgDir = dirname(lab!.configPath);
    for (const [node, kind, peer] of [[3, 'ipmi', 1], [4, 'redfish', 'sys-2']] as const) {
      const id = adoptedId(node);
      const r = await metalctl(daemon!, ['instance', 'power', id, 'on', '--wait'], join(cfgDir, 'member.token'));
      const why = `${kind}: ${JSON.stringify(r)}`;
      expect(r.code, why).toBe(0);
      expect(await status(daemon!, id), why).toEqual({ state: 'running', operation_state: null, error: null });
      expect(await peerLog(kind, peer), why).toEqual(kind === 'ipmi' ? ['power 1'] : ['reset On 204']);
      expect(await peerPower(kind, peer), why).toBe(kind === 'ipmi' ? 'on' : 'On');
      // Again: already there (a fresh read says on), metalctl says so and exits 0; nothing more reached the BMC.
      const again = await metalctl(daemon!, ['instance', 'power', id, 'on', '--wait'], join(cfgDir, 'member.token'));
      expect(again.code, JSON.stringify(again)).toBe(0);
      expect(again.stderr).toContain('already in the target state');
      expect(await peerLog(kind, peer), why).toEqual(kind === 'ipmi' ? ['power 1'] : ['reset On 204']);
    }
  });

  it('metalctl node power ID soft-off --wait sends a soft off to the BMC of the node', async () => {
    const cfgDir = dirname(lab!.configPath);
    const r = await metalctl(daemon!, ['node', 'power', nodeId(6), 'soft-off', '--wait'], join(cfgDir, 'admin.token'));
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(await peerLog('redfish', 'sys-3')).toEqual(['reset ForceOff 204', 'reset On 204', 'reset ForceOff 204', 'reset On 204', 'reset GracefulShutdown 204', 'reset On 204', 'reset GracefulShutdown 204']);
    expect(await peerPower('redfish', 'sys-3')).toBe('Off');
  });
});
