/** Store test fixtures: a valid row of each kind, with every field set, overridable per test; a temporary store dir. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { Action, ActionEvent, Instance, Node } from '../../../agent/model.js';
import { openStore, type OpenStoreOptions, type SqliteStore } from '../../../agent/store/sqlite.js';

/**
 * A fresh state dir per test, removed afterwards with the stores opened in it. `open` opens (another connection to)
 * the test's store, `dir()` names the dir.
 */
export function useStoreDir(): { dir: () => string; open: (extra?: Partial<OpenStoreOptions>) => SqliteStore } {
  let dir = '';
  const opened: SqliteStore[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metald-store-'));
  });
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir: () => dir,
    open: (extra = {}) => {
      const s = openStore({ dir, agentId: 'agent-1', ...extra });
      opened.push(s);
      return s;
    },
  };
}

export function node(over: Partial<Node> = {}): Node {
  return {
    id: 'node-1',
    name: 'rack1-u12',
    type: 'r650',
    boot_mode: 'uefi',
    macs: [
      { mac: 'aa:bb:cc:dd:ee:01', pxe: true },
      { mac: 'aa:bb:cc:dd:ee:02', pxe: false },
    ],
    bmc: {
      drivers: ['redfish', 'ipmi'],
      address: '10.0.0.12',
      port: 443,
      username: 'root',
      password_file: '/etc/metald/bmc/node-1',
      system_id: '/redfish/v1/Systems/1',
      insecure: true,
      options: { delay_ms: 5, nested: { a: [1, 2, null] } },
    },
    maintenance: false,
    maintenance_reason: null,
    power_state: 'on',
    target_power_state: null,
    last_error: null,
    consecutive_power_failures: 0,
    instance_id: null,
    adopt: null,
    enforce_power: false,
    source: 'config',
    created_at: '2024-01-01T00:00:00.000Z',
    updated_at: '2024-01-01T00:00:00.000Z',
    ...over,
  };
}

export function instance(over: Partial<Instance> = {}): Instance {
  return {
    id: 'inst-1',
    project_id: 'proj-1',
    user_id: 'user-1',
    name: 'web-1',
    description: 'a server',
    node_id: 'node-1',
    instance_type_uuid: 'type-1',
    image_uuid: 'img-1',
    availability_zone: 'az1',
    networks: [{ uuid: 'net-1', port_type: 'bond' }, { uuid: 'net-2' }],
    addresses: [
      { addr: '192.0.2.10', mac: 'aa:bb:cc:dd:ee:01', version: 4, type: 'fixed', network: 'public', network_uuid: 'net-1' },
      { addr: '2001:db8::10', mac: 'aa:bb:cc:dd:ee:01', version: 6, type: 'fixed', network: 'public' },
    ],
    metadata: { role: 'web', 'ключ': 'значение ✓' },
    extra: { hostname: 'web-1', ssh_keys: ['ssh-ed25519 AAAA x'], password_hash: '$6$salt$hash', user_data: '#!/bin/sh' },
    state: 'running',
    operation_state: 'install-succeed',
    error: null,
    power_state: 'on',
    target_power_state: null,
    task: null,
    task_request_id: null,
    progress: 100,
    failed_operation: null,
    created_at: '2024-01-02T00:00:00.000Z',
    updated_at: '2024-01-02T00:00:00.000Z',
    launched_at: '2024-01-02T00:10:00.000Z',
    terminated_at: null,
    ...over,
  };
}

export function event(over: Partial<ActionEvent> = {}): ActionEvent {
  return {
    event: 'compute_power_on',
    start_time: '2024-01-03T00:00:00.000Z',
    finish_time: null,
    result: null,
    traceback: null,
    ...over,
  };
}

export function action(over: Partial<Action> = {}): Action {
  return {
    request_id: 'req-1',
    instance_id: 'inst-1',
    project_id: 'proj-1',
    user_id: 'user-1',
    action: 'start',
    start_time: '2024-01-03T00:00:00.000Z',
    finish_time: null,
    message: null,
    events: [event()],
    plan: null,
    ...over,
  };
}
