/**
 * Every error the REST API answers goes through here: one mapping from what went wrong (AgentError, a fastify
 * parsing/validation error, anything else) to an HTTP status and the body of the path's family.
 *
 * - v1 paths (and the operational ones): `{"error_code": "AGENT_ERR_...", "error_msg": "..."}` (seed 003);
 * - v2 / v2.1 paths: nova faults `{"<faultName>": {"message": "...", "code": <status>}}` (seeds 001, 002).
 *
 * A store failure (StoreError, or AgentError AGENT_ERR_STORE) answers 500 `AGENT_ERR_STORE` / nova `computeFault` with
 * its own fixed message; anything else unexpected answers 500 `AGENT_ERR_INTERNAL`. In both the detail (SQL, paths)
 * goes to the log only, under the request id.
 */
import type { FastifyError } from 'fastify';
import { AgentError, isAgentError, type AgentErrorCode } from '../errors.js';
import { StoreError } from '../store/types.js';

export type ApiFamily = 'v1' | 'nova';

/** nova's fault names by status (nova/api/openstack/wsgi.py `Fault._fault_names`); anything else is computeFault. */
export const NOVA_FAULT_NAMES: Readonly<Record<number, string>> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflict',
  413: 'overLimit',
  415: 'badMediaType',
  429: 'overLimit',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

/** Generic texts for answers that must not leak detail. */
export const GENERIC_MESSAGES = {
  unauthorized: 'The request you have made requires authentication.',
  internal: 'An unexpected error occurred; nothing was accepted. See the agent log with this X-Compute-Request-Id.',
  store: "The agent's store failed; nothing was accepted. Retry later; see the agent log with this X-Compute-Request-Id.",
  rateLimited: 'Rate limit exceeded for this token; retry after the number of seconds in Retry-After.',
} as const;

/** Where unexpected errors are logged (a pino logger). */
export interface ErrorLog {
  error(obj: object, msg: string): void;
}

/** What the error handler renders. */
export interface HttpError {
  status: number;
  code: AgentErrorCode;
  message: string;
  /** Seconds, for 429. */
  retryAfterS?: number | undefined;
}

/** v2 and v2.1 answer nova faults; everything else answers the v1 body. */
export function familyOf(url: string): ApiFamily {
  return /^\/v2(\.1)?(\/|$|\?)/.test(url) ? 'nova' : 'v1';
}

/** Builds the body of an error in the family's shape. */
export function renderError(family: ApiFamily, e: HttpError): Record<string, unknown> {
  if (family === 'v1') return { error_code: e.code, error_msg: e.message };
  const name = NOVA_FAULT_NAMES[e.status] ?? 'computeFault';
  const fault: Record<string, unknown> = { message: e.message, code: e.status };
  if (e.status === 429 && e.retryAfterS !== undefined) fault['retryAfter'] = String(e.retryAfterS);
  return { [name]: fault };
}

interface AjvIssue {
  instancePath?: string;
  /** Set by ajv on issues found by `propertyNames`. */
  propertyName?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `body`, `/a/0/b` -> `body.a[0].b` */
function fieldPath(context: string, instancePath: string | undefined): string {
  let out = context;
  for (const part of (instancePath ?? '').split('/').slice(1)) {
    const p = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(p) ? `[${p}]` : `.${p}`;
  }
  return out;
}

/** One readable line per schema violation, each naming the field (`body.extra.node_id: must match ...`). */
export function formatValidation(context: string, issues: readonly AjvIssue[]): string {
  const lines = new Set<string>();
  for (const i of issues) {
    const path = fieldPath(context, i.instancePath);
    const params = i.params ?? {};
    switch (i.keyword) {
      case 'additionalProperties':
        lines.add(`${path}: unknown field '${echo(String(params['additionalProperty']))}'`);
        break;
      case 'required':
        lines.add(`${path}: missing required field '${String(params['missingProperty'])}'`);
        break;
      case 'enum':
        lines.add(`${path}: must be one of ${(params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`);
        break;
      case 'minProperties':
      case 'maxProperties':
        lines.add(
          context === 'body' && (i.instancePath ?? '') === '' && params['limit'] === 1
            ? `${path}: must have exactly one key (the operation)`
            : `${path}: ${i.message ?? 'is invalid'}`,
        );
        break;
      case 'propertyNames':
        // ajv reports the offending name in a sibling issue; this one only says "property name is invalid".
        break;
      default:
        lines.add(
          i.propertyName !== undefined
            ? `${path}: key '${echo(i.propertyName)}': ${i.message ?? 'is invalid'}`
            : `${path}: ${i.message ?? 'is invalid'}`,
        );
    }
  }
  return [...lines].join('; ');
}

/** The most of a caller's input an error message quotes; longer input is cut and ends with an ellipsis. */
export const MAX_ECHO_CHARS = 64;

/** Caller input as an error message may quote it: at most MAX_ECHO_CHARS characters, then `…`. */
export function echo(input: string): string {
  const chars = [...input];
  return chars.length <= MAX_ECHO_CHARS ? input : `${chars.slice(0, MAX_ECHO_CHARS).join('')}…`;
}

/**
 * A message from a parser that may quote the caller's input (V8's JSON errors quote the text, fastify's quote
 * headers): quoted parts are cut with echo().
 */
function echoTail(message: string): string {
  return message.replace(/"([^"]*)"|'([^']*)'/g, (m, dq: string | undefined, sq: string | undefined) =>
    dq !== undefined ? `"${echo(dq)}"` : `'${echo(sq ?? '')}'`,
  );
}

