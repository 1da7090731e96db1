/** metalctl's plain-text views of the API's answers (tables and key/value blocks, agent/cli/format.ts). */
import type { InstanceStatus, InstanceView, NodeView, StatusError } from './client.js';
import { flattenObject, formatCell, formatKeyValue, formatTable } from './format.js';

function addressesOf(inst: InstanceView): string {
  const ips: string[] = [];
  for (const net of Object.values(inst.network_info ?? {})) {
    for (const ip of net.fixed_ips ?? []) ips.push(ip.ip_address);
  }
  return ips.join(',');
}

export function instanceTable(instances: InstanceView[]): string {
  const withNode = instances.some((i) => typeof i.node_id === 'string');
  const headers = ['ID', 'NAME', 'STATUS', 'POWER', ...(withNode ? ['NODE'] : []), 'ADDRESSES', 'CREATED'];
  const rows = instances.map((i) => [
    i.uuid,
    i.name,
    i.status,
    i.power_state,
    ...(withNode ? [i.node_id] : []),
    addressesOf(i),
    i.created_at,
  ]);
  return formatTable(headers, rows);
}

const INSTANCE_KEYS = [
  'uuid',
  'name',
  'description',
  'status',
  'power_state',
  'project_id',
  'user_id',
  'image_uuid',
  'instance_type_uuid',
  'availability_zone',
  'created_at',
  'updated_at',
] as const;

export function instanceDetail(inst: InstanceView): string {
  const pairs: [string, unknown][] = INSTANCE_KEYS.map((k) => [k, inst[k]]);
  const rest = Object.fromEntries(
    Object.entries(inst).filter(([k]) => !(INSTANCE_KEYS as readonly string[]).includes(k) && k !== 'network_info' && k !== 'links'),
  );
  if (Object.keys(rest).length > 0) pairs.push(...flattenObject(rest));
  for (const [uuid, net] of Object.entries(inst.network_info ?? {})) {
    const ips = (net.fixed_ips ?? []).map((ip) => ip.ip_address).join(',');
    pairs.push([`network ${uuid}`, `${net.network ?? '-'} port_type=${formatCell(net.port_type)} mac=${formatCell(net.mac_address)} ips=${ips || '-'}`]);
  }
  return formatKeyValue(pairs);
}

export function statusDetail(s: InstanceStatus): string {
  const pairs: [string, unknown][] = [
    ['state', s.state],
    ['operation_state', s.operation_state],
  ];
  if (s.error) {
    pairs.push(['error_type', s.error.error_type], ['error_code', s.error.error_code], ['error_msg', s.error.error_msg]);
  } else {
    pairs.push(['error', null]);
  }
  return formatKeyValue(pairs);
}

export function lastErrorText(e: unknown): unknown {
  if (e !== null && typeof e === 'object' && typeof (e as StatusError).error_msg === 'string') return (e as StatusError).error_msg;
  return e;
}

export function nodeTable(nodes: NodeView[]): string {
  return formatTable(
    ['ID', 'NAME', 'TYPE', 'POWER', 'MAINTENANCE', 'INSTANCE', 'LAST_ERROR'],
    nodes.map((n) => [
      n.uuid,
      n.name,
      n.type,
      n.power_state,
      n.maintenance ? (n.maintenance_reason ? `yes (${n.maintenance_reason})` : 'yes') : 'no',
      n.instance_uuid,
      lastErrorText(n.last_error),
    ]),
  );
}

export function yesNo(b: unknown): string {
  return b === true ? 'yes' : b === false ? 'no' : formatCell(b);
}
