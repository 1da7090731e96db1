/**
 * Request schemas of the REST API (TypeBox, validated by fastify's Ajv with removeAdditional/coerceTypes off, so
 * unknown fields and wrong types are 400s). They also feed the OpenAPI document (/openapi.json).
 *
 * Path identifiers are checked before the body is read (agent/api/auth.ts), because a bad project id is a 400 and a
 * bad instance id a 404 (as nova); the patterns here document them.
 */
import { Type, type Static } from '@sinclair/typebox';
import { POWER_TARGET_ALIAS, POWER_TARGET_WORDS } from '../vocab.js';
import { PAGE_QUERY } from './paging.js';

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const PROJECT_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const REQUEST_ID_PATTERN = '^req-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

export const UUID_RE = new RegExp(UUID_PATTERN);
export const PROJECT_ID_RE = new RegExp(PROJECT_ID_PATTERN);
export const REQUEST_ID_RE = new RegExp(REQUEST_ID_PATTERN);

/** A crypt(3) string (`$6$salt$hash`, `$y$...`): the API refuses what looks like a clear-text password. */
const PASSWORD_HASH_PATTERN = '^\\$[0-9A-Za-z]+\\$[^\\s]+$';
/** RFC 1123 host name (labels of 1-63 letters, digits, hyphens). */
const HOSTNAME_PATTERN = '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$';

const Uuid = (description: string) => Type.String({ pattern: UUID_PATTERN, description });
/** A name: not empty after trimming, no control characters (C0, DEL, C1). */
export const NAME_PATTERN = '^(?!\\s*$)[^\\u0000-\\u001F\\u007F-\\u009F]*$';
/** Free text: no control characters (tab and newline excepted); may be empty. */
export const TEXT_PATTERN = '^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$';

const Text255 = (description: string) => Type.String({ minLength: 1, maxLength: 255, pattern: NAME_PATTERN, description });

// ---- path parameters ----------------------------------------------------------------------------------------------

const ProjectId = Type.String({ pattern: PROJECT_ID_PATTERN, description: "The caller's project (must match the token's)." });
export const ProjectParams = Type.Object({ project_id: ProjectId });
export const ProjectInstanceParams = Type.Object({ project_id: ProjectId, id: Uuid('Instance UUID.') });
export const InstanceParams = Type.Object({ id: Uuid('Instance UUID.') });
export const NodeParams = Type.Object({ id: Uuid('Node UUID.') });
export const ActionParams = Type.Object({
  project_id: ProjectId,
  id: Uuid('Instance (server) UUID.'),
  request_id: Type.String({ pattern: REQUEST_ID_PATTERN, description: 'The action: its request id, req-<uuid>.' }),
});

// ---- bodies -------------------------------------------------------------------------------------------------------

const SshKeys = Type.Array(Type.String({ minLength: 1, maxLength: 16384 }), {
  maxItems: 64,
  description: 'Public keys for the default user.',
});
const PasswordHash = Type.String({
  minLength: 4,
  maxLength: 1024,
  pattern: PASSWORD_HASH_PATTERN,
  description: 'crypt(3) hash of the root password (secret: never answered, never logged).',
});
const UserData = Type.String({ maxLength: 65536, description: 'cloud-init user data (secret: never answered).' });
const Hostname = Type.String({ minLength: 1, maxLength: 253, pattern: HOSTNAME_PATTERN, description: 'Host name of the installed OS.' });

export const CreateInstanceBody = Type.Object(
  {
    name: Text255('Instance name.'),
    description: Type.Optional(Type.String({ maxLength: 255, pattern: TEXT_PATTERN, description: 'Free text.' })),
    instance_type_uuid: Type.Optional(Uuid('Instance type (catalogue `instance_types`); nova flavor.')),
    image_uuid: Uuid('Image (catalogue `images`).'),
    availability_zone: Type.Optional(Text255('Availability zone (free text, answered as given).')),
    networks: Type.Optional(Type.Array(
      Type.Object(
        {
          uuid: Uuid('Network (catalogue `networks`).'),
          port_type: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Port type, recorded as given.' })),
        },
        { additionalProperties: false },
      ),
      { maxItems: 16 },
    )),
    metadata: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        type: 'object',
        additionalProperties: { type: 'string', minLength: 1, maxLength: 255 },
        propertyNames: { minLength: 1, maxLength: 255 },
        maxProperties: 128,
        description: 'Key/value pairs (1-255 characters each), answered as seed 002 `metadata`.',
      }),
    ),
    extra: Type.Optional(Type.Object(
      {
        node_id: Type.Optional(Uuid('Node to install on (default: the first free node of the instance type).')),
        hostname: Type.Optional(Hostname),
        ssh_keys: Type.Optional(SshKeys),
        password_hash: Type.Optional(PasswordHash),
        user_data: Type.Optional(UserData),
      },
      { additionalProperties: false, description: 'metald extensions.' },
    )),
  },
  { additionalProperties: false },
);
export type CreateInstanceBodyT = Static<typeof CreateInstanceBody>;

