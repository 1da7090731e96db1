/**
 * Reading a frame of the upstream protocol (docs/protocol.md, "Reading a frame in metald"): `parseMessage` returns a
 * typed message or a typed refusal and never throws on bad input; `errorFor` makes the `error` message answering a
 * refusal. The schemas are ./protocol.ts's.
 */
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { REQUEST_ID_RE } from '../api/schemas.js';
import { duplicateKey } from '../api/input.js';
import {
  CommandBody, Event, MAX_HELLO_BYTES, MAX_TEXT, MAX_MESSAGE_BYTES, MESSAGES, MESSAGE_TYPES, PROTOCOL_ERRORS, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
  type ErrorMessage, type Message, type MessageType, type ProtocolErrorCode,
} from './protocol.js';

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
