/**
 * Answers that Node's HTTP layer would otherwise write itself, without our header or body: a request it cannot
 * parse (bad request line, unknown method, header too large, bad Content-Length or chunking, missing Host) reaches
 * the server's 'clientError' event, and an `Expect` other than 100-continue its 'checkExpectation' event. Both get
 * a full raw response: `X-Compute-Request-Id: req-<uuid>` and the error body of the path's family.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { familyOf, renderError, type ApiFamily, type HttpError } from './errors.js';

/** Node's parser codes -> our answer (anything else unparseable: 400). */
const CLIENT_ERRORS: Readonly<Record<string, { status: number; reason: string; message: string }>> = {
  HPE_HEADER_OVERFLOW: { status: 431, reason: 'Request Header Fields Too Large', message: 'Request header fields too large' },
  HPE_INVALID_METHOD: { status: 405, reason: 'Method Not Allowed', message: 'Unknown HTTP method' },
  HPE_INVALID_CONTENT_LENGTH: { status: 400, reason: 'Bad Request', message: 'Invalid input: bad Content-Length' },
  HPE_UNEXPECTED_CONTENT_LENGTH: { status: 400, reason: 'Bad Request', message: 'Invalid input: Content-Length together with Transfer-Encoding' },
  HPE_INVALID_TRANSFER_ENCODING: { status: 400, reason: 'Bad Request', message: 'Invalid input: bad Transfer-Encoding' },
  HPE_INVALID_CHUNK_SIZE: { status: 400, reason: 'Bad Request', message: 'Invalid input: bad chunked encoding' },
  HPE_REQUEST_TIMEOUT: { status: 408, reason: 'Request Timeout', message: 'The request was not received in time' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, reason: 'Request Timeout', message: 'The request was not received in time' },
};

/** The path family from the first bytes Node saw (`GET /v2/... HTTP/1.1`), v1 when unknown. */
function familyOfRaw(raw: Buffer | undefined): ApiFamily {
  const line = raw?.subarray(0, 256).toString('latin1').split('\r\n')[0] ?? '';
  const target = line.split(' ')[1] ?? '';
  return familyOf(target);
}

/** A complete HTTP/1.1 response with our header and body, then the connection is closed. */
function rawResponse(status: number, reason: string, family: ApiFamily, e: HttpError): string {
  const body = JSON.stringify(renderError(family, e));
  return [
    `HTTP/1.1 ${status} ${reason}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Compute-Request-Id: req-${randomUUID()}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/** fastify's `clientErrorHandler`. */
export function answerClientError(err: Error & { code?: string; rawPacket?: unknown }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const known = err.code !== undefined ? CLIENT_ERRORS[err.code] : undefined;
  const a = known ?? { status: 400, reason: 'Bad Request', message: 'Invalid input: the request could not be parsed as HTTP/1.1' };
  const code = a.status === 405 ? 'AGENT_ERR_METHOD_NOT_ALLOWED' : 'AGENT_ERR_BAD_REQUEST';
  socket.end(rawResponse(a.status, a.reason, familyOfRaw(Buffer.isBuffer(err.rawPacket) ? err.rawPacket : undefined), { status: a.status, code, message: a.message }));
}

/** The server's 'checkExpectation' listener: an `Expect` we do not meet is a 417 in the path's family. */
export function answerExpectation(req: IncomingMessage, res: ServerResponse): void {
  const family = familyOf(req.url ?? '');
  const e: HttpError = { status: 417, code: 'AGENT_ERR_BAD_REQUEST', message: "Expectation failed: only 'Expect: 100-continue' is supported" };
  const body = JSON.stringify(renderError(family, e));
  res.writeHead(417, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'X-Compute-Request-Id': `req-${randomUUID()}`,
    Connection: 'close',
  });
  res.end(body);
}