const InstallParams = (imageRequired: boolean) =>
  Type.Object(
    {
      image_uuid: imageRequired
        ? Uuid('Image to install.')
        : Type.Optional(Uuid('Image to install (default: the current one).')),
      hostname: Type.Optional(Hostname),
      ssh_keys: Type.Optional(SshKeys),
      password_hash: Type.Optional(PasswordHash),
      user_data: Type.Optional(UserData),
    },
    { additionalProperties: false },
  );

const Empty = Type.Object({}, { additionalProperties: false });

export const ACTION_NAMES = ['reinstall', 'switch-install', 'modify-ip', 'uninstall', 'change-password', 'retry'] as const;

export const ActionBody = Type.Object(
  {
    reinstall: Type.Optional(InstallParams(false)),
    'switch-install': Type.Optional(InstallParams(true)),
    'modify-ip': Type.Optional(Type.Object(
      {
        networks: Type.Array(
          Type.Object(
            {
              uuid: Uuid('Network (catalogue `networks`).'),
              port_type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
              fixed_ip: Type.Optional(
                Type.String({ minLength: 2, maxLength: 45, description: 'Address to use instead of one from the pool.' }),
              ),
            },
            { additionalProperties: false },
          ),
          { minItems: 1, maxItems: 16 },
        ),
      },
      { additionalProperties: false },
    )),
    uninstall: Type.Optional(Empty),
    'change-password': Type.Optional(Type.Object({ password_hash: PasswordHash }, { additionalProperties: false })),
    retry: Type.Optional(Empty),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    maxProperties: 1,
    description: 'Exactly one of the keys: the operation and its parameters.',
  },
);
export type ActionBodyT = Static<typeof ActionBody>;

/** The request words of `PUT .../states/power` (agent/vocab.ts). */
export const POWER_WORDS: readonly string[] = Object.keys(POWER_TARGET_WORDS);

export const PowerBody = Type.Object(
  {
    target: Type.Unsafe<string>({
      type: 'string',
      enum: [...POWER_WORDS],
      description: `Ironic's words, or the aliases ${Object.values(POWER_TARGET_ALIAS).join(', ')}.`,
    }),
    timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'Seconds; soft power off / soft rebooting only.' })),
  },
  { additionalProperties: false },
);
export type PowerBodyT = Static<typeof PowerBody>;

export const MaintenanceBody = Type.Object(
  {
    maintenance: Type.Boolean(),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: NAME_PATTERN, description: 'Only with maintenance: true.' })),
  },
  { additionalProperties: false },
);
export type MaintenanceBodyT = Static<typeof MaintenanceBody>;

/** Fault names and values are checked by the fake lab (the route maps its Error to a 400); here only their shape. */
export const FakeFaultsBody = Type.Unsafe<Record<string, boolean | number>>({
  type: 'object',
  propertyNames: { minLength: 1, maxLength: 64 },
  additionalProperties: { type: ['boolean', 'integer'] },
  maxProperties: 32,
  description: 'Fake driver faults: flags (true/false) and counts (whole numbers >= 0); {} clears them.',
});

// ---- query strings ------------------------------------------------------------------------------------------------

export const FpingQuery = Type.Object(
  {
    all_tenants: Type.Optional(
      Type.String({ description: "Present (any value but '0'/'false'): every project's instances; admin only." }),
    ),
    include: Type.Optional(Type.String({ description: 'Comma-separated instance UUIDs to ping (only these).' })),
    exclude: Type.Optional(Type.String({ description: 'Comma-separated instance UUIDs to leave out.' })),
    ...PAGE_QUERY,
  },
  { additionalProperties: false },
);
export type FpingQueryT = Static<typeof FpingQuery>;

/** `limit` and `marker` (agent/api/paging.ts): the query of the lists without parameters of their own. */
export const PageQuery = Type.Object(PAGE_QUERY, { additionalProperties: false });
export type PageQueryT = Static<typeof PageQuery>;
