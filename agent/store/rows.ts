/**
 * Row shapes of the store's tables and the mapping between them and the model. JSON columns are parsed here; a
 * corrupt one throws, and the store (./sqlite.ts) turns that into StoreError.
 */
import { StoreError } from './types.js';
import type {
  Action,
  ActionPlan,
  ActionEvent,
  ActionEventResult,
  ActionName,
  AdoptRequest,
  BmcSettings,
  BootMode,
  Instance,
  InstanceError,
  InstanceExtra,
  InstanceState,
  JournalEntry,
  JournalKind,
  Node,
  NodeMac,
  OperationKind,
  OperationState,
  PowerState,
  TargetPower,
} from '../model.js';

export interface NodeRow {
  id: string;
  name: string;
  type: string;
  boot_mode: string;
  macs: string;
  bmc: string;
  maintenance: number;
  maintenance_reason: string | null;
  power_state: string;
  target_power_state: string | null;
  last_error: string | null;
  consecutive_power_failures: number;
  instance_id: string | null;
  adopt: string | null;
  enforce_power: number;
  source: string;
  created_at: string;
  updated_at: string;
}

export interface InstanceRow {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string | null;
  node_id: string;
  instance_type_uuid: string | null;
  image_uuid: string | null;
  availability_zone: string | null;
  networks: string;
  addresses: string;
  metadata: string;
  extra: string;
  state: string;
  operation_state: string | null;
  error: string | null;
  power_state: string;
  target_power_state: string | null;
  task: string | null;
  task_request_id: string | null;
  progress: number;
  failed_operation: string | null;
  created_at: string;
  updated_at: string;
  launched_at: string | null;
  terminated_at: string | null;
}

export interface ActionRow {
  request_id: string;
  instance_id: string;
  project_id: string;
  user_id: string;
  action: string;
  start_time: string;
  finish_time: string | null;
  message: string | null;
  /** Both NULL until a plan step has started (Action.plan null). */
  plan_step: number | null;
  plan_data: string | null;
}

export interface EventRow {
  request_id: string;
  idx: number;
  event: string;
  start_time: string;
  finish_time: string | null;
  result: string | null;
  traceback: string | null;
}

export interface JournalRow {
  agent_id: string;
  seq: number;
  at: string;
  kind: string;
  instance_id: string | null;
  node_id: string | null;
  cause: string;
  data: string;
}

export type Params = Record<string, string | number | null>;

export const json = (v: unknown): string => JSON.stringify(v);
const jsonOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(s: string): T => JSON.parse(s) as T;
const parseOrNull = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));
const bool = (b: boolean): number => (b ? 1 : 0);

export function nodeToRow(n: Node): Params {
  return {
    id: n.id,
    name: n.name,
    type: n.type,
    boot_mode: n.boot_mode,
    macs: json(n.macs ?? []),
    bmc: json(n.bmc),
    maintenance: bool(n.maintenance),
    maintenance_reason: n.maintenance_reason ?? null,
    power_state: n.power_state,
    target_power_state: n.target_power_state ?? null,
    last_error: jsonOrNull(n.last_error),
    consecutive_power_failures: n.consecutive_power_failures,
    instance_id: n.instance_id ?? null,
    adopt: jsonOrNull(n.adopt),
    enforce_power: bool(n.enforce_power),
    source: n.source,
    created_at: n.created_at,
    updated_at: n.updated_at,
  };
}