export const UNSUPPORTED_MEDIA_TYPE = 'Unsupported media type: send the body as application/json in UTF-8 (charset=utf-8 or none)';

/** A 415: a body the API does not read (not JSON, not UTF-8, or encoded). */
export function unsupportedMediaType(message: string = UNSUPPORTED_MEDIA_TYPE): AgentError {
  return new AgentError('AGENT_ERR_UNSUPPORTED_MEDIA_TYPE', message);
}

/** A 400 that says what is wrong. */
export function badRequest(message: string): AgentError {
  return new AgentError('AGENT_ERR_BAD_REQUEST', message);
}

/** A 404 in the words nova uses. */
export function notFound(what: string, id: string): AgentError {
  return new AgentError('AGENT_ERR_NOT_FOUND', `${what} ${id} could not be found.`);
}

/**
 * The single mapping from a thrown value to an HTTP answer. `maxBodyBytes` is quoted in the oversized-body message.
 * Oversized bodies answer 413, a media type other than JSON in UTF-8 (or a Content-Encoding) 415 (design 4.2).
 */
export function toHttpError(err: unknown, log: ErrorLog, maxBodyBytes: number): HttpError {
  if (err instanceof StoreError) {
    log.error({ err }, 'store failure answered 500');
    return { status: 500, code: 'AGENT_ERR_STORE', message: GENERIC_MESSAGES.store };
  }
  if (isAgentError(err)) {
    if (err.code === 'AGENT_ERR_STORE') {
      log.error({ err }, 'store failure answered 500');
      return { status: err.status, code: err.code, message: GENERIC_MESSAGES.store };
    }
    if (err.code === 'AGENT_ERR_INTERNAL') {
      log.error({ err }, 'internal error answered 500');
      return { status: err.status, code: err.code, message: GENERIC_MESSAGES.internal };
    }
    const retry = err.details?.['retry_after_s'];
    return {
      status: err.status,
      code: err.code,
      message: err.message,
      retryAfterS: typeof retry === 'number' ? retry : undefined,
    };
  }
  const fe = err as Partial<FastifyError> & { validation?: AjvIssue[]; validationContext?: string };
  if (fe && Array.isArray(fe.validation)) {
    return {
      status: 400,
      code: 'AGENT_ERR_BAD_REQUEST',
      message: `Invalid input: ${formatValidation(fe.validationContext ?? 'body', fe.validation)}`,
    };
  }
  switch (fe?.code) {
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { status: 404, code: 'AGENT_ERR_NOT_FOUND', message: 'The resource could not be found.' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'AGENT_ERR_PAYLOAD_TOO_LARGE', message: `Invalid input: body is larger than ${maxBodyBytes} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'AGENT_ERR_UNSUPPORTED_MEDIA_TYPE', message: UNSUPPORTED_MEDIA_TYPE };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'AGENT_ERR_BAD_REQUEST', message: 'Invalid input: body is empty; expected a JSON object' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, code: 'AGENT_ERR_BAD_REQUEST', message: `Invalid input: ${echoTail(fe.message ?? 'malformed body')}` };
    default:
      break;
  }
  if (err instanceof SyntaxError) {
    return { status: 400, code: 'AGENT_ERR_BAD_REQUEST', message: `Invalid input: body is not valid JSON (${echoTail(err.message)})` };
  }
  // Other client errors fastify raises itself (bad URL, prototype poisoning, ...) keep their 4xx as a 400/404.
  const sc = fe?.statusCode;
  if (typeof sc === 'number' && sc >= 400 && sc < 500) {
    if (sc === 404) return { status: 404, code: 'AGENT_ERR_NOT_FOUND', message: 'The resource could not be found.' };
    return { status: 400, code: 'AGENT_ERR_BAD_REQUEST', message: `Invalid input: ${echoTail(fe.message ?? 'bad request')}` };
  }
  log.error({ err }, 'unexpected error answered 500');
  return { status: 500, code: 'AGENT_ERR_INTERNAL', message: GENERIC_MESSAGES.internal };
}
