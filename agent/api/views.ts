/**
 * Wire shapes of the seeds, derived from the model. Each field's source is documented in docs/api.md ("Field
 * sources"). Secrets (`extra.password_hash`, `extra.user_data`) are never read here, so no view can answer them.
 */
import { createHash } from 'node:crypto';
import type { Action, Address, Instance, InstanceError, Node } from '../model.js';
import { MEMBER_ERROR_REASONS, MEMBER_ERROR_TYPE_REASONS, ironicPower, novaPower, novaStatusOf } from '../vocab.js';

/** What a view needs besides the record. */
export interface ViewEnv {
  /** publicUrl() without a trailing slash. */
  base: string;
  agentId: string;
  /** The project in the request URL (the caller's): links are built under it, so the caller can follow them. */
  urlProject: string;
  isAdmin: boolean;
  /** Node name for seed 002's hypervisor_hostname; null when the node cannot be read. */
  nodeName: (nodeId: string) => string | null;
}

// ---- time formats -------------------------------------------------------------------------------------------------

interface UtcParts {
  date: string;
  time: string;
  micro: string;
}

const UTC_RE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]00:?00)?$/;

/** Splits a stored timestamp (ISO 8601, any precision) into UTC date, time and microseconds. */
function utcParts(s: string): UtcParts | null {
  const m = UTC_RE.exec(s);
  if (m !== null) return { date: m[1]!, time: m[2]!, micro: (m[3] ?? '').padEnd(6, '0').slice(0, 6) };
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return null;
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return { date: iso.slice(0, 10), time: iso.slice(11, 19), micro: `${iso.slice(20, 23)}000` };
}

/** Ironic: `2016-10-17T08:28:42.554036+00:00` (seed 004 created_at/updated_at). */
export function ironicTime(s: string): string;
export function ironicTime(s: string | null): string | null;
export function ironicTime(s: string | null): string | null {
  const p = s === null ? null : utcParts(s);
  return p === null ? null : `${p.date}T${p.time}.${p.micro}+00:00`;
}

/** nova, microseconds without zone: `2014-07-24T00:26:12.000000` (seed 002 OS-SRV-USG:*, seed 001 times). */
export function novaMicroTime(s: string | null): string | null {
  const p = s === null ? null : utcParts(s);
  return p === null ? null : `${p.date}T${p.time}.${p.micro}`;
}

/** nova, seconds with Z: `2014-07-24T00:26:07Z` (seed 002 created/updated). */
export function novaTime(s: string): string {
  const p = utcParts(s);
  return p === null ? s : `${p.date}T${p.time}Z`;
}

// ---- seed 004 (v1 instances) --------------------------------------------------------------------------------------

export interface NetworkInfoEntry {
  network: string | null;
  port_type: string | null;
  mac_address: string | null;
  fixed_ips: { ip_address: string; version: 4 | 6 }[];
}

/** Keyed by catalogue network uuid; an adopted address without one is keyed by its network name. */
export function networkInfo(inst: Instance): Record<string, NetworkInfoEntry> {
  const info: Record<string, NetworkInfoEntry> = {};
  for (const n of inst.networks) {
    info[n.uuid] = { network: null, port_type: n.port_type ?? null, mac_address: null, fixed_ips: [] };
  }
  for (const a of inst.addresses) {
    const key = a.network_uuid ?? a.network;
    const e = (info[key] ??= { network: a.network, port_type: null, mac_address: null, fixed_ips: [] });
    e.network = a.network;
    e.mac_address ??= a.mac;
    if (a.type === 'fixed') e.fixed_ips.push({ ip_address: a.addr, version: a.version });
  }
  return info;
}

export function instanceLinks(env: ViewEnv, id: string): { href: string; rel: string }[] {
  return [
    { href: `${env.base}/v1/${env.urlProject}/instances/${id}`, rel: 'self' },
    { href: `${env.base}/${env.urlProject}/instances/${id}`, rel: 'bookmark' },
  ];
}