export function rowToNode(r: NodeRow): Node {
  return {
    id: r.id,
    name: r.name,
    type: r.type,
    boot_mode: r.boot_mode as BootMode,
    macs: parse<NodeMac[]>(r.macs),
    bmc: parse<BmcSettings>(r.bmc),
    maintenance: r.maintenance !== 0,
    maintenance_reason: r.maintenance_reason,
    power_state: r.power_state as PowerState,
    target_power_state: r.target_power_state as TargetPower,
    last_error: parseOrNull<InstanceError>(r.last_error),
    consecutive_power_failures: r.consecutive_power_failures,
    instance_id: r.instance_id,
    adopt: parseOrNull<AdoptRequest>(r.adopt),
    enforce_power: r.enforce_power !== 0,
    source: r.source as Node['source'],
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

export function instanceToRow(i: Instance): Params {
  return {
    id: i.id,
    project_id: i.project_id,
    user_id: i.user_id,
    name: i.name,
    description: i.description ?? null,
    node_id: i.node_id,
    instance_type_uuid: i.instance_type_uuid ?? null,
    image_uuid: i.image_uuid ?? null,
    availability_zone: i.availability_zone ?? null,
    networks: json(i.networks ?? []),
    addresses: json(i.addresses ?? []),
    metadata: json(i.metadata ?? {}),
    extra: json(i.extra ?? {}),
    state: i.state,
    operation_state: i.operation_state ?? null,
    error: jsonOrNull(i.error),
    power_state: i.power_state,
    target_power_state: i.target_power_state ?? null,
    task: i.task ?? null,
    task_request_id: i.task_request_id ?? null,
    progress: i.progress,
    failed_operation: jsonOrNull(i.failed_operation),
    created_at: i.created_at,
    updated_at: i.updated_at,
    launched_at: i.launched_at ?? null,
    terminated_at: i.terminated_at ?? null,
  };
}

export function rowToInstance(r: InstanceRow): Instance {
  return {
    id: r.id,
    project_id: r.project_id,
    user_id: r.user_id,
    name: r.name,
    description: r.description,
    node_id: r.node_id,
    instance_type_uuid: r.instance_type_uuid,
    image_uuid: r.image_uuid,
    availability_zone: r.availability_zone,
    networks: parse<Instance['networks']>(r.networks),
    addresses: parse<Instance['addresses']>(r.addresses),
    metadata: parse<Record<string, string>>(r.metadata),
    extra: parse<InstanceExtra>(r.extra),
    state: r.state as InstanceState,
    operation_state: r.operation_state as OperationState | null,
    error: parseOrNull<InstanceError>(r.error),
    power_state: r.power_state as PowerState,
    target_power_state: r.target_power_state as TargetPower,
    task: r.task as OperationKind | null,
    task_request_id: r.task_request_id,
    progress: r.progress,
    failed_operation: parseOrNull<NonNullable<Instance['failed_operation']>>(r.failed_operation),
    created_at: r.created_at,
    updated_at: r.updated_at,
    launched_at: r.launched_at,
    terminated_at: r.terminated_at,
  };
}

export function eventToRow(requestId: string, idx: number, e: ActionEvent): Params {
  return {
    request_id: requestId,
    idx,
    event: e.event,
    start_time: e.start_time,
    finish_time: e.finish_time ?? null,
    result: e.result ?? null,
    traceback: e.traceback ?? null,
  };
}

export function actionHeader(a: Action): Params {
  return {
    request_id: a.request_id,
    instance_id: a.instance_id,
    project_id: a.project_id,
    user_id: a.user_id,
    action: a.action,
    start_time: a.start_time,
    finish_time: a.finish_time ?? null,
    message: a.message ?? null,
    ...planToColumns(a.plan ?? null),
    // putAction: an action read without its plan (plan undefined) keeps the stored one
    plan_given: a.plan === undefined ? 0 : 1,
  };
}

/** The plan columns of an action row; throws StoreError for a plan that cannot be stored faithfully. */
export function planToColumns(plan: ActionPlan | null): { plan_step: number | null; plan_data: string | null } {
  if (plan === null) return { plan_step: null, plan_data: null };
  if (!Number.isSafeInteger(plan.step) || plan.step < 0) {
    throw new StoreError(`action plan step must be a non-negative integer, got ${String(plan.step)}`);
  }
  if (!isPlainObject(plan.data)) throw new StoreError('action plan data must be a JSON object');
  let data: string;
  try {
    data = JSON.stringify(plan.data);
  } catch (e) {
    throw new StoreError('action plan data is not serialisable as JSON', { cause: e });
  }
  return { plan_step: plan.step, plan_data: data };
}

function rowToPlan(r: ActionRow): ActionPlan | null {
  if (r.plan_step === null) return null;
  const data: unknown = r.plan_data === null ? null : JSON.parse(r.plan_data);
  if (!isPlainObject(data)) throw new StoreError(`action ${r.request_id}: plan_data is not a JSON object`);
  return { step: r.plan_step, data };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function rowToEvent(r: EventRow): ActionEvent {
  return {
    event: r.event,
    start_time: r.start_time,
    finish_time: r.finish_time,
    result: r.result as ActionEventResult | null,
    traceback: r.traceback,
  };
}

export function rowToJournal(r: JournalRow): JournalEntry {
  return {
    seq: r.seq,
    agent_id: r.agent_id,
    at: r.at,
    kind: r.kind as JournalKind,
    instance_id: r.instance_id,
    node_id: r.node_id,
    cause: r.cause,
    data: parse<Record<string, unknown>>(r.data),
  };
}

export function rowToAction(r: ActionRow, events: ActionEvent[]): Action {
  return {
    request_id: r.request_id,
    instance_id: r.instance_id,
    project_id: r.project_id,
    user_id: r.user_id,
    action: r.action as ActionName,
    start_time: r.start_time,
    finish_time: r.finish_time,
    message: r.message,
    events,
    plan: rowToPlan(r),
  };
}
