/**
 * Response declarations of the REST API, for the OpenAPI document (/openapi.json): each route's real success status
 * (201 with Location, 202, 204, 200) and the error statuses it can answer, with their bodies in the path family's
 * shape (agent/api/errors.ts: `{error_code, error_msg}` on v1 paths, nova faults on v2 / v2.1 paths).
 *
 * These schemas DOCUMENT replies; they do not shape them: server.ts sets a serializer compiler that ignores response
 * schemas (JSON.stringify, as without them), so a field missing here can never be dropped from a seed answer.
 * test/agent/api/openapi.test.ts validates every route's real replies against these declarations.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { AGENT_ERRORS, type AgentErrorCode } from '../errors.js';
import { INSTANCE_STATES } from '../model.js';
import { NOVA_FAULT_NAMES, type ApiFamily } from './errors.js';

const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);
const Str = (description?: string) => Type.String(description === undefined ? {} : { description });
/** An object keyed by free names (network uuid or name, metadata keys), each value of one schema. */
const MapOf = (value: TSchema, description: string) => Type.Object({}, { additionalProperties: value, description });
const Links = Type.Array(Type.Object({ href: Str(), rel: Str('self or bookmark') }, { additionalProperties: false }));

// ---- error bodies -------------------------------------------------------------------------------------------------

/** What each error status means, for the document. */
export const ERROR_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: "Bad input (the message says what is wrong), a malformed project id or one other than the token's (seed 001), " +
    'an unknown query parameter, or a state that does not allow the request',
  401: 'No X-Auth-Token, or an unknown one',
  403: 'Not allowed to this role (admin only)',
  404: "No such resource, another project's (members), or a malformed id",
  406: "The node's driver cannot do this (seed 004 NotAcceptable)",
  409: 'Another operation holds the instance or node, no free node, an address in use, maintenance, a repeated request id',
  413: 'The body is larger than api.max_body_bytes',
  415: 'A body that is not application/json in UTF-8, or a Content-Encoding other than identity',
  429: 'Beyond api.rate_limit for this token (or address); see Retry-After',
  500: "The agent's store failed (AGENT_ERR_STORE) or an unexpected error (AGENT_ERR_INTERNAL); nothing was accepted",
  503: 'The agent is not ready yet (start-up power reads); retry later',
};

/** The v1 error codes a status can carry (agent/errors.ts is the one mapping). */
function codesOf(status: number): AgentErrorCode[] {
  return (Object.keys(AGENT_ERRORS) as AgentErrorCode[]).filter((c) => AGENT_ERRORS[c].status === status);
}

/** seed 003's v1 error body, `error_code` one of those mapped to this status. */
export function v1ErrorSchema(status: number): TSchema {
  const codes = codesOf(status);
  return Type.Object(
    {
      error_code: Type.Unsafe<string>({ type: 'string', enum: codes }),
      error_msg: Str('Operator-facing; quotes at most 64 characters of caller input'),
    },
    { additionalProperties: false },
  );
}

/** nova's fault body for a status (`{"itemNotFound": {"message", "code"}}`); 429 adds `retryAfter`. */
export function novaFaultSchema(status: number): TSchema {
  const name = NOVA_FAULT_NAMES[status] ?? 'computeFault';
  const fault = Type.Object(
    {
      message: Str(),
      code: Type.Unsafe<number>({ type: 'integer', enum: [status] }),
      ...(status === 429 ? { retryAfter: Type.Optional(Str('Seconds, as Retry-After')) } : {}),
    },
    { additionalProperties: false },
  );
  return Type.Object({ [name]: fault }, { additionalProperties: false });
}

// ---- success bodies -----------------------------------------------------------------------------------------------

const InstanceError = Type.Object(
  {
    error_code: Str(),
    error_msg: Str("Admins: the engine's message; members: the step and a reason, no BMC internals"),
    error_type: Str(),
  },
  { additionalProperties: false },
);

