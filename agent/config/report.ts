/**
 * How the configuration loader reports: `ConfigError`, the `path: message` collection, schema errors turned into
 * sentences (`messageFor`), and the defensive readers of the raw document shared by agent/config/load.ts and
 * agent/config/nodes.ts.
 */
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError, type ValueErrorIterator } from '@sinclair/typebox/errors';
import type { TSchema } from '@sinclair/typebox';
import { satisfies } from '../../drivers/settings.js';

/** An invalid configuration: `errors` lists every problem as `path: message`. */
export class ConfigError extends Error {
  readonly errors: string[];

  constructor(errors: string[], source?: string) {
    const head = `invalid configuration${source ? ` ${source}` : ''} (${errors.length} problem${errors.length === 1 ? '' : 's'})`;
    super(`${head}:\n  ${errors.join('\n  ')}`);
    this.name = 'ConfigError';
    this.errors = errors;
  }
}


export type Loose = Record<string, unknown>;

export class Problems {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  err(path: string, message: string): void {
    this.errors.push(`${path}: ${message}`);
  }
  warn(path: string, message: string): void {
    this.warnings.push(`${path}: ${message}`);
  }
}

export const isRec = (v: unknown): v is Loose => typeof v === 'object' && v !== null && !Array.isArray(v);
export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const rec = (v: unknown): Loose => (isRec(v) ? v : {});

/** JSON pointer (`/nodes/1/bmc/address`) -> `nodes[1].bmc.address`. */
export function pointerToPath(pointer: string): string {
  if (pointer === '') return '(root)';
  const segs = pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let out = '';
  for (const s of segs) {
    if (/^[0-9]+$/.test(s)) out += `[${s}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/**
 * `schema`'s errors for `value` as `path: message` lines; `base` is the JSON pointer of `value` in the file
 * (`/nodes/0/bmc`), and an unknown key at a pointer of `mutedPointers` is not reported (already reported otherwise).
 */
export function schemaErrors(schema: TSchema, value: unknown, mutedPointers: Set<string>, base = ''): string[] {
  // A value without errors (every node of a valid file) is not walked error by error.
  if (satisfies(schema, value)) return [];
  const found: { path: string; message: string; required: boolean }[] = [];
  const visit = (it: ValueErrorIterator): void => {
    for (const e of it) {
      if (e.type === ValueErrorType.ObjectAdditionalProperties && mutedPointers.has(base + e.path)) continue;
      // A union without its own message (mapping | null): report the errors of the mapping branch.
      if (e.type === ValueErrorType.Union && typeof e.schema['errorMessage'] !== 'string') {
        const branches = (e.schema['anyOf'] ?? []) as TSchema[];
        const idx = branches.findIndex((b) => b['type'] === 'object');
        const sub = e.errors[idx];
        if (isRec(e.value) && idx >= 0 && sub) {
          visit(sub);
          continue;
        }
      }
      found.push({
        path: pointerToPath(base + e.path),
        message: messageFor(e),
        required: e.type === ValueErrorType.ObjectRequiredProperty,
      });
    }
  };
  visit(Value.Errors(schema, value));
  // A missing key also fails its type check: say only that it is required.
  const missing = new Set(found.filter((f) => f.required).map((f) => f.path));
  const out = new Set<string>();
  for (const f of found) {
    if (missing.has(f.path) && !f.required) continue;
    out.add(`${f.path}: ${f.message}`);
  }
  return [...out];
}

/** Orders `path: message` lines by path (numeric-aware), keeping the order of lines with the same path. */
export function sortByPath(lines: string[]): string[] {
  const key = (l: string): string => l.slice(0, Math.max(0, l.indexOf(': ')));
  return lines
    .map((l, i) => ({ l, i, k: key(l) }))
    .sort((a, b) => a.k.localeCompare(b.k, 'en', { numeric: true }) || a.i - b.i)
    .map((x) => x.l);
}

function messageFor(e: ValueError): string {
  const s = e.schema as Loose;
  const custom = s['errorMessage'];
  const quoteHint = typeof e.value === 'number' || typeof e.value === 'boolean' ? ' (quote the value in YAML)' : '';
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const allowed = Object.keys(rec(s['properties']));
      return `unknown key (allowed here: ${allowed.join(', ')})`;
    }
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.Object:
      return typeof custom === 'string' ? custom : 'expected a mapping';
    case ValueErrorType.Array:
      return 'expected a list';
    case ValueErrorType.ArrayMinItems:
      return `expected at least ${String(s['minItems'])} item(s)`;
    case ValueErrorType.ArrayMaxItems:
      return `expected at most ${String(s['maxItems'])} items`;
    case ValueErrorType.ArrayUniqueItems:
      return 'items must be distinct';
    case ValueErrorType.Boolean:
      return 'expected true or false';
    case ValueErrorType.Integer:
      return 'expected an integer';
    case ValueErrorType.Number:
      return 'expected a number';
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `must be at least ${String(s['minimum'])}`;
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `must be at most ${String(s['maximum'])}`;
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.IntegerExclusiveMinimum:
      return `must be greater than ${String(s['exclusiveMinimum'])}`;
    case ValueErrorType.String:
      return typeof custom === 'string' ? `${custom}${quoteHint}` : `expected a string${quoteHint}`;
    case ValueErrorType.StringMinLength:
      return typeof custom === 'string' ? custom : 'must not be empty';
    case ValueErrorType.StringMaxLength:
      return `must be at most ${String(s['maxLength'])} characters`;
    case ValueErrorType.StringPattern:
      return typeof custom === 'string' ? custom : `does not match ${String(s['pattern'])}`;
    case ValueErrorType.Literal:
      return `must be ${JSON.stringify(s['const'])}`;
    case ValueErrorType.Null:
      return 'expected null';
    default:
      return typeof custom === 'string' ? custom : e.message;
  }
}

/** Records the first index of each key and reports later duplicates. */
export function checkUnique(
  items: unknown[],
  key: (item: Loose) => string | undefined,
  path: (i: number) => string,
  what: string,
  report: (path: string, message: string) => void,
): void {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    if (!isRec(item)) return;
    const k = key(item);
    if (k === undefined) return;
    const prev = first.get(k);
    if (prev === undefined) first.set(k, i);
    else report(path(i), `duplicate ${what} (also ${path(prev)})`);
  });
}

export const lower = (v: unknown): string | undefined => str(v)?.toLowerCase();
export const normMac = (v: unknown): string | undefined => str(v)?.toLowerCase().replace(/-/g, ':');

/** A key the schema gives a default: present once `Value.Default` ran (a missing one is a schema bug). */
export function must<T>(v: T | undefined, path: string): T {
  if (v === undefined) throw new Error(`internal error: the configuration schema has no default for ${path}`);
  return v;
}
