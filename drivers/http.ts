/**
 * The real HTTP port (drivers/ports.ts `HttpClient`) on undici, for the Redfish driver. One keep-alive connection
 * pool per BMC origin and TLS setting, one socket by default (a BMC serves one session at a time well). TLS is
 * verified against the request's `caFile` (read when its pool is made) or the system CAs; `insecure` turns
 * verification off (the driver logs that). Every failure without an HTTP answer is an HttpTransportError that says
 * whether the request had been written in full (drivers/http-errors.ts). A response body is capped. undici is
 * imported when the first pool is made.
 */
import { readFile } from 'node:fs/promises';
import type { Dispatcher, Pool } from 'undici';
import { HttpTransportError } from './http-errors.js';
import type { HttpClient, HttpRequest, HttpResponse } from './ports.js';

export interface UndiciHttpOptions {
  /** Sockets per origin. Default 1: drivers/bmc.ts sends one command at a time per BMC, and BMCs serve few sockets. */
  connections?: number;
  /** How long an idle socket is kept. Default 30 s. */
  keepAliveMs?: number;
  /** Connect timeout. Default 10 s (the call's own deadline usually ends it sooner). */
  connectTimeoutMs?: number;
  /** Largest response body accepted. Default 4 MiB. */
  maxBodyBytes?: number;
}

export class UndiciHttpClient implements HttpClient {
  private readonly pools = new Map<string, Promise<Pool>>();
  private closed = false;

  constructor(private readonly opts: UndiciHttpOptions = {}) {}

  async request(req: HttpRequest): Promise<HttpResponse> {
    if (this.closed) throw new HttpTransportError('CLOSED', false, 'the HTTP client is closed');
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      throw new HttpTransportError('INVALID_URL', false, `not a URL: ${JSON.stringify(req.url.slice(0, 200))}`);
    }
    const pool = await this.pool(url.origin, req);
    return this.dispatch(pool, url, req);
  }

  /** Closes every pool (agent stop). Later requests fail without being sent. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map(async (p) => (await p).close()));
  }

  private pool(origin: string, req: HttpRequest): Promise<Pool> {
    const tls = origin.startsWith('https:') ? (req.insecure ? 'insecure' : `ca:${req.caFile ?? 'system'}`) : 'plain';
    const key = `${origin} ${tls}`;
    let p = this.pools.get(key);
    if (!p) {
      p = this.makePool(origin, req, tls);
      this.pools.set(key, p);
      p.catch(() => this.pools.delete(key));
    }
    return p;
  }

  private async makePool(origin: string, req: HttpRequest, tls: string): Promise<Pool> {
    let ca: string | undefined;
    if (tls.startsWith('ca:') && req.caFile !== undefined) {
      try {
        ca = await readFile(req.caFile, 'utf8');
      } catch (e) {
        throw new HttpTransportError('CA_FILE', false, `cannot read ca_file ${req.caFile}: ${(e as Error).message}`);
      }
    }
    // Loaded on first use: a daemon without a Redfish node never loads undici.
    const { Pool } = await import('undici');
    return new Pool(origin, {
      connections: this.opts.connections ?? 1,
      keepAliveTimeout: this.opts.keepAliveMs ?? 30_000,
      connect: {
        timeout: this.opts.connectTimeoutMs ?? 10_000,
        ...(tls === 'insecure' ? { rejectUnauthorized: false } : {}),
        ...(ca !== undefined ? { ca } : {}),
      },
    });
  }

  private dispatch(pool: Dispatcher, url: URL, req: HttpRequest): Promise<HttpResponse> {
    const maxBody = this.opts.maxBodyBytes ?? 4 * 1024 * 1024;
    return new Promise<HttpResponse>((resolve, reject) => {
      let sent = false;
      let abort: ((err?: Error) => void) | null = null;
      let settled = false;
      const chunks: Buffer[] = [];
      let size = 0;
      let status = 0;
      let headers: Record<string, string> = {};
      const signal = req.signal;
      const onAbort = () => {
        const err = new HttpTransportError('ABORTED', sent, `request aborted${sent ? ' after it was sent' : ' before it was sent'}`);
        if (abort) abort(err);
        else fail(err);
      };
      const done = () => {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (e: unknown) => {
        if (settled) return;
        done();
        reject(toTransportError(e, sent));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const timeout = req.timeoutMs;
      pool.dispatch(
        {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: req.method,
          headers: { ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}), ...req.headers },
          ...(req.body !== undefined ? { body: req.body } : {}),
          ...(timeout !== undefined ? { headersTimeout: timeout, bodyTimeout: timeout } : {}),
        },
        {
          onConnect(a) {
            abort = a;
            if (signal?.aborted) onAbort();
          },
          onRequestSent() {
            sent = true;
          },
          onHeaders(code, raw) {
            sent = true;
            status = code;
            headers = parseHeaders(raw);
            return true;
          },
          onData(chunk) {
            size += chunk.length;
            if (size > maxBody) {
              abort?.(new HttpTransportError('BODY_TOO_LARGE', true, `response body over ${maxBody} bytes`));
              return false;
            }
            chunks.push(chunk);
            return true;
          },
          onComplete() {
            if (settled) return;
            done();
            resolve({ status, headers, body: Buffer.concat(chunks).toString('utf8') });
          },
          onError: fail,
        } as Dispatcher.DispatchHandlers & { onRequestSent(): void },
      );
    });
  }
}

function parseHeaders(raw: Buffer[] | string[] | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toString().toLowerCase();
    const v = raw[i + 1]!.toString();
    out[k] = out[k] === undefined ? v : `${out[k]}, ${v}`;
  }
  return out;
}

function toTransportError(e: unknown, sent: boolean): HttpTransportError {
  if (e instanceof HttpTransportError) return e;
  const err = e as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const code = typeof err.code === 'string' && err.code !== 'UND_ERR_CONNECT' ? err.code : typeof err.cause?.code === 'string' ? err.cause.code : 'UNKNOWN';
  const message = typeof err.message === 'string' ? err.message : String(e);
  return new HttpTransportError(code, sent, message);
}
