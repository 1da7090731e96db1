/**
 * Typed journal events: every entry a full run of operations writes (enrolment, adoption, create, every power
 * request, every OS operation and a retry, drift, an unreachable BMC, node power, maintenance, a liveness change,
 * a node enrolled and removed, delete) matches its kind's data schema (agent/journal-events.ts), and the run writes every kind at least once.
 */
import { Value } from '@sinclair/typebox/value';
import { afterEach, describe, expect, it } from 'vitest';
import { EVENT_DATA } from '../../../agent/journal-events.js';
import type { JournalKind } from '../../../agent/model.js';
import type { OsOperationName, PowerTarget } from '../../../agent/service.js';
import { runningInstance, sleep } from '../../helpers/engine.js';
import { ctx, IMAGE2, NETWORK, nodeId, SSH_KEY, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('journal events', () => {
  it('every entry of a full run matches its kind’s data schema, and every kind is written', async () => {
    h = await startHarness({ adopt: true, nodes: 3 });
    const e = h.agent.engine;
    const lab = h.agent.lab!;

    // Create, then every power request.
    const id = await runningInstance(h, 'events', 1);
    for (const target of ['off', 'on', 'soft-off', 'on', 'reboot', 'soft-reboot'] as PowerTarget[]) {
      await e.setInstancePower(ctx(), id, { target });
      await e.idle();
    }
    // Every OS operation; a failed install, then its retry.
    const ops: [OsOperationName, Record<string, unknown>][] = [
      ['reinstall', { hostname: 'events-host', ssh_keys: [SSH_KEY] }],
      ['switch-install', { image_uuid: IMAGE2 }],
      ['modify-ip', { networks: [{ uuid: NETWORK }] }],
      ['change-password', { password_hash: '$6$salt$hash' }],
    ];
    for (const [op, params] of ops) {
      await e.runOperation(ctx(), id, op, params);
      await e.idle();
    }
    // change-password leaves the server off; power it on before the failing reinstall.
    await e.setInstancePower(ctx(), id, { target: 'on' });
    await e.idle();
    lab.setFaults(nodeId(1), { fail_install: 1 });
    await e.runOperation(ctx(), id, 'reinstall', {});
    await e.idle();
    expect(e.getInstance(ctx(), id).state).toBe('error');
    await e.runOperation(ctx(), id, 'retry', {});
    await e.idle();
    await e.runOperation(ctx(), id, 'uninstall', {});
    await e.idle();

    // Drift on a second instance, then an unreachable BMC (power unknown, errors), then healed.
    const other = await runningInstance(h, 'drift', 2);
    await lab.get(nodeId(2)).setPower('power-button', 'off');
    await sleep(20);
    await e.powerSyncOnce();
    expect(e.getInstance(ctx(), other).state).toBe('stopped');
    lab.setFaults(nodeId(2), { unreachable: true });
    await e.powerSyncOnce();
    await e.powerSyncOnce();
    lab.setFaults(nodeId(2), {});
    await e.powerSyncOnce();
    // A liveness verdict changing.
    e.onAliveChanges([{ instanceId: other, alive: true }]);

    // Node-level power on a free node, and maintenance on and off.
    const free = nodeId(3);
    const res = await e.setNodePower(ctx('admin'), free, { target: lab.snapshot(free).power === 'on' ? 'off' : 'on' });
    expect(res.accepted).toBe(true);
    await e.idle();
    await e.setMaintenance(ctx('admin'), free, true, 'disk swap');
    await e.setMaintenance(ctx('admin'), free, false);
    // A node enrolled and removed (the upstream node.enrol and node.remove).
    const extra = '1b8c5f0e-0000-4000-8000-0000000000e1';
    e.fleet.enrol({ id: extra, name: 'node-e1', type: 'small', macs: [{ mac: 'fa:16:3e:00:00:e1', pxe: true }], bmc: { driver: 'fake', address: 'fake://node-e1' } });
    e.fleet.remove(extra);

    // Delete (releases the node and the addresses).
    await e.deleteInstance(ctx(), id);
    await e.idle();
    expect(e.getInstance(ctx(), id).state).toBe('terminated');

    const entries = h.agent.store.readJournal(1, 100_000);
    const invalid = entries.flatMap((entry) => {
      const schema = EVENT_DATA[entry.kind];
      if (Value.Check(schema, entry.data)) return [];
      const why = [...Value.Errors(schema, entry.data)].map((x) => `${x.path || '/'} ${x.message}`).slice(0, 3);
      return [`#${entry.seq} ${entry.kind} ${JSON.stringify(entry.data)}: ${why.join('; ')}`];
    });
    expect(invalid).toEqual([]);
    const written = new Set(entries.map((x) => x.kind));
    const kinds = Object.keys(EVENT_DATA) as JournalKind[];
    expect(kinds.filter((k) => !written.has(k))).toEqual([]);
  });
});
