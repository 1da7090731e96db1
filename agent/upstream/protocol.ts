/**
 * The upstream protocol (docs/protocol.md), version 1: one TypeBox schema per message, exported as JSON Schema under
 * docs/protocol/ (scripts/protocol-schemas.ts) so that a controller in any language validates both directions with the
 * same rules, and `parseMessage`, the one way the agent (and the reference controller) reads a frame.
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
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { POWER_ACTIONS, POWER_STATES } from '../../drivers/power.js';
import { ActionBody, CreateInstanceBody, REQUEST_ID_PATTERN, REQUEST_ID_RE, UUID_PATTERN } from '../api/schemas.js';
import { duplicateKey } from '../api/input.js';
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

// ---- parsing ------------------------------------------------------------------------------------------------------

/** Why a frame was refused; `code` is what the `error` answer carries. */
export interface ParseError {
  ok: false;
  code: Exclude<ProtocolErrorCode, 'PROTO_ERR_STALE_GENERATION' | 'PROTO_ERR_AHEAD' | 'PROTO_ERR_AGENT_MISMATCH' | 'PROTO_ERR_INTERNAL'>;
  message: string;
  /** JSON pointer of the first schema failure, else null. */
  path: string | null;
  /** What could be read of the refused message, for the error's in_reply_to. */
  in_reply_to: ErrorMessage['in_reply_to'];
}
export type ParseResult = { ok: true; message: Message } | ParseError;

export interface ParseOptions {
  /** The side the frame came from: a message the other side sends is PROTO_ERR_UNEXPECTED. */
  from?: 'agent' | 'controller';
}