const NetworkInfoEntry = Type.Object(
  {
    network: Nullable(Str()),
    port_type: Nullable(Str()),
    mac_address: Nullable(Str()),
    fixed_ips: Type.Array(
      Type.Object({ ip_address: Str(), version: Type.Unsafe<number>({ type: 'integer', enum: [4, 6] }) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);

/** seed 004's instance. */
export const InstanceView = Type.Object(
  {
    uuid: Str(),
    name: Str(),
    description: Nullable(Str()),
    instance_type_uuid: Nullable(Str()),
    image_uuid: Nullable(Str()),
    availability_zone: Nullable(Str()),
    network_info: MapOf(NetworkInfoEntry, 'Keyed by network uuid (an adopted address without one: its network name)'),
    links: Links,
    status: Type.Unsafe<string>({ type: 'string', enum: [...INSTANCE_STATES], description: 'The seed-003 state' }),
    power_state: Nullable(Str("Ironic's words: power on, power off, ...")),
    project_id: Str(),
    user_id: Str(),
    created_at: Str(),
    updated_at: Str(),
  },
  { additionalProperties: false },
);

export const InstanceList = Type.Object({ instances: Type.Array(InstanceView) }, { additionalProperties: false });

/** seed 003's status. */
export const StatusView = Type.Object(
  {
    state: Type.Unsafe<string>({ type: 'string', enum: [...INSTANCE_STATES] }),
    operation_state: Nullable(Str('<operation>-processing | -succeed | -failed')),
    error: Nullable(InstanceError),
  },
  { additionalProperties: false },
);

/** seed 004's power states. */
export const PowerStatesView = Type.Object(
  { power_state: Nullable(Str()), target_power_state: Nullable(Str()) },
  { additionalProperties: false },
);

export const ActionAccepted = Type.Object(
  { request_id: Str('The action: follow it under os-instance-actions/{request_id}') },
  { additionalProperties: false },
);

const FpingServer = Type.Object({ alive: Type.Boolean(), id: Str(), project_id: Str() }, { additionalProperties: false });
/** seed 000. */
export const FpingOne = Type.Object({ server: FpingServer }, { additionalProperties: false });
export const FpingMany = Type.Object({ servers: Type.Array(FpingServer) }, { additionalProperties: false });

const Ref = Type.Object({ id: Nullable(Str()), links: Links }, { additionalProperties: false });
const EmptyArray = Type.Array(Type.Unknown(), { maxItems: 0 });

/** seed 002's server; the OS-EXT-SRV-ATTR keys for admins only (nova's policy). */
export const ServerView = Type.Object(
  {
    server: Type.Object(
      {
        'OS-DCF:diskConfig': Str(),
        'OS-EXT-AZ:availability_zone': Str(),
        'OS-EXT-SRV-ATTR:host': Type.Optional(Str('Admins only: the agent id')),
        'OS-EXT-SRV-ATTR:hypervisor_hostname': Type.Optional(Nullable(Str('Admins only: the node name'))),
        'OS-EXT-SRV-ATTR:instance_name': Type.Optional(Str('Admins only')),
        'OS-EXT-STS:power_state': Type.Unsafe<number>({ type: 'integer', enum: [0, 1, 4] }),
        'OS-EXT-STS:task_state': Nullable(Str()),
        'OS-EXT-STS:vm_state': Str(),
        'OS-SRV-USG:launched_at': Nullable(Str()),
        'OS-SRV-USG:terminated_at': Nullable(Str()),
        accessIPv4: Str(),
        accessIPv6: Str(),
        addresses: MapOf(
          Type.Array(
            Type.Object(
              {
                'OS-EXT-IPS-MAC:mac_addr': Str(),
                version: Type.Unsafe<number>({ type: 'integer', enum: [4, 6] }),
                addr: Str(),
                'OS-EXT-IPS:type': Type.Unsafe<string>({ type: 'string', enum: ['fixed', 'floating'] }),
              },
              { additionalProperties: false },
            ),
          ),
          'Keyed by network name',
        ),
        config_drive: Str(),
        created: Str(),
        flavor: Ref,
        hostId: Str(),
        id: Str(),
        image: Ref,
        key_name: Type.Null(),
        links: Links,
        metadata: MapOf(Str(), 'From the create body'),
        name: Str(),
        progress: Type.Integer(),
        security_groups: EmptyArray,
        status: Str(),
        tenant_id: Str(),
        updated: Str(),
        user_id: Str(),
        'os-extended-volumes:volumes_attached': EmptyArray,
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const actionSummaryFields = {
  action: Str(),
  instance_uuid: Str(),
  message: Nullable(Str('Admins: the raw message; members: the step only')),
  project_id: Str(),
  request_id: Str(),
  start_time: Nullable(Str()),
  user_id: Str(),
};
/** seed 001, newest first, without events. */
export const ActionList = Type.Object(
  { instanceActions: Type.Array(Type.Object(actionSummaryFields, { additionalProperties: false })) },
  { additionalProperties: false },
);
/** seed 001, one action with its events; `traceback` for admins only (null otherwise). */
export const ActionOne = Type.Object(
  {
    instanceAction: Type.Object(
      {
        ...actionSummaryFields,
        events: Type.Array(
          Type.Object(
            {
              event: Str(),
              start_time: Nullable(Str()),
              finish_time: Nullable(Str()),
              result: Nullable(Type.Unsafe<string>({ type: 'string', enum: ['Success', 'Error'] })),
              traceback: Nullable(Str()),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/** An operator's node (never a BMC password). */
export const NodeView = Type.Object(
  {
    uuid: Str(),
    name: Str(),
    type: Str(),
    boot_mode: Type.Unsafe<string>({ type: 'string', enum: ['uefi', 'legacy'] }),
    driver: Nullable(Str()),
    bmc: Type.Object(
      {
        drivers: Type.Array(Str()),
        address: Str(),
        port: Nullable(Type.Integer()),
        username: Nullable(Str()),
        system_id: Nullable(Str()),
      },
      { additionalProperties: false },
    ),
    macs: Type.Array(Type.Object({ mac: Str(), pxe: Type.Boolean() }, { additionalProperties: false })),
    power_state: Nullable(Str()),
    target_power_state: Nullable(Str("Ironic's words; set while a node-level power request or enforcement runs")),
    maintenance: Type.Boolean(),
    maintenance_reason: Nullable(Str()),
    last_error: Nullable(InstanceError),
    instance_uuid: Nullable(Str()),
    enforce_power: Type.Boolean(),
    source: Type.Unsafe<string>({ type: 'string', enum: ['config', 'controller'] }),
    created_at: Str(),
    updated_at: Str(),
    links: Links,
  },
  { additionalProperties: false },
);
export const NodeList = Type.Object({ nodes: Type.Array(NodeView) }, { additionalProperties: false });

const NullableStr = () => Type.Union([Str(), Type.Null()]);
const NullableInt = () => Type.Union([Type.Integer(), Type.Null()]);
/** agent/upstream/types.ts LinkStatus, as /readyz shows it. */
export const UpstreamStatus = Type.Object(
  {
    state: Type.Unsafe<string>({ type: 'string', enum: ['disabled', 'idle', 'connecting', 'hello-sent', 'streaming', 'backing-off', 'closed'] }),
    since: Str(),
    url: NullableStr(),
    attempts: Type.Integer(),
    last_error: NullableStr(),
    last_ack_seq: NullableInt(),
    last_ack_at: NullableStr(),
    sent_seq: NullableInt(),
    generation: Type.Integer(),
    welcomes: Type.Integer(),
    /** The journal's last seq: what the controller lacks is last_seq - last_ack_seq. */
    last_seq: Type.Integer(),
  },
  { additionalProperties: false },
);

export const Health = Type.Object({ status: Type.Unsafe<string>({ type: 'string', enum: ['ok'] }) }, { additionalProperties: false });
export const Readiness = Type.Object(
  {
    status: Type.Unsafe<string>({ type: 'string', enum: ['ready', 'not ready'] }),
    reasons: Type.Array(Str()),
    /** The ICMP engine that runs (`raw`, `fping`, `fake`) and why it was chosen. */
    liveness: Type.Optional(Type.Object({ engine: Str(), reason: Str() }, { additionalProperties: false })),
    /** The upstream link (agent/upstream/types.ts LinkStatus): readiness never waits for it. */
    upstream: Type.Optional(UpstreamStatus),
  },
  { additionalProperties: false },
);

// ---- per-route declarations ---------------------------------------------------------------------------------------

export interface Success {
  status: number;
  description: string;
  /** The JSON body; none: the answer has no body. */
  schema?: TSchema;
  /** A body of another media type (text), instead of `schema`. */
  content?: Record<string, { schema: TSchema }>;
  headers?: Record<string, { type: 'string'; description: string }>;
}

/** Error statuses every route can answer: bad query/header input and the unexpected 500. */
const ALWAYS = [400, 415, 500] as const;
/** And every token-checked route: no or unknown token, rate limit. */
export const TOKEN_ERRORS = [...ALWAYS, 401, 429] as const;
/** And every route that reads a body: too large (the media type, 415, is already there). */
export const BODY_ERRORS = [413] as const;

/**
 * A route's `schema.response`: its success answers and its error statuses (each with the family's error body).
 * Public routes (no token) pass `[]` as `errors` and get only ALWAYS; token routes pass TOKEN_ERRORS plus theirs.
 */
export function responses(family: ApiFamily, ok: readonly Success[], errors: readonly number[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of ok) {
    const base = { description: s.description, ...(s.headers !== undefined ? { headers: s.headers } : {}) };
    if (s.content !== undefined) out[String(s.status)] = { ...base, content: s.content };
    else if (s.schema !== undefined) out[String(s.status)] = { ...s.schema, ...base };
    else out[String(s.status)] = Type.Null(base);
  }
  for (const status of [...new Set([...ALWAYS, ...errors])].sort((a, b) => a - b)) {
    const schema = family === 'v1' ? v1ErrorSchema(status) : novaFaultSchema(status);
    out[String(status)] = { ...schema, description: ERROR_DESCRIPTIONS[status] ?? 'Error' };
  }
  return out;
}
