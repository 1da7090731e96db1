/**
 * The upstream protocol (docs/protocol.md), version 1: one TypeBox schema per message, exported as JSON Schema under
 * docs/protocol/ (scripts/protocol-schemas.ts) so that a controller in any language validates both directions with the
 * same rules. `parseMessage` (./parse.ts) is the one way the agent (and the reference controller) reads a frame.
 *
 * Every message is a JSON object with `type` (the discriminator) and `version`. Every object is closed (no field
 * beyond its schema's) and every string and array is bounded, so a valid message is also a bounded one. Two limits
 * hold before any parsing: MAX_HELLO_BYTES for a `hello` (it carries the snapshot), MAX_MESSAGE_BYTES for the rest.
 *
 * Snapshots use the store's model in internal words (agent/model.ts), restricted to public fields: the same words and
 * fields the events carry (agent/journal-events.ts), so a controller applies an event's `data` onto the snapshot's
 * object as it is. The REST shapes would not do: they speak three vocabularies (Ironic, nova, seed 003), depend on the
 * caller (base URL, role, project) and leave out what the controller needs (task, node power of free nodes).
 */
import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';
import { POWER_ACTIONS, POWER_STATES } from '../../drivers/power.js';
import { ActionBody, CreateInstanceBody, REQUEST_ID_PATTERN, UUID_PATTERN } from '../api/schemas.js';
import { AdoptSchema, ImageSchema, InstanceTypeSchema, NAME_PATTERN, NetworkSchema, NodeSchema } from '../config/schema.js';
import { AGENT_ERRORS, type AgentErrorCode } from '../errors.js';
import { EVENT_DATA, InstanceErrorData, InstanceSummary } from '../journal-events.js';
import { INSTANCE_STATES, OPERATION_KINDS, OPERATION_STATES, type JournalKind } from '../model.js';

/** The protocol version this code speaks; a message with any other is refused (PROTO_ERR_UNKNOWN_VERSION). */
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

/** Largest `hello` frame (UTF-8 bytes): a snapshot of MAX_NODES nodes and their instances fits with room. */
export const MAX_HELLO_BYTES = 16 * 1024 * 1024;
/** Largest frame of every other message (UTF-8 bytes). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Most nodes (and instances: at most one live instance per node) a snapshot holds. */
export const MAX_NODES = 5000;
/** Longest operator-facing text in protocol messages (error messages, reasons). */
export const MAX_TEXT = 1024;

// ---- building blocks ----------------------------------------------------------------------------------------------

const closed = { additionalProperties: false } as const;

function Words<const T extends readonly string[]>(words: T): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(words.map((w) => Type.Literal(w)) as TLiteral<T[number]>[]);
}
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);

