/**
 * The raw configuration file (YAML) as a TypeBox schema: the shape of design.md 4.1 plus every key of
 * agent/config/types.ts. Unknown keys are errors everywhere (additionalProperties: false), except under
 * `adopt.metadata` (free string map) and `nodes[].bmc`, whose keys the drivers' settings schemas check.
 *
 * This schema only checks shapes and simple formats. Everything that needs arithmetic or cross-references
 * (CIDRs, pools, uniqueness, drivers, listen addresses) is checked in agent/config/load.ts, which converts durations
 * to milliseconds. `errorMessage` on a schema is the message load.ts reports when that schema fails.
 *
 * The `default` keywords here are the only defaults of the file (load.ts applies them with `applyDefaults`, ./defaults.ts, and
 * test/agent/config/docs.test.ts checks docs/config.md against them): an optional mapping has `default: {}` so that
 * the defaults of its keys apply when it is absent; a key that is null when absent has `default: null`.
 */
import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';

/** `500ms`, `30s`, `5m`, `2h`, `7d` (decimals allowed: `1.5s`); a plain number is seconds. */
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$';
export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const PROJECT_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const SHA256_PATTERN = '^[0-9a-fA-F]{64}$';
export const MAC_PATTERN = '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$';
/** Node names, node types, agent id: host-name-like, no spaces. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

function oneOf<const T extends readonly string[]>(values: T, opts: { default?: T[number] } = {}) {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    { errorMessage: `must be one of: ${values.join(', ')}`, ...opts },
  ) as unknown as TUnion<TLiteral<T[number]>[]>;
}

const Duration = (def?: string) =>
  Type.Union([Type.String({ pattern: DURATION_PATTERN }), Type.Number({ minimum: 0 })], {
    errorMessage: 'expected a duration such as "500ms", "30s", "5m", "2h", "7d" or a number of seconds',
    ...(def !== undefined ? { default: def } : {}),
  });

const Str = (opts: { pattern?: string; errorMessage?: string; maxLength?: number; default?: string } = {}) =>
  Type.String({ minLength: 1, maxLength: opts.maxLength ?? 1024, ...opts });

const Uuid = () => Type.String({ pattern: UUID_PATTERN, errorMessage: 'expected a UUID (8-4-4-4-12 hex digits)' });
const ProjectId = () =>
  Type.String({ pattern: PROJECT_ID_PATTERN, errorMessage: 'expected 1-64 characters of A-Z a-z 0-9 _ -' });
const Mac = () =>
  Type.String({ pattern: MAC_PATTERN, errorMessage: 'expected a MAC address such as "fa:16:3e:1c:d0:5a"' });
const Name = (def?: string) =>
  Type.String({
    pattern: NAME_PATTERN,
    errorMessage: 'expected 1-128 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)',
    ...(def !== undefined ? { default: def } : {}),
  });
/** A path to a file; relative paths resolve against the config file's directory. */
const FilePath = () => Str({ maxLength: 4096 });
/** `host:port`, `[v6]:port`; checked in load.ts. */
const Listen = (def: string) => Type.String({ minLength: 1, default: def });

const Obj = <P extends Record<string, TSchema>>(props: P, opts: { default?: Record<string, never> } = {}) =>
  Type.Object(props, { additionalProperties: false, ...opts });
/** `T` or null (null when absent); `message` is the error of a value that is neither. */
const OrNull = <T extends TSchema>(schema: T, message?: string) =>
  Type.Union([schema, Type.Null()], { default: null, ...(message !== undefined ? { errorMessage: message } : {}) });

export const ApiTokenSchema = Obj({
  token_file: FilePath(),
  project_id: ProjectId(),
  user_id: Str({ maxLength: 255 }),
  roles: Type.Optional(
    Type.Array(
      Type.String({
        pattern: '^[A-Za-z0-9_.-]{1,64}$',
        errorMessage: 'expected a role name (1-64 characters of A-Z a-z 0-9 . _ -)',
      }),
      { uniqueItems: true, default: ['member'] },
    ),
  ),
});

/** The largest `api.page_size.max`: a page is built, serialised and (os-fping) probed in one request. */
export const MAX_PAGE_SIZE = 10000;

