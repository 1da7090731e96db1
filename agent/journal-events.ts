/**
 * The `data` of every journal entry (the outbox), one TypeBox schema per kind (agent/model.ts JournalKind). The
 * recorder (agent/operations/recorder.ts) emits every entry through one function typed by these schemas; the
 * upstream protocol reuses them to describe what it sends. Schemas are closed (no other field), so a field added to
 * an entry without its schema, or a schema that forgets one, is caught (test/agent/operations/journal-events.test.ts).
 */
import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';
import { POWER_STATES } from '../drivers/power.js';
import { INSTANCE_STATES, OPERATION_STATES, type ActionName, type Address, type ErrorType, type Instance, type JournalKind } from './model.js';
import { STATE_EVENTS } from './state-machine.js';

/** One of `words`, typed as their union. */
function Words<const T extends readonly string[]>(words: T): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(words.map((w) => Type.Literal(w)) as TLiteral<T[number]>[]);
}

const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);
const closed = { additionalProperties: false } as const;

const ACTION_NAMES = [
  'create', 'adopt', 'start', 'stop', 'reboot', 'delete', 'changePassword', 'reinstall', 'switch-install', 'modify-ip', 'uninstall', 'retry',
] as const satisfies readonly ActionName[];
const ERROR_TYPES = [
  'power_off_error', 'power_on_error', 'reboot_failed_error', 'install_error', 'bmc_unreachable_error', 'change_password_error', 'delete_error',
] as const satisfies readonly ErrorType[];
// Compile-time: the lists above name every word of their unions.
const everyActionName: Exclude<ActionName, (typeof ACTION_NAMES)[number]> extends never ? true : never = true;
const everyErrorType: Exclude<ErrorType, (typeof ERROR_TYPES)[number]> extends never ? true : never = true;
void everyActionName;
void everyErrorType;

const Power = Words(POWER_STATES);
const TargetPower = Nullable(Words(['on', 'off'] as const));
const State = Words(INSTANCE_STATES);
const OperationStateWord = Words(OPERATION_STATES as readonly (typeof OPERATION_STATES)[number][]);

export const InstanceErrorData = Type.Object(
  { error_code: Type.String(), error_msg: Type.String(), error_type: Words(ERROR_TYPES) },
  closed,
);

export const AddressData = Type.Object(
  {
    addr: Type.String(),
    mac: Type.String(),
    version: Type.Union([Type.Literal(4), Type.Literal(6)]),
    type: Words(['fixed', 'floating'] as const),
    network: Type.String(),
    network_uuid: Type.Optional(Type.String()),
  },
  closed,
);

/** What may leave the agent about an instance (never `extra`: password hash, user data). */
export const InstanceSummary = Type.Object(
  {
    id: Type.String(),
    project_id: Type.String(),
    user_id: Type.String(),
    name: Type.String(),
    node_id: Type.String(),
    image_uuid: Nullable(Type.String()),
    instance_type_uuid: Nullable(Type.String()),
    addresses: Type.Array(AddressData),
    state: State,
  },
  closed,
);

/** The details an action event may carry: the step's BMC call record, a failure's code, what a step decided. */
export const ActionEventDetails = Type.Object(
  {
    /** Which drivers were tried for the step's BMC call, and which succeeded. */
    tried: Type.Optional(Type.Array(Type.String())),
    succeeded: Type.Optional(Nullable(Type.String())),
    /** A failed step's error code. */
    code: Type.Optional(Type.String()),
    /** The step's index in its operation's plan: pairs a step's start and finish when its name repeats. */
    step: Type.Optional(Type.Integer({ minimum: 0 })),
    /** The `schedule` step: the node chosen. */
    node_id: Type.Optional(Type.String()),
    node_name: Type.Optional(Type.String()),
    /** An adoption's `read_power` step: what it read. */
    power: Type.Optional(Words(['on', 'off'] as const)),
  },
  closed,
);
export type ActionEventDetails = Static<typeof ActionEventDetails>;

/** The `data` schema of each journal kind. */
export const EVENT_DATA = {
  'instance.created': InstanceSummary,
  'instance.state': Type.Object(
    { state: State, event: Type.Optional(Words(STATE_EVENTS)), from: Type.Optional(Words([...INSTANCE_STATES, 'new'] as const)) },
    closed,
  ),
  'instance.operation_state': Type.Object({ operation_state: Nullable(OperationStateWord) }, closed),
  'instance.power': Type.Object({ power_state: Power }, closed),
  'instance.target_power': Type.Object({ target_power_state: TargetPower }, closed),
  'instance.error': Type.Object({ error: Nullable(InstanceErrorData) }, closed),
  'instance.addresses': Type.Object({ addresses: Type.Array(AddressData) }, closed),
  'instance.alive': Type.Object({ alive: Type.Boolean() }, closed),
  'instance.deleted': Type.Object({}, closed),
  'action.started': Type.Object({ request_id: Type.String(), action: Words(ACTION_NAMES) }, closed),
  'action.event': Type.Composite([
    Type.Object({ request_id: Type.String(), event: Type.String(), result: Nullable(Words(['Success', 'Error'] as const)) }),
    ActionEventDetails,
  ], closed),
  'action.finished': Type.Object(
    { request_id: Type.String(), action: Words(ACTION_NAMES), result: Words(['Success', 'Error'] as const), message: Nullable(Type.String()) },
    closed,
  ),
  /** A node's observed power, or the target of a node-level power command (with the request that set it). */
  'node.power': Type.Union([
    Type.Object({ power_state: Power }, closed),
    Type.Object({ target_power_state: TargetPower, request_id: Type.Optional(Type.String()) }, closed),
  ]),
  'node.error': Type.Object({ error: Nullable(InstanceErrorData) }, closed),
  'node.maintenance': Type.Object({ maintenance: Type.Boolean(), reason: Nullable(Type.String()) }, closed),
  'node.released': Type.Object({ instance_id: Type.Null(), released_instance_id: Type.String() }, closed),
  'node.enrolled': Type.Object({ name: Type.String(), type: Type.String() }, closed),
  /** A node left the store (an upstream node.remove): the controller drops it. */
  'node.removed': Type.Object({ name: Type.String() }, closed),
} satisfies Record<JournalKind, TSchema>;

/** The `data` of a journal entry of kind K. */
export type EventData<K extends JournalKind> = Static<(typeof EVENT_DATA)[K]>;

/** An address's public fields (AddressData): what the journal and the hello's snapshot carry of it. */
export function publicAddress(a: Address): Address {
  return {
    addr: a.addr, mac: a.mac, version: a.version, type: a.type, network: a.network,
    ...(a.network_uuid !== undefined ? { network_uuid: a.network_uuid } : {}),
  };
}

/** What may leave the agent about an instance (InstanceSummary): instance.created's data, and the snapshot's core. */
export function instanceSummary(i: Instance): EventData<'instance.created'> {
  return {
    id: i.id,
    project_id: i.project_id,
    user_id: i.user_id,
    name: i.name,
    node_id: i.node_id,
    image_uuid: i.image_uuid,
    instance_type_uuid: i.instance_type_uuid,
    addresses: i.addresses.map(publicAddress),
    state: i.state,
  };
}