export function instanceView(inst: Instance, env: ViewEnv): Record<string, unknown> {
  return {
    uuid: inst.id,
    name: inst.name,
    description: inst.description,
    instance_type_uuid: inst.instance_type_uuid,
    image_uuid: inst.image_uuid,
    availability_zone: inst.availability_zone,
    network_info: networkInfo(inst),
    links: instanceLinks(env, inst.id),
    status: inst.state,
    power_state: ironicPower(inst.power_state),
    project_id: inst.project_id,
    user_id: inst.user_id,
    created_at: ironicTime(inst.created_at),
    updated_at: ironicTime(inst.updated_at),
  };
}

/** seed 004 `GET /v1/instances/{id}/states`. */
export function powerStatesView(inst: Instance): { power_state: string | null; target_power_state: string | null } {
  return { power_state: ironicPower(inst.power_state), target_power_state: ironicPower(inst.target_power_state) };
}

// ---- seed 003 -----------------------------------------------------------------------------------------------------

/** The step an engine message names (`step 'power_off' failed: ...`); only a plain word is taken. */
const STEP_RE = /^step '([A-Za-z0-9_.-]{1,64})' failed\b/;

/**
 * An error's message as a member may read it: derived from error_code / error_type and the step, never the raw
 * error_msg (node ids and names, BMC addresses and replies, driver names). Admins get the raw message.
 */
export function memberErrorMessage(e: InstanceError): string {
  const reason = MEMBER_ERROR_REASONS[e.error_code] ?? MEMBER_ERROR_TYPE_REASONS[e.error_type] ?? 'the operation failed';
  const step = STEP_RE.exec(e.error_msg)?.[1];
  return step === undefined ? reason : `step '${step}' failed: ${reason}`;
}

/** An action's message (null on success) as a member may read it: the step, not the detail. */
export function memberActionMessage(message: string | null): string | null {
  if (message === null) return null;
  const step = STEP_RE.exec(message)?.[1];
  return step === undefined
    ? 'the operation did not complete (an admin can see why)'
    : `step '${step}' failed (an admin can see why)`;
}

function errorView(e: InstanceError | null, isAdmin: boolean): InstanceError | null {
  if (e === null) return null;
  return { error_code: e.error_code, error_msg: isAdmin ? e.error_msg : memberErrorMessage(e), error_type: e.error_type };
}

/** seed 003 status; a member's `error.error_msg` is derived (memberErrorMessage), an admin's is the raw one. */
export function statusView(inst: Instance, isAdmin: boolean): Record<string, unknown> {
  return { state: inst.state, operation_state: inst.operation_state, error: errorView(inst.error, isAdmin) };
}

// ---- seed 002 (nova server) ---------------------------------------------------------------------------------------

/** nova's hostId: sha224 of project id + host, hex (nova/api/openstack/compute/views/servers.py `_get_host_id`). */
export function hostId(projectId: string, host: string): string {
  return createHash('sha224').update(`${projectId}${host}`, 'utf8').digest('hex');
}

function addressesView(addrs: Address[]): Record<string, Record<string, unknown>[]> {
  const out: Record<string, Record<string, unknown>[]> = {};
  for (const a of addrs) {
    (out[a.network] ??= []).push({
      'OS-EXT-IPS-MAC:mac_addr': a.mac,
      version: a.version,
      addr: a.addr,
      'OS-EXT-IPS:type': a.type,
    });
  }
  return out;
}

function firstFixed(addrs: Address[], version: 4 | 6): string {
  return addrs.find((a) => a.type === 'fixed' && a.version === version)?.addr ?? '';
}

/**
 * seed 002 `server`. Members get the sample's key set; admins also get the `OS-EXT-SRV-ATTR:*` keys of the format
 * (nova's policy: extended server attributes are admin-only).
 */
