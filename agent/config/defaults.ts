/**
 * The schema's `default`s applied to a document: TypeBox's `Value.Default`, with its results, in one walk.
 *
 * `Value.Default` (0.34) visits every property of an object twice (once to see whether it yields a value, once to
 * assign it), so each level of nesting doubles the work below it, and it checks each union branch with the
 * interpreted `Value.Check`. For a file of 1,000 nodes that was ~250 ms of the start. This walk visits each value
 * once and checks union branches with the compiled check (drivers/settings.ts `satisfies`); the rules are TypeBox's
 * own, line for line (the missing value takes a clone of `default`; an object value is laid over an object default;
 * an array's items and an object's known properties are walked; a union takes the first branch whose defaulted value
 * passes, else the value as it was). Kinds this file does not walk (Record, Ref, Tuple, ...) are handed to
 * `Value.Default` itself. test/agent/config/defaults.test.ts compares the two on valid and invalid documents.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { satisfies } from '../../drivers/settings.js';

// TypeBox's value guard: arrays are objects here (an array where a mapping belongs is laid over `{}` as TypeBox does).
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function valueOrDefault(schema: TSchema, value: unknown): unknown {
  // TypeBox clones the default whatever the value; the clone is only used when the value is missing or a mapping.
  if (value !== undefined && !isObject(value)) return value;
  const dflt: unknown = 'default' in schema ? schema['default'] : undefined;
  if (value !== undefined && !isObject(dflt) && typeof dflt !== 'function') return value;
  const clone: unknown = typeof dflt === 'function' ? (dflt as () => unknown)() : copy(dflt);
  if (value === undefined) return clone;
  return isObject(clone) ? Object.assign(clone, value) : value;
}

/**
 * Value.Clone (its result, key for key: own names then symbols, into a plain object) for plain mappings, arrays and
 * primitives, without its per-value type guards; anything else is handed to Value.Clone.
 */
function copy(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(copy);
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return Value.Clone(v);
  const out: Record<string, unknown> = {};
  for (const k of Object.getOwnPropertyNames(v)) out[k] = copy((v as Record<string, unknown>)[k]);
  for (const k of Object.getOwnPropertySymbols(v)) Reflect.set(out, k, copy(Reflect.get(v, k)));
  return out;
}

/** `[Mutable]` like `Value.Default(schema, value)`: returns the defaulted value, changing `value` in place. */
export function applyDefaults(schema: TSchema, value: unknown): unknown {
  switch (schema[Kind]) {
    case 'Array': {
      const items = schema['items'] as TSchema;
      const arr = Array.isArray(value) ? value : valueOrDefault(schema, value);
      if (!Array.isArray(arr)) return arr;
      for (let i = 0; i < arr.length; i++) arr[i] = applyDefaults(items, arr[i]);
      return arr;
    }
    case 'Object': {
      const obj = valueOrDefault(schema, value);
      if (!isObject(obj)) return obj;
      const props = schema['properties'] as Record<string, TSchema>;
      const known = Object.getOwnPropertyNames(props);
      for (const key of known) {
        const v = applyDefaults(props[key] as TSchema, obj[key]);
        if (v !== undefined) obj[key] = v;
      }
      const extra = schema['additionalProperties'] as unknown;
      if (!(isObject(extra) && typeof (extra as TSchema)[Kind] === 'string' && 'default' in extra)) return obj;
      for (const key of Object.getOwnPropertyNames(obj)) {
        if (!known.includes(key)) obj[key] = applyDefaults(extra as TSchema, obj[key]);
      }
      return obj;
    }
    case 'Union': {
      const defaulted = valueOrDefault(schema, value);
      for (const branch of schema['anyOf'] as TSchema[]) {
        const result = applyDefaults(branch, copy(defaulted));
        if (satisfies(branch, result)) return result;
      }
      return defaulted;
    }
    case 'Date':
    case 'Import':
    case 'Intersect':
    case 'Record':
    case 'Ref':
    case 'This':
    case 'Tuple':
      return Value.Default(schema, value);
    default:
      return valueOrDefault(schema, value);
  }
}