const Version = Type.Literal(PROTOCOL_VERSION, { description: 'Protocol version (docs/protocol.md).' });
const AgentId = Type.String({ pattern: NAME_PATTERN, description: "The agent's id (config agent_id)." });
const Uuid = Type.String({ pattern: UUID_PATTERN, maxLength: 36 });
/** A per-agent journal sequence number: 1 for the first entry, never reused (the store's journal_seq). */
const Seq = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
/** The controller's fencing generation: a newer controller holds a greater one. */
const Generation = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Timestamp = Type.String({ minLength: 20, maxLength: 40, pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$' });
const Text = (maxLength = MAX_TEXT) => Type.String({ maxLength });
const Short = Type.String({ maxLength: 255 });
/** A command's id, which is also its action's request id (design 3, "Actions"): `req-<uuid>`. */
const CommandId = Type.String({ pattern: REQUEST_ID_PATTERN, maxLength: 40 });

// ---- snapshot -----------------------------------------------------------------------------------------------------

const Power = Words(POWER_STATES);
const TargetPower = Nullable(Words(['on', 'off'] as const));

/** An instance as the controller holds it: instance.created's summary plus every field an event changes. */
export const SnapshotInstance = Type.Composite(
  [
    InstanceSummary,
    Type.Object({
      state: Words(INSTANCE_STATES),
      operation_state: Nullable(Words(OPERATION_STATES as readonly (typeof OPERATION_STATES)[number][])),
      power_state: Power,
      target_power_state: TargetPower,
      error: Nullable(InstanceErrorData),
      /** The last liveness verdict journalled (instance.alive), null when none is. */
      alive: Nullable(Type.Boolean()),
      /** The operation holding the instance, and its action's request id. */
      task: Nullable(Words(OPERATION_KINDS)),
      task_request_id: Nullable(Type.String({ maxLength: 64 })),
      created_at: Timestamp,
      updated_at: Timestamp,
    }),
  ],
  closed,
);

export const SnapshotNode = Type.Object(
  {
    id: Uuid,
    name: Type.String({ pattern: NAME_PATTERN }),
    type: Type.String({ pattern: NAME_PATTERN }),
    boot_mode: Words(['uefi', 'legacy'] as const),
    macs: Type.Array(Type.Object({ mac: Type.String({ maxLength: 17 }), pxe: Type.Boolean() }, closed), { maxItems: 64 }),
    /** The BMC drivers in the order they are tried (never a setting, never a secret). */
    drivers: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 8 }),
    maintenance: Type.Boolean(),
    maintenance_reason: Nullable(Short),
    power_state: Power,
    target_power_state: TargetPower,
    error: Nullable(InstanceErrorData),
    instance_id: Nullable(Uuid),
    /** An adoption waits for a verified power read. */
    adopting: Type.Boolean(),
    source: Words(['config', 'controller'] as const),
  },
  closed,
);

export const Snapshot = Type.Object(
  {
    /** The last journal seq the snapshot reflects (0: nothing journalled yet). */
    seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    taken_at: Timestamp,
    nodes: Type.Array(SnapshotNode, { maxItems: MAX_NODES }),
    /** Every instance that is not terminated; one the controller holds and this lacks is terminated. */
    instances: Type.Array(SnapshotInstance, { maxItems: MAX_NODES }),
  },
  closed,
);

const NullableShort = Nullable(Short);
/** Host inventory (systeminformation); every DMI-derived field is null where the host has no DMI data. */
export const Inventory = Type.Object(
  {
    hostname: Short,
    os: Type.Object({ platform: Short, distro: NullableShort, release: NullableShort, kernel: NullableShort, arch: Short }, closed),
    system: Type.Object({ manufacturer: NullableShort, model: NullableShort, serial: NullableShort, uuid: NullableShort }, closed),
    cpu: Type.Object(
      { brand: NullableShort, cores: Type.Integer({ minimum: 0, maximum: 65536 }), physical_cores: Nullable(Type.Integer({ minimum: 0, maximum: 65536 })) },
      closed,
    ),
    memory_bytes: Type.Integer({ minimum: 0 }),
    interfaces: Type.Array(
      Type.Object(
        {
          name: Type.String({ maxLength: 64 }),
          mac: NullableShort,
          ip4: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 }),
          ip6: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 }),
        },
        closed,
      ),
      { maxItems: 128 },
    ),
  },
  closed,
);

// ---- messages -----------------------------------------------------------------------------------------------------

/** agent -> controller, first on every link and in answer to `resync`. */
export const Hello = Type.Object(
  {
    type: Type.Literal('hello'),
    version: Version,
    agent_id: AgentId,
    /** The id of the agent's store, made with it: a new one means the journal restarted at seq 1. */
    store_id: Uuid,
    agent_version: Type.String({ minLength: 1, maxLength: 64 }),
    /** The greatest generation the agent has seen (0: none yet). */
    generation: Generation,
    /** The oldest seq still in the outbox (last seq + 1 when it is empty): the first the agent can still send. */
    outbox_first_seq: Seq,
    inventory: Inventory,
    snapshot: Snapshot,
  },
  closed,
);

