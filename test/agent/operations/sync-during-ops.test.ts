/**
 * Power sync during an operation: with a manual clock, a sync fired at every point where an operation of each kind
 * is blocked mid-step (a verification poll, an installer step, a liveness wait) takes no drift edge and sends nothing
 * to that node's BMC, while it still reads the other nodes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { InstanceState } from '../../../agent/model.js';
import type { OsOperationName, PowerTarget } from '../../../agent/service.js';
import { drive, edgesOf } from '../../helpers/engine.js';
import { ctx, IMAGE, IMAGE2, NETWORK, nodeId, startHarness, type Harness } from '../../helpers/harness.js';
import { ManualClock } from '../../helpers/manual-clock.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

type Op = PowerTarget | OsOperationName | 'create' | 'delete';

const CASES: { op: Op; from: InstanceState | 'new' }[] = [
  { op: 'create', from: 'new' },
  { op: 'on', from: 'stopped' },
  { op: 'off', from: 'running' },
  { op: 'soft-off', from: 'running' },
  { op: 'reboot', from: 'running' },
  { op: 'soft-reboot', from: 'running' },
  { op: 'reinstall', from: 'running' },
  { op: 'switch-install', from: 'running' },
  { op: 'modify-ip', from: 'running' },
  { op: 'uninstall', from: 'running' },
  { op: 'change-password', from: 'running' },
  { op: 'retry', from: 'error' },
  { op: 'delete', from: 'running' },
];

describe('a power sync in the middle of every kind of operation', () => {
  for (const { op, from } of CASES) {
    it(`${op} (from ${from}): no drift edge, nothing sent to the node, at every point it waits`, async () => {
      const clock = new ManualClock();
      h = await startHarness({ nodes: 2, fake: '{power_delay: 12ms, install: 30ms}', clock });
      const e = h.agent.engine;
      const lab = h.agent.lab!;
      const node = nodeId(1);
      let id = '';
      if (from !== 'new') {
        if (from === 'error') lab.setFaults(node, { fail_install: 1 });
        id = (await e.createInstance(ctx(), { name: 'sync', image_uuid: IMAGE, extra: { node_id: node } })).instance.id;
        await drive(h, clock);
        if (from === 'stopped') {
          await e.setInstancePower(ctx(), id, { target: 'off' });
          await drive(h, clock);
        }
        expect(e.getInstance(ctx(), id).state).toBe(from);
      }

      const seq = h.agent.store.lastSeq();
      if (op === 'create') id = (await e.createInstance(ctx(), { name: 'sync', image_uuid: IMAGE, extra: { node_id: node } })).instance.id;
      else if (op === 'delete') await e.deleteInstance(ctx(), id);
      else if (['on', 'off', 'soft-off', 'reboot', 'soft-reboot'].includes(op)) expect((await e.setInstancePower(ctx(), id, { target: op as PowerTarget })).accepted).toBe(true);
      else {
        const params = op === 'switch-install' ? { image_uuid: IMAGE2 } : op === 'change-password' ? { password_hash: '$6$salt$hash' } : op === 'modify-ip' ? { networks: [{ uuid: NETWORK }] } : {};
        await e.runOperation(ctx(), id, op as OsOperationName, params);
      }

      const waits = await drive(h, clock, async () => {
        const sent = lab.commands(node).length;
        const others = lab.commands(nodeId(2)).length;
        const at = h!.agent.store.lastSeq();
        await e.powerSyncOnce();
        expect(lab.commands(node).length).toBe(sent);
        expect(lab.commands(nodeId(2)).length).toBeGreaterThan(others); // the sync did run
        expect(edgesOf(h!, id, at)).toEqual([]);
      });
      expect(waits).toBeGreaterThan(1);
      expect(edgesOf(h, id, seq).filter((x) => x.cause === 'drift')).toEqual([]);
      // The operation itself completed normally (no drift edge broke its own).
      const action = h.agent.store.listActions(id).at(-1)!;
      expect(action.finish_time).not.toBeNull();
      expect(action.message).toBeNull();
    });
  }
});