let compiled: Record<MessageType, TypeCheck<TSchema>> | undefined;
/** The compiled validators, built on first use (~tens of ms) and kept. */
function validators(): Record<MessageType, TypeCheck<TSchema>> {
  compiled ??= Object.fromEntries(MESSAGE_TYPES.map((t) => [t, TypeCompiler.Compile(MESSAGES[t].schema as TSchema)])) as unknown as Record<MessageType, TypeCheck<TSchema>>;
  return compiled;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** A printable, bounded copy of a value from a refused message, for an error text. */
function echo(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}

function replyTo(v: Record<string, unknown>): ErrorMessage['in_reply_to'] {
  const type = typeof v.type === 'string' ? v.type.slice(0, 32) : null;
  const seq = Number.isSafeInteger(v.seq) && (v.seq as number) >= 1 ? (v.seq as number) : null;
  const id = typeof v.command_id === 'string' && REQUEST_ID_RE.test(v.command_id) ? v.command_id : null;
  return { type, seq, command_id: id };
}

const NO_REPLY: ErrorMessage['in_reply_to'] = { type: null, seq: null, command_id: null };

function fail(code: ParseError['code'], message: string, path: string | null = null, inReplyTo = NO_REPLY): ParseError {
  return { ok: false, code, message, path, in_reply_to: inReplyTo };
}

/** The byte limit of a frame of this type. */
export function maxBytesOf(type: string): number {
  return type === 'hello' ? MAX_HELLO_BYTES : MAX_MESSAGE_BYTES;
}

/**
 * Reads one frame: a typed message, or a typed error saying why not. Never throws on bad input. Checks in order:
 * size (MAX_HELLO_BYTES before parsing, then the type's own limit), UTF-8, JSON, duplicate keys, an object, a known
 * `version`, a known `type`, the side it came from, the type's schema.
 */
export function parseMessage(frame: string | Uint8Array, opts: ParseOptions = {}): ParseResult {
  let text: string;
  let bytes: number;
  if (typeof frame === 'string') {
    // A UTF-16 unit is at least one UTF-8 byte: a string longer than the limit is over it without counting.
    if (frame.length > MAX_HELLO_BYTES) return fail('PROTO_ERR_TOO_LARGE', `message exceeds ${MAX_HELLO_BYTES} bytes`);
    bytes = Buffer.byteLength(frame, 'utf8');
    if (bytes > MAX_HELLO_BYTES) return fail('PROTO_ERR_TOO_LARGE', `message exceeds ${MAX_HELLO_BYTES} bytes`);
    text = frame;
  } else {
    bytes = frame.byteLength;
    if (bytes > MAX_HELLO_BYTES) return fail('PROTO_ERR_TOO_LARGE', `message exceeds ${MAX_HELLO_BYTES} bytes`);
    try {
      text = decoder.decode(frame);
    } catch {
      return fail('PROTO_ERR_MALFORMED', 'message is not UTF-8');
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail('PROTO_ERR_MALFORMED', `message is not JSON: ${(e as Error).message.slice(0, 200)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fail('PROTO_ERR_MALFORMED', 'message is not a JSON object');
  }
  const v = value as Record<string, unknown>;
  const inReplyTo = replyTo(v);
  const dup = duplicateKey(text);
  if (dup !== null) {
    return fail('PROTO_ERR_MALFORMED', `duplicate key '${echo(dup.key)}' in ${dup.path.replace(/^body/, 'message')}`, null, inReplyTo);
  }
  if (!SUPPORTED_VERSIONS.includes(v.version as number)) {
    return fail(
      'PROTO_ERR_UNKNOWN_VERSION',
      `protocol version ${echo(v.version)} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`,
      '/version',
      inReplyTo,
    );
  }
  const type = v.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(MESSAGES, type)) {
    return fail('PROTO_ERR_UNKNOWN_TYPE', `unknown message type ${echo(type)} (known: ${MESSAGE_TYPES.join(', ')})`, '/type', inReplyTo);
  }
  const t = type as MessageType;
  const limit = maxBytesOf(t);
  if (bytes > limit) return fail('PROTO_ERR_TOO_LARGE', `a ${t} message exceeds ${limit} bytes`, null, inReplyTo);
  const from = MESSAGES[t].from;
  if (opts.from !== undefined && from !== 'both' && from !== opts.from) {
    return fail('PROTO_ERR_UNEXPECTED', `a ${t} message is sent by the ${from}, not the ${opts.from}`, '/type', inReplyTo);
  }
  const check = validators()[t];
  if (!check.Check(value)) {
    const first = schemaError(check, value);
    return fail('PROTO_ERR_SCHEMA', `${t}: ${first.path || '/'}: ${first.message}`, first.path || '/', inReplyTo);
  }
  return { ok: true, message: value as Message };
}

/**
 * The most telling schema failure: a union (the event's kinds, the command's ops) reports only "expected union", so
 * the failure inside the member whose discriminator matches is taken instead.
 */
function schemaError(check: TypeCheck<TSchema>, value: unknown): { path: string; message: string } {
  const found = check.Errors(value).First();
  if (found === undefined) return { path: '', message: 'invalid' };
  const first = { path: found.path, message: describe(found.schema, found.message) };
  const v = value as Record<string, unknown>;
  const union = v.type === 'event' ? { at: '', key: 'kind', schema: Event, value: v }
    : v.type === 'command' && v.command !== null && typeof v.command === 'object' ? { at: '/command', key: 'op', schema: CommandBody, value: v.command as Record<string, unknown> }
      : undefined;
  if (union !== undefined && (first.path === union.at || first.path.startsWith(`${union.at}/`))) {
    const member = union.schema.anyOf.find((m) => (m.properties as Record<string, { const?: unknown }>)[union.key]?.const === union.value[union.key]);
    if (member === undefined) return { path: `${union.at}/${union.key}`, message: `unknown ${union.key} ${echo(union.value[union.key])}` };
    const inner = memberCheck(member).Errors(union.value).First();
    if (inner !== undefined) return { path: `${union.at}${inner.path}`, message: describe(inner.schema, inner.message) };
  }
  return { path: first.path, message: first.message };
}

/** TypeBox's message, or the words allowed where the schema is a union of literals ("Expected union value"). */
function describe(schema: TSchema, message: string): string {
  const words = (schema.anyOf as TSchema[] | undefined)?.map((m) => (m.const === undefined ? m.type === 'null' ? null : undefined : m.const));
  if (words === undefined || words.some((w) => w === undefined)) return message;
  return `expected one of: ${words.map((w) => JSON.stringify(w)).join(', ')}`;
}

const memberChecks = new WeakMap<TSchema, TypeCheck<TSchema>>();
function memberCheck(schema: TSchema): TypeCheck<TSchema> {
  let c = memberChecks.get(schema);
  if (c === undefined) memberChecks.set(schema, (c = TypeCompiler.Compile(schema)));
  return c;
}

/**
 * The `error` message answering a refused frame, or any other refusal (`code` of PROTOCOL_ERRORS). `fatal` defaults
 * to the code's; a stale `welcome` passes true (docs/protocol.md: the agent closes the link after it).
 */
export function errorFor(
  e: { code: ProtocolErrorCode; message: string; path: string | null; in_reply_to: ErrorMessage['in_reply_to'] },
  opts: { fatal?: boolean } = {},
): ErrorMessage {
  return {
    type: 'error',
    version: PROTOCOL_VERSION,
    code: e.code,
    message: e.message.slice(0, MAX_TEXT),
    path: e.path === null ? null : e.path.slice(0, 256),
    in_reply_to: e.in_reply_to,
    fatal: opts.fatal ?? PROTOCOL_ERRORS[e.code].fatal,
    supported_versions: e.code === 'PROTO_ERR_UNKNOWN_VERSION' ? [...SUPPORTED_VERSIONS] : [],
  };
}