/** controller -> agent, in answer to every `hello`. */
export const Welcome = Type.Object(
  {
    type: Type.Literal('welcome'),
    version: Version,
    agent_id: AgentId,
    /** The first seq the controller lacks: the agent sends from there. */
    resume_from: Seq,
    /** The controller's fencing generation: never less than the hello's. */
    generation: Generation,
  },
  closed,
);

/** The marker that replaces older events of one object when the outbox is full (docs/protocol.md, "Outbox full"). */
export const FoldedData = Type.Object(
  {
    /** The first folded seq; the marker's own seq is the last one. */
    from_seq: Seq,
    /** How many events were folded, the one whose seq the marker carries included. */
    count: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  },
  closed,
);

/** Kinds an event may have: every journal kind, and the outbox's fold marker. */
export type EventKind = JournalKind | 'outbox.folded';
export const EVENT_KINDS = [...(Object.keys(EVENT_DATA) as JournalKind[]), 'outbox.folded'] as const satisfies readonly EventKind[];

const EVENT_BASE = {
  type: Type.Literal('event'),
  version: Version,
  agent_id: AgentId,
  seq: Seq,
  at: Timestamp,
  instance_id: Nullable(Uuid),
  node_id: Nullable(Uuid),
  /** Why it changed: operation, drift, recovery, poll, monitor, adopt, ... */
  cause: Type.String({ minLength: 1, maxLength: 64 }),
};

/**
 * agent -> controller: one journal entry. The `data` schema is the kind's journal schema (agent/journal-events.ts);
 * its strings are bounded by the frame limit, not one by one, so that no committed entry can become unsendable.
 */
export const Event = Type.Union(
  [
    ...(Object.entries(EVENT_DATA) as [JournalKind, TSchema][]).map(([kind, data]) =>
      Type.Object({ ...EVENT_BASE, kind: Type.Literal(kind), data }, closed),
    ),
    Type.Object({ ...EVENT_BASE, kind: Type.Literal('outbox.folded'), data: FoldedData }, closed),
  ],
  { description: 'One journal entry, discriminated by kind.' },
);

/** controller -> agent: every event with seq <= `seq` is durably kept; the agent may trim them. */
export const Ack = Type.Object({ type: Type.Literal('ack'), version: Version, seq: Seq }, closed);

// ---- commands -----------------------------------------------------------------------------------------------------

const InstanceRef = { instance_id: Uuid };
const NodeRef = { node_id: Uuid };
const PowerTargetWord = Words(POWER_ACTIONS);
const PowerTimeout = Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'Seconds; soft-off and soft-reboot only.' }));

/** The create body of the REST API (seed 004), with metadata in a form the compiled validator takes. */
const CreateBody = Type.Object(
  {
    ...CreateInstanceBody.properties,
    metadata: Type.Optional(
      Type.Record(Type.String({ pattern: '^[\\s\\S]{1,255}$' }), Type.String({ minLength: 1, maxLength: 255 }), { ...closed, maxProperties: 128 }),
    ),
  },
  closed,
);

/** A node as the config gives it (agent/config/schema.ts NodeSchema), with its lists and BMC settings bounded. */
const BmcScalar = Type.Union([Type.String({ maxLength: 4096 }), Type.Number(), Type.Boolean(), Type.Null()]);
/** A setting: a scalar, or a flat mapping of scalars (the fake driver's `fake` options). */
const BmcSetting = Type.Union([BmcScalar, Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }), BmcScalar, { ...closed, maxProperties: 32 })]);
const EnrolNode = Type.Object(
  {
    ...NodeSchema.properties,
    macs: Type.Optional(Type.Array(Type.Object({ mac: NodeSchema.properties.macs.items.properties.mac, pxe: Type.Optional(Type.Boolean()) }, closed), { maxItems: 64 })),
    bmc: Type.Object(
      { driver: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 8 })]) },
      { additionalProperties: BmcSetting, maxProperties: 32 },
    ),
    adopt: Type.Optional(Nullable(Type.Object({ ...AdoptSchema.properties, addresses: Type.Optional(Type.Array(AdoptSchema.properties.addresses.items, { maxItems: 16 })) }, closed))),
  },
  closed,
);
const Adopt = Type.Object(
  { ...AdoptSchema.properties, addresses: Type.Optional(Type.Array(AdoptSchema.properties.addresses.items, { maxItems: 16 })), metadata: CreateBody.properties.metadata },
  closed,
);
const Network = Type.Object({ ...NetworkSchema.properties, dns: Type.Optional(Type.Array(NetworkSchema.properties.dns.items, { maxItems: 8 })) }, closed);