export const ApiSchema = Obj(
  {
    listen: Type.Optional(Listen('127.0.0.1:6385')),
    public_url: Type.Optional(OrNull(Str(), 'expected a URL or null')),
    rate_limit: Type.Optional(
      Obj(
        {
          per_token_per_s: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 20 })),
          burst: Type.Optional(Type.Integer({ minimum: 1, default: 40 })),
        },
        { default: {} },
      ),
    ),
    max_body_bytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 65536 })),
    // List pages (nova's limit): `default` without a limit, `max` the largest limit taken (nova's osapi_max_limit).
    page_size: Type.Optional(
      Obj(
        {
          default: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 1000 })),
          max: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 1000 })),
        },
        { default: {} },
      ),
    ),
    tokens: Type.Optional(Type.Array(ApiTokenSchema, { default: [] })),
    },
  { default: {} },
);

export const BootSchema = Obj({
  listen: Type.Optional(Listen('0.0.0.0:8081')),
  public_url: Type.Optional(OrNull(Str(), 'expected a URL or null')),
  ramdisk: Type.Optional(
    Obj(
      {
        kernel: Type.Optional(OrNull(FilePath(), 'expected a path or null')),
        initrd: Type.Optional(OrNull(FilePath(), 'expected a path or null')),
        iso: Type.Optional(OrNull(FilePath(), 'expected a path or null')),
      },
      { default: {} },
    ),
  ),
});

export const UpstreamSchema = Obj({
  url: Str(),
  token_file: FilePath(),
  ca_file: Type.Optional(OrNull(FilePath(), 'expected a path or null')),
});

export const ImageSchema = Obj({
  uuid: Uuid(),
  name: Str({ maxLength: 255 }),
  url: Str({ maxLength: 4096 }),
  sha256: Type.String({ pattern: SHA256_PATTERN, errorMessage: 'expected 64 hexadecimal digits (SHA-256)' }),
  os: Str({ maxLength: 64 }),
  boot_method: Type.Optional(oneOf(['pxe', 'virtual-media'] as const, { default: 'pxe' })),
});

export const InstanceTypeSchema = Obj({
  uuid: Uuid(),
  name: Str({ maxLength: 255 }),
  node_type: Name(),
});

export const NetworkSchema = Obj({
  uuid: Uuid(),
  name: Str({ maxLength: 255 }),
  cidr: Str({ maxLength: 64 }),
  gateway: Type.Optional(OrNull(Str({ maxLength: 64 }), 'expected an IP or null')),
  dns: Type.Optional(Type.Array(Str({ maxLength: 64 }), { default: [] })),
  pool: Type.Optional(OrNull(Str({ maxLength: 160 }), 'expected "first-last" or null')),
});

export const AddressSchema = Obj({
  addr: Str({ maxLength: 64 }),
  mac: Mac(),
  version: Type.Optional(Type.Union([Type.Literal(4), Type.Literal(6)], { errorMessage: 'must be 4 or 6' })),
  type: Type.Optional(oneOf(['fixed', 'floating'] as const, { default: 'fixed' })),
  network: Str({ maxLength: 255 }),
});

export const AdoptSchema = Obj({
  instance_id: Uuid(),
  project_id: ProjectId(),
  user_id: Str({ maxLength: 255 }),
  name: Str({ maxLength: 255 }),
  addresses: Type.Optional(Type.Array(AddressSchema, { default: [] })),
  image_uuid: Type.Optional(Uuid()),
  instance_type_uuid: Type.Optional(Uuid()),
  metadata: Type.Optional(
    Type.Record(Type.String(), Type.String({ maxLength: 4096 }), {
      errorMessage: 'expected a mapping of strings to strings',
    }),
  ),
});

const DriverName = Str({ maxLength: 64 });

/**
 * A node's `bmc`: `driver` here; every other key is a setting of the named drivers, validated against their schemas
 * by agent/config/nodes.ts through the driver registry (drivers/registry.ts), hence `additionalProperties: true`.
 */
export const BmcSchema = Type.Object(
  {
    driver: Type.Union([DriverName, Type.Array(DriverName, { minItems: 1, uniqueItems: true })], {
      errorMessage: 'expected a driver name or a non-empty list of distinct names',
    }),
  },
  { additionalProperties: true },
);

