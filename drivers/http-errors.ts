/**
 * How the HTTP port (drivers/ports.ts `HttpClient`) fails when no HTTP answer came: a transport error with the
 * peer's own code and whether the request was written in full. Kept apart from drivers/http.ts so a driver can read
 * it without loading undici. A driver maps these (drivers/redfish/errors.ts); an HTTP status is an answer, not this.
 */

export class HttpTransportError extends Error {
  /**
   * The Node or undici code: `ECONNREFUSED`, `ENOTFOUND`, `UND_ERR_CONNECT_TIMEOUT`, `UND_ERR_HEADERS_TIMEOUT`,
   * `UND_ERR_SOCKET`, a TLS code (`DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_TLS_CERT_ALTNAME_INVALID`, ...), `ABORTED`,
   * `CA_FILE` (the ca_file could not be read), `BODY_TOO_LARGE`, or `UNKNOWN`.
   */
  readonly code: string;
  /** True once the whole request was written to the socket: from then on the BMC may have acted on it. */
  readonly sent: boolean;

  constructor(code: string, sent: boolean, message: string) {
    super(message);
    this.name = 'HttpTransportError';
    this.code = code;
    this.sent = sent;
  }
}

export function isHttpTransportError(e: unknown): e is HttpTransportError {
  return e instanceof HttpTransportError;
}
