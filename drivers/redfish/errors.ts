/**
 * Every way a Redfish call fails, turned into a BmcError by one table each (style 4): HTTP statuses, and transport
 * errors without an answer (drivers/http-errors.ts). Whether a code proves that nothing was sent is the code's own
 * (drivers/errors.ts): the rows pick codes accordingly.
 *
 * - No answer and the request was not written in full (refused, DNS, TLS handshake, connect timeout): nothing was
 *   sent. A certificate the CA does not vouch for is BMC_ERR_AUTH (not retryable: the BMC is not who it claims).
 * - No answer after the request left (socket closed, headers or body timeout): BMC_ERR_TIMEOUT, so drivers/bmc.ts
 *   reads power back before anything else and never re-sends.
 * - An answer: the BMC refused (401/403 auth, 404/405/501 unsupported, 412/429/503 busy) proves it did nothing;
 *   400/409/other 4xx it understood and declined (command failed); a 5xx may have done part of it (bad response).
 * `@Message.ExtendedInfo` (Redfish's error detail) becomes the message, so the operator reads the BMC's own words.
 */
import { BMC_ERRORS, BmcError, type BmcErrorCode } from '../errors.js';
import { isHttpTransportError } from '../http-errors.js';

/** HTTP status -> code; a status not listed takes its class's row (`4xx`, `5xx`). */
export const STATUS_CODES: Readonly<Record<string, BmcErrorCode>> = {
  '400': 'BMC_ERR_COMMAND_FAILED',
  '401': 'BMC_ERR_AUTH',
  '403': 'BMC_ERR_AUTH',
  '404': 'BMC_ERR_UNSUPPORTED',
  '405': 'BMC_ERR_UNSUPPORTED',
  '409': 'BMC_ERR_COMMAND_FAILED',
  '412': 'BMC_ERR_BUSY',
  '429': 'BMC_ERR_BUSY',
  '501': 'BMC_ERR_UNSUPPORTED',
  '503': 'BMC_ERR_BUSY',
  '4xx': 'BMC_ERR_COMMAND_FAILED',
  '5xx': 'BMC_ERR_BAD_RESPONSE',
};

/** TLS failures: the certificate or the handshake; the request never left. */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|EPROTO$|HOSTNAME_MISMATCH$|CA_FILE$)|_SIGNATURE|_CERT_/;

/** Transport errors: [test of the code, code when the request was not written, code when it was]. */
export const TRANSPORT_ROWS: readonly (readonly [RegExp, BmcErrorCode, BmcErrorCode, string])[] = [
  [TLS_CODE, 'BMC_ERR_AUTH', 'BMC_ERR_AUTH', 'TLS: the BMC certificate or handshake was not accepted'],
  [/^(UND_ERR_HEADERS_TIMEOUT|UND_ERR_BODY_TIMEOUT)$/, 'BMC_ERR_UNREACHABLE', 'BMC_ERR_TIMEOUT', 'no answer in time'],
  [/^ABORTED$/, 'BMC_ERR_ABORTED', 'BMC_ERR_ABORTED', 'aborted'],
  [/^BODY_TOO_LARGE$/, 'BMC_ERR_BAD_RESPONSE', 'BMC_ERR_BAD_RESPONSE', 'answer too large'],
  // Refused, unknown host, connect timeout, reset, closed socket, anything else: decided by whether it was written.
  [/.*/, 'BMC_ERR_UNREACHABLE', 'BMC_ERR_TIMEOUT', 'connection failed'],
];

export function statusCode(status: number): BmcErrorCode {
  return STATUS_CODES[String(status)] ?? (status >= 500 ? STATUS_CODES['5xx']! : STATUS_CODES['4xx']!);
}

/** A BmcError from an HTTP answer, with its status (412 is retried once with a fresh ETag). */
export class RedfishHttpError extends BmcError {
  readonly status: number;
  constructor(driver: string, what: string, status: number, body: string) {
    const detail = extendedInfo(body);
    super(statusCode(status), driver, `${what}: HTTP ${status}${detail ? `: ${detail}` : ''}`);
    this.status = status;
  }
}

/** A BmcError for an HTTP answer that is not a success. `what` names the call, e.g. `POST /redfish/v1/...`. */
export function httpError(driver: string, what: string, status: number, body: string): RedfishHttpError {
  return new RedfishHttpError(driver, what, status, body);
}

/** A BmcError for a call that got no HTTP answer. */
export function transportError(driver: string, what: string, e: unknown): BmcError {
  if (e instanceof BmcError) return e;
  const code = isHttpTransportError(e) ? e.code : 'UNKNOWN';
  const sent = isHttpTransportError(e) ? e.sent : true;
  const row = TRANSPORT_ROWS.find(([re]) => re.test(code))!;
  const bmcCode = sent ? row[2] : row[1];
  const proof = BMC_ERRORS[bmcCode].nothingSent ? '; nothing was sent' : '; the request may have reached the BMC';
  return new BmcError(bmcCode, driver, `${what}: ${row[3]} (${code}: ${clean(e instanceof Error ? e.message : String(e))})${proof}`);
}

interface MessageLike {
  MessageId?: unknown;
  Message?: unknown;
  Resolution?: unknown;
}

/**
 * The readable text of a Redfish error body: `error.message`, then each `@Message.ExtendedInfo` entry as
 * "Message (MessageId; resolution: Resolution)". Null when the body carries none (not JSON, no error object).
 */
export function extendedInfo(body: string): string | null {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof doc !== 'object' || doc === null) return null;
  const err = (doc as { error?: unknown }).error;
  const holder = (typeof err === 'object' && err !== null ? err : doc) as Record<string, unknown>;
  const parts: string[] = [];
  const infos = holder['@Message.ExtendedInfo'];
  for (const m of Array.isArray(infos) ? (infos as MessageLike[]) : []) {
    if (typeof m !== 'object' || m === null) continue;
    const text = typeof m.Message === 'string' ? m.Message : null;
    const tags = [typeof m.MessageId === 'string' ? m.MessageId : null, typeof m.Resolution === 'string' ? `resolution: ${m.Resolution}` : null]
      .filter((t): t is string => t !== null)
      .join('; ');
    if (text || tags) parts.push(`${text ?? '(no message)'}${tags ? ` (${tags})` : ''}`);
  }
  if (parts.length === 0 && typeof holder['message'] === 'string') parts.push(holder['message']);
  return parts.length === 0 ? null : clean(parts.join('; '));
}

/** One line, printable, bounded: a BMC's text goes into logs and API errors. */
function clean(s: string): string {
  const line = s.replace(/\p{Cc}+/gu, ' ').trim();
  return line.length > 600 ? `${line.slice(0, 600)}...` : line;
}
