/** Seed-shaped answers for metalctl's tests (shared/seeds/000-004, design.md 4.2). */
export const PROJECT = '5d8b99310e6c49eaa5413aa659170deb';
export const INSTANCE_ID = 'cbce6087-6156-453c-a512-60bf3d75d69f';
export const NODE_ID = '1b8c5f0e-0000-4000-8000-000000000001';
export const IMAGE_ID = '70a599e0-31e7-49b7-b260-868f441e862b';
export const TYPE_ID = '3b0f0c4c-0e33-4c2e-8a7f-0b9c3f2d8a11';
export const NET_ID = 'a0b1c2d3-0000-4000-8000-00000000aaaa';
export const ACTION_ID = 'req-3293a3f1-b44c-4609-b8d2-d81b105636b8';

export function instanceView(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uuid: INSTANCE_ID,
    name: 'Testvm1',
    description: 'web server',
    instance_type_uuid: TYPE_ID,
    image_uuid: IMAGE_ID,
    availability_zone: 'rack-a12',
    network_info: {
      [NET_ID]: {
        network: 'private',
        port_type: 'normal',
        mac_address: 'fa:16:3e:1c:d0:5b',
        fixed_ips: [{ ip_address: '10.0.0.102', version: 4 }],
      },
    },
    links: [
      { href: `http://127.0.0.1:6385/v1/${PROJECT}/instances/${INSTANCE_ID}`, rel: 'self' },
      { href: `http://127.0.0.1:6385/${PROJECT}/instances/${INSTANCE_ID}`, rel: 'bookmark' },
    ],
    status: 'running',
    power_state: 'power on',
    project_id: PROJECT,
    user_id: 'f5a98f28f61e4fd19622f9016c481d48',
    created_at: '2026-06-08T10:00:00+00:00',
    updated_at: '2026-06-08T10:05:00+00:00',
    ...over,
  };
}

export function serverView(progress: number, status = 'BUILD'): Record<string, unknown> {
  return {
    server: {
      id: INSTANCE_ID,
      name: 'Testvm1',
      status,
      progress,
      'OS-EXT-STS:power_state': 1,
      'OS-EXT-STS:task_state': null,
      'OS-EXT-STS:vm_state': 'active',
      tenant_id: PROJECT,
    },
  };
}

export const actionsList = {
  instanceActions: [
    {
      action: 'create',
      instance_uuid: INSTANCE_ID,
      message: null,
      project_id: PROJECT,
      request_id: ACTION_ID,
      start_time: '2026-06-08T10:00:00.000000',
      user_id: 'f5a98f28f61e4fd19622f9016c481d48',
    },
  ],
};

export const actionDetail = {
  instanceAction: {
    ...actionsList.instanceActions[0],
    events: [
      { event: 'set_boot_device', start_time: '2026-06-08T10:00:01.000000', finish_time: '2026-06-08T10:00:02.000000', result: 'Success', traceback: null },
      {
        event: 'power_on',
        start_time: '2026-06-08T10:00:02.000000',
        finish_time: '2026-06-08T10:00:09.000000',
        result: 'Error',
        traceback: 'BMC_ERR_UNREACHABLE: 10.0.1.21:623\nno answer after 3 tries',
      },
    ],
  },
};

export function nodeView(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uuid: NODE_ID,
    name: 'node-01',
    type: 'small',
    boot_mode: 'uefi',
    macs: [{ mac: 'fa:16:3e:1c:d0:5a', pxe: true }],
    bmc: { drivers: ['ipmi'], address: '10.0.1.21', port: 623 },
    maintenance: false,
    maintenance_reason: null,
    power_state: 'power on',
    target_power_state: null,
    last_error: null,
    instance_uuid: INSTANCE_ID,
    ...over,
  };
}