/** What a command asks, by `op`; each maps to one AgentService call (agent/service.ts) or a catalogue update. */
const op = <K extends string, P extends Record<string, TSchema>>(name: K, props: P) =>
  Type.Object({ op: Type.Literal(name), ...props }, closed);

const ProjectId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

export const CommandBody = Type.Union([
  op('instance.create', { project_id: ProjectId, user_id: Type.String({ minLength: 1, maxLength: 255 }), instance: CreateBody }),
  op('instance.delete', InstanceRef),
  op('instance.power', { ...InstanceRef, target: PowerTargetWord, timeout_s: PowerTimeout }),
  /** One of the OS operations, in the REST API's body: `{"reinstall": {...}}` and so on. */
  op('instance.operation', { ...InstanceRef, operation: ActionBody }),
  op('node.enrol', { node: EnrolNode }),
  op('node.remove', NodeRef),
  op('node.adopt', { ...NodeRef, adopt: Adopt }),
  op('node.power', { ...NodeRef, target: PowerTargetWord, timeout_s: PowerTimeout }),
  op('node.maintenance', { ...NodeRef, maintenance: Type.Boolean(), reason: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }),
  op('image.put', { image: ImageSchema }),
  op('image.delete', { uuid: Uuid }),
  op('instance-type.put', { instance_type: InstanceTypeSchema }),
  op('instance-type.delete', { uuid: Uuid }),
  op('network.put', { network: Network }),
  op('network.delete', { uuid: Uuid }),
]);
export type CommandBody = Static<typeof CommandBody>;
export type CommandOp = CommandBody['op'];

/** controller -> agent. */
export const Command = Type.Object(
  {
    type: Type.Literal('command'),
    version: Version,
    /** Unique per command: a repeat gets the first result and runs nothing. Also the action's request id. */
    command_id: CommandId,
    generation: Generation,
    command: CommandBody,
  },
  closed,
);

/** Protocol-level error codes (the `error` message, and a refused command's code besides AgentErrorCode). */
export const PROTOCOL_ERRORS = {
  /** The frame exceeds its limit. */
  PROTO_ERR_TOO_LARGE: { fatal: false },
  /** Not UTF-8, not JSON, a duplicate key, or not an object. */
  PROTO_ERR_MALFORMED: { fatal: false },
  /** A `version` other than the supported ones: the link is closed. */
  PROTO_ERR_UNKNOWN_VERSION: { fatal: true },
  /** A `type` that is not a message of this version. */
  PROTO_ERR_UNKNOWN_TYPE: { fatal: false },
  /** A message that a known type's schema refuses (with the path). */
  PROTO_ERR_SCHEMA: { fatal: false },
  /** A message the receiver does not take from that side (a command sent by an agent) or in that link state. */
  PROTO_ERR_UNEXPECTED: { fatal: false },
  /** A welcome or command whose generation is older than the agent's. */
  PROTO_ERR_STALE_GENERATION: { fatal: false },
  /** A welcome whose resume_from is beyond the agent's last seq + 1, or an ack beyond what was sent. */
  PROTO_ERR_AHEAD: { fatal: true },
  /** An event of another agent_id than the link's hello. */
  PROTO_ERR_AGENT_MISMATCH: { fatal: true },
  /** The receiver failed (its store): nothing was acted on; retry later. */
  PROTO_ERR_INTERNAL: { fatal: false },
} as const;
export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;

