/**
 * agent/config/defaults.ts applyDefaults against TypeBox's own Value.Default: the same result on the shipped
 * examples, on a many-node file, on every driver's settings schema, and on documents with wrong shapes put anywhere.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Value } from '@sinclair/typebox/value';
import { applyDefaults } from '../../../agent/config/defaults.js';
import { RawConfigSchema } from '../../../agent/config/schema.js';
import { parseYaml } from '../../../agent/config/yaml.js';
import { createDefaultRegistry } from '../../../drivers/registry.js';
import { writeFleet, DEFAULT_INTERVALS } from '../../../scripts/bench/fleet.js';
import type { TSchema } from '@sinclair/typebox';

const example = (name: string) => parseYaml(readFileSync(resolve(import.meta.dirname, '../../../examples', name), 'utf8'));
const same = (schema: TSchema, doc: unknown) =>
  expect(applyDefaults(schema, structuredClone(doc))).toStrictEqual(Value.Default(schema, structuredClone(doc)));

describe('applyDefaults', () => {
  it('gives what Value.Default gives on the examples and on a file of many adopted nodes', () => {
    same(RawConfigSchema, example('demo.yaml'));
    same(RawConfigSchema, example('metald.yaml'));
    same(RawConfigSchema, {});
    const fleet = writeFleet({ adopted: 20, free: 5, intervals: DEFAULT_INTERVALS });
    same(RawConfigSchema, parseYaml(readFileSync(fleet.configPath, 'utf8')));
  });

  it('gives what Value.Default gives on each driver settings schema', () => {
    const registry = createDefaultRegistry({ allowFake: true });
    for (const drivers of [...registry.knownNames().map((n) => [n]), registry.knownNames()]) {
      const { schema } = registry.settingsSchema(drivers);
      same(schema, {});
      same(schema, { address: 'fake://x', fake: { initial_power: 'on' } });
      same(schema, { address: 'x', port: 'not a port', insecure: null });
    }
  });

  it('gives what Value.Default gives when any key of a node or of the file holds any JSON value', () => {
    const base = example('metald.yaml') as Record<string, unknown>;
    const node = (base['nodes'] as Record<string, unknown>[])[1]!;
    const topKeys = Object.keys(RawConfigSchema.properties);
    const nodeKeys = [...Object.keys(node), 'adopt', 'maintenance', 'macs'];
    fc.assert(
      fc.property(fc.constantFrom(...topKeys), fc.constantFrom(...nodeKeys), fc.jsonValue(), fc.jsonValue(), (tk, nk, tv, nv) => {
        const doc = structuredClone(base);
        (doc['nodes'] as Record<string, unknown>[]).push({ ...structuredClone(node), [nk]: nv });
        doc[tk] = tv;
        same(RawConfigSchema, doc);
      }),
      { numRuns: 100 },
    );
  });
});
