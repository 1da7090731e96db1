/**
 * docs/config.md against the schema (agent/config/schema.ts), key by key: every key of the schema has a row with the
 * default the schema gives it, and every row names a key the schema has. `nodes[].bmc` is `driver` plus the settings
 * of every driver metald ships (drivers/*: their settings schemas).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Type, type TSchema } from '@sinclair/typebox';
import { BmcSchema, RawConfigSchema } from '../../../agent/config/schema.js';
import { createDefaultRegistry } from '../../../drivers/registry.js';

const DOC = resolve(import.meta.dirname, '../../../docs/config.md');

interface SchemaKey {
  path: string;
  schema: TSchema;
  required: boolean;
}

/** `nodes[].bmc` as the docs describe it: `driver` and the settings of every shipped driver. */
function bmcKeys(): TSchema {
  const registry = createDefaultRegistry({ allowFake: true });
  const settings = registry.settingsSchema(registry.knownNames()).schema;
  return Type.Object({ ...BmcSchema.properties, ...settings.properties }, { additionalProperties: false });
}

const objectBranch = (s: TSchema): TSchema | undefined =>
  s['type'] === 'object' ? s : ((s['anyOf'] ?? []) as TSchema[]).find((b) => b['type'] === 'object');

/** Rows of the `| key | type | default | meaning |` tables, as `full.path -> default cell`. */
function documentedKeys(md: string): Map<string, string> {
  const rows = new Map<string, string>();
  let prefix = '';
  let inKeyTable = false;
  for (const line of md.split('\n')) {
    const heading = /^#{2,3} (.*)$/.exec(line);
    const sub = /^`([^`]+)`:$/.exec(line);
    if (heading) {
      const names = [...(heading[1] as string).matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
      prefix = names.length === 1 ? `${names[0] as string}.` : '';
    } else if (sub) {
      prefix = `${sub[1] as string}.`;
    }
    if (!line.startsWith('|')) {
      inKeyTable = false;
      continue;
    }
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells[0] === 'key' && cells[2] === 'default') {
      inKeyTable = true;
      continue;
    }
    if (!inKeyTable || /^-+$/.test(cells[0] ?? '')) continue;
    for (const m of (cells[0] as string).matchAll(/`([^`]+)`/g)) rows.set(`${prefix}${m[1] as string}`, cells[2] as string);
  }
  return rows;
}

/** Every key of the schema that docs/config.md must document (see the rules in the test below). */
function schemaKeys(documented: Map<string, string>): SchemaKey[] {
  const out: SchemaKey[] = [];
  const walk = (obj: TSchema, prefix: string): void => {
    const required = new Set((obj['required'] ?? []) as string[]);
    for (const [name, schema] of Object.entries((obj['properties'] ?? {}) as Record<string, TSchema>)) {
      const path = `${prefix}${name}`;
      const key = { path, schema, required: required.has(name) };
      const nested = path === 'nodes[].bmc' ? bmcKeys() : objectBranch(schema);
      const items = schema['type'] === 'array' ? objectBranch(schema['items'] as TSchema) : undefined;
      if (nested) {
        // A mapping: its keys are documented; the mapping's own row is optional.
        if (documented.has(path)) out.push(key);
        walk(nested, `${path}.`);
      } else if (items && [...documented.keys()].some((k) => k.startsWith(`${path}[].`))) {
        // A list of mappings documented item key by item key.
        if (documented.has(path)) out.push(key);
        walk(items, `${path}[].`);
      } else {
        out.push(key);
      }
    }
  };
  walk(RawConfigSchema, '');
  return out;
}

/** How docs/config.md writes a default value. */
function render(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(render).join(', ')}]`;
  return String(v);
}

describe('docs/config.md', () => {
  const documented = documentedKeys(readFileSync(DOC, 'utf8'));
  const keys = schemaKeys(documented);

  it('finds the key tables', () => {
    expect(documented.size).toBeGreaterThan(60);
    expect(documented.get('liveness.retries')).toBe('`1`');
    expect(documented.get('nodes[].bmc.insecure')).toBe('`false`');
  });

  it('documents every key of the schema, with the default the schema gives it', () => {
    const problems: string[] = [];
    for (const k of keys) {
      const cell = documented.get(k.path);
      if (cell === undefined) {
        problems.push(`${k.path}: not documented`);
        continue;
      }
      const def: unknown = k.schema['default'];
      if (k.required) {
        if (cell !== 'required') problems.push(`${k.path}: the schema requires it, the docs say ${cell}`);
      } else if (def === null) {
        if (!cell.startsWith('null')) problems.push(`${k.path}: the schema default is null, the docs say ${cell}`);
      } else if (typeof def === 'object' && def !== null && !Array.isArray(def)) {
        if (cell !== 'see below') problems.push(`${k.path}: a mapping, the docs say ${cell} (expected "see below")`);
      } else if (def !== undefined) {
        const want = `\`${render(def)}\``;
        if (!cell.startsWith(want)) problems.push(`${k.path}: the schema default is ${want}, the docs say ${cell}`);
      } else if (cell === 'required' || cell.startsWith('`') || cell.startsWith('null')) {
        problems.push(`${k.path}: the schema has no default, the docs say ${cell}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('documents no key the schema lacks', () => {
    const known = new Set(keys.map((k) => k.path));
    const walked = new Set<string>();
    const addPrefixes = (p: string): void => {
      const parts = p.split('.');
      for (let i = 1; i < parts.length; i++) walked.add(parts.slice(0, i).join('.').replace(/\[\]$/, ''));
    };
    keys.forEach((k) => addPrefixes(k.path));
    const extra = [...documented.keys()].filter((k) => !known.has(k) && !walked.has(k));
    expect(extra).toEqual([]);
  });
});
