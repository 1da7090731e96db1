/**
 * The link's back-off and the words of its failures (docs/protocol.md, "Back-off"; design 4.3): capped exponential
 * back-off with full jitter, and what an operator reads in `last_error` for each way a dial or a link can end.
 */

/**
 * The wait before the next dial: random * min(cap, base * 2^n), with n the failed attempts since the last welcome
 * before this one (the first failure after a welcome waits at most `base`). Full jitter: a fleet of agents does not
 * redial in step after a controller restart.
 */
export function backoffDelay(n: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(0, n), 52));
  const r = random();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.floor(unit * ceiling);
}

/** TLS verification failures (node's X509 codes): the certificate chain is not trusted by upstream.ca_file. */
const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA',
]);
const TLS_DATE_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** The words for an error ws or the socket gave while dialling or on the link. Never holds the token. */
export function describeDialError(err: Error & { code?: string }, url: string, handshakeTimeoutMs: number): string {
  const code = typeof err.code === 'string' ? err.code : '';
  if (TLS_TRUST_CODES.has(code)) return `TLS: certificate not trusted by upstream.ca_file (${code})`;
  if (TLS_DATE_CODES.has(code)) return `TLS: the controller's certificate is outside its validity period (${code})`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `TLS: the controller's certificate does not name ${hostOf(url)} (${code})`;
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return `TLS: handshake failed (${code})`;
  if (code === 'ECONNREFUSED') return `connection refused by ${hostOf(url)} (ECONNREFUSED)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `DNS: cannot resolve ${hostOf(url)} (${code})`;
  if (code === 'ETIMEDOUT' || /handshake has timed out/i.test(err.message)) {
    return `timeout: no WebSocket upgrade from ${hostOf(url)} within ${handshakeTimeoutMs} ms`;
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') return `connection reset by ${hostOf(url)} (${code})`;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return 'the controller sent a frame over the 1 MiB limit (link closed with 1009)';
  if (code !== '') return `${err.message.slice(0, 200)} (${code})`;
  return err.message.slice(0, 200);
}

/** The words for an HTTP answer to the upgrade that is not 101. */
export function describeUpgradeRefusal(status: number): string {
  if (status === 401) return 'controller refused the token (HTTP 401)';
  if (status === 403) return 'controller refused this agent (HTTP 403)';
  return `controller answered the upgrade with HTTP ${status}`;
}

/** host:port of a URL, for messages (no user info, no path). */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the controller';
  }
}

/** The URL as status and logs show it: without user info. */
export function publicUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