export function serverView(inst: Instance, env: ViewEnv): Record<string, unknown> {
  const st = novaStatusOf(inst.state, inst.task, inst.power_state);
  const p = env.urlProject;
  const server: Record<string, unknown> = {
    'OS-DCF:diskConfig': 'MANUAL',
    'OS-EXT-AZ:availability_zone': inst.availability_zone ?? '',
  };
  if (env.isAdmin) {
    server['OS-EXT-SRV-ATTR:host'] = env.agentId;
    server['OS-EXT-SRV-ATTR:hypervisor_hostname'] = env.nodeName(inst.node_id);
    server['OS-EXT-SRV-ATTR:instance_name'] = inst.extra.hostname ?? inst.name;
  }
  Object.assign(server, {
    'OS-EXT-STS:power_state': novaPower(inst.power_state),
    'OS-EXT-STS:task_state': st.task_state,
    'OS-EXT-STS:vm_state': st.vm_state,
    'OS-SRV-USG:launched_at': novaMicroTime(inst.launched_at),
    'OS-SRV-USG:terminated_at': novaMicroTime(inst.terminated_at),
    accessIPv4: firstFixed(inst.addresses, 4),
    accessIPv6: firstFixed(inst.addresses, 6),
    addresses: addressesView(inst.addresses),
    config_drive: '',
    created: novaTime(inst.created_at),
    flavor: {
      id: inst.instance_type_uuid,
      links: [{ href: `${env.base}/${p}/flavors/${inst.instance_type_uuid ?? ''}`, rel: 'bookmark' }],
    },
    hostId: hostId(inst.project_id, env.agentId),
    id: inst.id,
    image: {
      id: inst.image_uuid,
      links: [{ href: `${env.base}/${p}/images/${inst.image_uuid ?? ''}`, rel: 'bookmark' }],
    },
    key_name: null,
    links: [
      { href: `${env.base}/v2/${p}/servers/${inst.id}`, rel: 'self' },
      { href: `${env.base}/${p}/servers/${inst.id}`, rel: 'bookmark' },
    ],
    metadata: { ...inst.metadata },
    name: inst.name,
    progress: inst.progress,
    security_groups: [],
    status: st.status,
    tenant_id: inst.project_id,
    updated: novaTime(inst.updated_at),
    user_id: inst.user_id,
    'os-extended-volumes:volumes_attached': [],
  });
  return server;
}

// ---- seed 001 (instance actions) ----------------------------------------------------------------------------------

/** seed 001 summary; `message` raw for admins, the step only for members (memberActionMessage). */
export function actionSummaryView(a: Action, isAdmin: boolean): Record<string, unknown> {
  return {
    action: a.action,
    instance_uuid: a.instance_id,
    message: isAdmin ? a.message : memberActionMessage(a.message),
    project_id: a.project_id,
    request_id: a.request_id,
    start_time: novaMicroTime(a.start_time),
    user_id: a.user_id,
  };
}

/** With events; `traceback` only for admins (null otherwise). */
export function actionView(a: Action, isAdmin: boolean): Record<string, unknown> {
  return {
    ...actionSummaryView(a, isAdmin),
    events: a.events.map((e) => ({
      event: e.event,
      start_time: novaMicroTime(e.start_time),
      finish_time: novaMicroTime(e.finish_time),
      result: e.result,
      traceback: isAdmin ? e.traceback : null,
    })),
  };
}

// ---- nodes (admin) ------------------------------------------------------------------------------------------------

/** An operator's view of a node: never a BMC password (only drivers and address), never driver options. */
export function nodeView(n: Node, base: string): Record<string, unknown> {
  return {
    uuid: n.id,
    name: n.name,
    type: n.type,
    boot_mode: n.boot_mode,
    driver: n.bmc.drivers[0] ?? null,
    bmc: {
      drivers: [...n.bmc.drivers],
      address: n.bmc.address,
      port: n.bmc.port ?? null,
      username: n.bmc.username ?? null,
      system_id: n.bmc.system_id ?? null,
    },
    macs: n.macs.map((m) => ({ mac: m.mac, pxe: m.pxe })),
    power_state: ironicPower(n.power_state),
    target_power_state: ironicPower(n.target_power_state),
    maintenance: n.maintenance,
    maintenance_reason: n.maintenance_reason,
    last_error: errorView(n.last_error, true), // node views are admin-only
    instance_uuid: n.instance_id,
    enforce_power: n.enforce_power,
    source: n.source,
    created_at: ironicTime(n.created_at),
    updated_at: ironicTime(n.updated_at),
    links: [{ href: `${base}/v1/nodes/${n.id}`, rel: 'self' }],
  };
}
