/**
 * The JSON Schema files of the protocol (docs/protocol/<type>.json), generated from agent/upstream/protocol.ts by
 * scripts/protocol-schemas.ts and compared with the checked-in files by test/agent/upstream/protocol.test.ts, so the
 * files a controller validates with cannot drift from what the agent validates with.
 */
import type { TSchema } from '@sinclair/typebox';
import { MESSAGES, MESSAGE_TYPES, PROTOCOL_VERSION } from './protocol.js';

/** Keywords of the shared TypeBox schemas that are not JSON Schema (the config loader's messages): left out. */
const NOT_JSON_SCHEMA = new Set(['errorMessage']);

function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(strip);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (!NOT_JSON_SCHEMA.has(k)) out[k] = strip(x);
  return out;
}

/** The document of one message type, as it is written to disk. */
export function schemaDocument(type: keyof typeof MESSAGES): Record<string, unknown> {
  const { schema, from } = MESSAGES[type];
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://metald.dev/protocol/v${PROTOCOL_VERSION}/${type}.json`,
    title: `metald upstream protocol v${PROTOCOL_VERSION}: ${type} (sent by ${from === 'both' ? 'either side' : `the ${from}`})`,
    ...(strip(JSON.parse(JSON.stringify(schema as TSchema))) as Record<string, unknown>),
  };
}

/** File name (relative to docs/protocol/) -> its exact text. */
export function schemaFiles(): Map<string, string> {
  return new Map(MESSAGE_TYPES.map((t) => [`${t}.json`, `${JSON.stringify(schemaDocument(t), null, 2)}\n`]));
}
