/**
 * A driver's BMC settings: the keys of a node's `bmc` mapping other than `driver`, declared by each driver as a
 * TypeBox schema (`DriverFactory.settings`). The registry validates a node's settings against the schemas of the
 * drivers it names; the core passes them through to the driver untouched (an opaque record).
 *
 * Keywords on a setting's schema:
 * - `x-secret: true`: the setting names a file holding a secret (a password). A driver reads the secret with
 *   `target.secret(key)`, only for keys marked so; the secret itself is never in the settings, logs or views.
 * - `x-path: true`: the setting is a file path; the config loader resolves a relative one against the directory of
 *   the configuration file.
 */
import { Type, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';

export const SECRET = 'x-secret';
export const PATH = 'x-path';

/** The settings of one node's BMC, as validated by its drivers' schemas. */
export type DriverSettings = Readonly<Record<string, unknown>>;

/** Where a driver's `check` reports a problem of one setting (`key`), as a sentence. */
export interface SettingsReport {
  error(key: string, message: string): void;
  warn(key: string, message: string): void;
}

/** What a driver's `check` knows of the node besides its settings. */
export interface SettingsContext {
  /** The node's ordered driver names. */
  drivers: readonly string[];
  /** The node's name, for messages. */
  nodeName: string;
}

const Str = (maxLength: number) => Type.String({ minLength: 1, maxLength });
/** A file path setting (`x-path`); `secret`: the file holds a secret (`x-secret`). */
export const FilePath = (secret = false) =>
  Type.String({ minLength: 1, maxLength: 4096, [PATH]: true, ...(secret ? { [SECRET]: true } : {}) });

/** Settings every driver shares: where the BMC is and who logs in. */
export const COMMON_SETTINGS = {
  address: Str(2048),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  username: Type.Optional(Str(255)),
  password_file: Type.Optional(FilePath(true)),
  insecure: Type.Optional(Type.Boolean({ default: false })),
} satisfies TProperties;

/** A driver's settings schema: the common settings plus its own; unknown keys are errors. */
export function driverSettings<P extends TProperties>(own: P) {
  return Type.Object({ ...COMMON_SETTINGS, ...own }, { additionalProperties: false });
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

/**
 * True when `value` satisfies `schema`: TypeBox's compiled check, compiled once per schema object (a node's settings
 * schema is the registry's cached one), tens of times faster than walking `Value.Errors` for a value without errors.
 * Callers that need the errors ask `Value.Errors` only when this is false.
 */
export function satisfies(schema: TSchema, value: unknown): boolean {
  let check = compiled.get(schema);
  if (check === undefined) compiled.set(schema, (check = TypeCompiler.Compile(schema)));
  return check.Check(value);
}

/** The keys of `schema` whose setting schema carries `keyword: true`. */
export function keysMarked(schema: TObject, keyword: typeof SECRET | typeof PATH): string[] {
  return Object.entries(schema.properties as Record<string, TSchema>)
    .filter(([, s]) => s[keyword] === true)
    .map(([k]) => k);
}

/** Host names (RFC 1123 labels), for drivers whose address is a host. */
export const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** The checks every node's settings get, whatever its drivers. */
export function checkCommonSettings(s: DriverSettings, report: SettingsReport, ctx: SettingsContext): void {
  if (s['insecure'] === true) {
    report.warn(
      'insecure',
      `TLS certificate verification is disabled for node ${ctx.nodeName}: its BMC can be impersonated and its credentials stolen`,
    );
  }
}
