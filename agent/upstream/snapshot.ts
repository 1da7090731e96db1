/**
 * The store's nodes and instances as the hello's snapshot carries them (agent/upstream/protocol.ts SnapshotNode,
 * SnapshotInstance): the public fields, in internal words, the same the events carry. Pure: the client reads the rows
 * (and each instance's last journalled liveness verdict) in one store transaction and passes them here.
 */
import { instanceSummary } from '../journal-events.js';
import type { Instance, Node } from '../model.js';
import type { SnapshotInstance, SnapshotNode } from './protocol.js';
import type { Static } from '@sinclair/typebox';

export type SnapshotNodeT = Static<typeof SnapshotNode>;
export type SnapshotInstanceT = Static<typeof SnapshotInstance>;

/** A node's public view: never its BMC settings (addresses, user names, credential files), only the driver order. */
export function snapshotNode(n: Node): SnapshotNodeT {
  return {
    id: n.id,
    name: n.name,
    type: n.type,
    boot_mode: n.boot_mode,
    macs: n.macs.map((m) => ({ mac: m.mac, pxe: m.pxe })),
    drivers: [...n.bmc.drivers],
    maintenance: n.maintenance,
    maintenance_reason: n.maintenance_reason,
    power_state: n.power_state,
    target_power_state: n.target_power_state,
    error: n.last_error,
    instance_id: n.instance_id,
    adopting: n.adopt !== null && n.instance_id === null,
    source: n.source,
  };
}

/** An instance's public view (never `extra`); `alive` is its last journalled verdict (Store.lastAliveVerdict). */
export function snapshotInstance(i: Instance, alive: boolean | null): SnapshotInstanceT {
  const { state, ...summary } = instanceSummary(i);
  return {
    ...summary,
    state,
    operation_state: i.operation_state,
    power_state: i.power_state,
    target_power_state: i.target_power_state,
    error: i.error,
    alive,
    task: i.task,
    task_request_id: i.task_request_id,
    created_at: i.created_at,
    updated_at: i.updated_at,
  };
}