export const NodeSchema = Obj({
  id: Uuid(),
  name: Name(),
  type: Type.Optional(Name('default')),
  boot_mode: Type.Optional(oneOf(['uefi', 'legacy'] as const, { default: 'uefi' })),
  macs: Type.Optional(
    Type.Array(Obj({ mac: Mac(), pxe: Type.Optional(Type.Boolean({ default: false })) }), { default: [] }),
  ),
  bmc: BmcSchema,
  maintenance: Type.Optional(Type.Boolean({ default: false })),
  enforce_power: Type.Optional(Type.Boolean({ default: false })),
  adopt: Type.Optional(OrNull(AdoptSchema)),
});

/**
 * The outbox's least bounds: a thousand entries, and four maximal events (4 x MAX_MESSAGE_BYTES of
 * agent/upstream/protocol.ts, which imports this file: a test keeps the two in step).
 */
export const OUTBOX_MIN_EVENTS = 1000;
export const OUTBOX_MIN_BYTES = 4 * 1024 * 1024;

export const RawConfigSchema = Obj({
  agent_id: Type.Optional(Name()),
  state_dir: Type.Optional(Str({ maxLength: 4096, default: '/var/lib/metald' })),
  log_level: Type.Optional(oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const, { default: 'info' })),
  on_failure: Type.Optional(oneOf(['power_off', 'leave'] as const, { default: 'power_off' })),
  terminated_retention: Type.Optional(Duration('7d')),
  api: Type.Optional(ApiSchema),
  boot: Type.Optional(OrNull(BootSchema)),
  upstream: Type.Optional(OrNull(UpstreamSchema)),
  outbox: Type.Optional(
    Obj(
      {
        max_events: Type.Optional(Type.Integer({ minimum: OUTBOX_MIN_EVENTS, maximum: 1_000_000_000, default: 1_000_000 })),
        max_bytes: Type.Optional(Type.Integer({ minimum: OUTBOX_MIN_BYTES, maximum: 2 ** 44, default: 512 * 1024 * 1024 })),
      },
      { default: {} },
    ),
  ),
  allow_fake_drivers: Type.Optional(Type.Boolean({ default: false })),
  power_sync: Type.Optional(
    Obj(
      {
        interval: Type.Optional(Duration('30s')),
        failures_before_unknown: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 3 })),
        concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 32 })),
      },
      { default: {} },
    ),
  ),
  timeouts: Type.Optional(
    Obj(
      {
        bmc_call: Type.Optional(Duration('30s')),
        power: Type.Optional(Duration('120s')),
        deploy: Type.Optional(Duration('1h')),
        soft_power: Type.Optional(Duration('300s')),
      },
      { default: {} },
    ),
  ),
  power_poll: Type.Optional(
    Type.Array(Duration(), { minItems: 1, maxItems: 100, default: ['1s', '2s', '2s', '4s', '6s', '8s', '12s'] }),
  ),
  bmc: Type.Optional(Obj({ min_gap: Type.Optional(Duration('200ms')) }, { default: {} })),
  liveness: Type.Optional(
    Obj(
      {
        engine: Type.Optional(oneOf(['auto', 'raw', 'fping', 'fake'] as const, { default: 'auto' })),
        fping_path: Type.Optional(Str({ maxLength: 4096, default: '/usr/bin/fping' })),
        interval: Type.Optional(Duration('30s')),
        jitter: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, default: 0.1 })),
        timeout: Type.Optional(Duration('500ms')),
        retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 20, default: 1 })),
        backoff: Type.Optional(Type.Number({ minimum: 1, maximum: 5, default: 1.5 })),
        packet_interval: Type.Optional(Duration('1ms')),
        hysteresis: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 2 })),
        batch: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, default: 128 })),
      },
      { default: {} },
    ),
  ),
  recovery: Type.Optional(
    Obj({ concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 16 })) }, { default: {} }),
  ),
  images: Type.Optional(Type.Array(ImageSchema, { default: [] })),
  instance_types: Type.Optional(Type.Array(InstanceTypeSchema, { default: [] })),
  networks: Type.Optional(Type.Array(NetworkSchema, { default: [] })),
  nodes: Type.Optional(Type.Array(NodeSchema, { default: [] })),
});

export type RawConfig = Static<typeof RawConfigSchema>;
export type RawNode = Static<typeof NodeSchema>;
export type RawBmc = Static<typeof BmcSchema>;
export type RawAdopt = Static<typeof AdoptSchema>;
export type RawNetwork = Static<typeof NetworkSchema>;