const ErrorCode = Words([...(Object.keys(PROTOCOL_ERRORS) as ProtocolErrorCode[]), ...(Object.keys(AGENT_ERRORS) as AgentErrorCode[])]);

/** agent -> controller, once per command (and again, the same, for each repeat of its command_id). */
export const CommandResult = Type.Object(
  {
    type: Type.Literal('command-result'),
    version: Version,
    command_id: CommandId,
    /**
     * accepted: a long operation's record is committed, its outcome comes as events; done: carried out (maintenance,
     * catalogue, enrolment, removal); refused: not acted on (the rules, or a stale generation).
     */
    status: Words(['accepted', 'done', 'refused'] as const),
    /** true when this is a repeat's answer: the stored first result, nothing run. */
    repeat: Type.Boolean(),
    /** The action the command opened (accepted), and what it is about. */
    request_id: Nullable(Type.String({ pattern: REQUEST_ID_PATTERN, maxLength: 40 })),
    instance_id: Nullable(Uuid),
    node_id: Nullable(Uuid),
    /** A power command found the server already there: nothing sent (REST: 202, accepted false). */
    already: Type.Boolean(),
    error: Nullable(Type.Object({ code: ErrorCode, message: Text(), retryable: Type.Boolean() }, closed)),
  },
  closed,
);

/** Either side: a message was refused and not acted on. Never answered with another error. */
export const ErrorMessage = Type.Object(
  {
    type: Type.Literal('error'),
    version: Version,
    code: ErrorCode,
    message: Text(),
    /** Where the schema failed (`/command/instance_id`), else null. */
    path: Nullable(Type.String({ maxLength: 256 })),
    /** What was refused, as far as it could be read. */
    in_reply_to: Type.Object(
      { type: Nullable(Type.String({ maxLength: 32 })), seq: Nullable(Seq), command_id: Nullable(CommandId) },
      closed,
    ),
    /** The sender closes the link after this message. */
    fatal: Type.Boolean(),
    /** With PROTO_ERR_UNKNOWN_VERSION: the versions the sender speaks. */
    supported_versions: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 16 }),
  },
  closed,
);

/** controller -> agent: send a fresh snapshot (a new `hello`); the agent pauses events until the next `welcome`. */
export const Resync = Type.Object({ type: Type.Literal('resync'), version: Version, reason: Text(256) }, closed);

export type Hello = Static<typeof Hello>;
export type Welcome = Static<typeof Welcome>;
export type Event = Static<typeof Event>;
export type Ack = Static<typeof Ack>;
export type Command = Static<typeof Command>;
export type CommandResult = Static<typeof CommandResult>;
export type ErrorMessage = Static<typeof ErrorMessage>;
export type Resync = Static<typeof Resync>;
export type Snapshot = Static<typeof Snapshot>;
export type Message = Hello | Welcome | Event | Ack | Command | CommandResult | ErrorMessage | Resync;
export type MessageType = Message['type'];

/** Every message's schema by type, and which side sends it. docs/protocol/<type>.json is each one's export. */
export const MESSAGES = {
  hello: { schema: Hello, from: 'agent' },
  welcome: { schema: Welcome, from: 'controller' },
  event: { schema: Event, from: 'agent' },
  ack: { schema: Ack, from: 'controller' },
  command: { schema: Command, from: 'controller' },
  'command-result': { schema: CommandResult, from: 'agent' },
  error: { schema: ErrorMessage, from: 'both' },
  resync: { schema: Resync, from: 'controller' },
} as const satisfies Record<MessageType, { schema: TSchema; from: 'agent' | 'controller' | 'both' }>;
export const MESSAGE_TYPES = Object.keys(MESSAGES) as MessageType[];
