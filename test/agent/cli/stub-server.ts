/**
 * A real HTTP server on 127.0.0.1 port 0 standing in for metald's REST API in metalctl's tests: it records every
 * request (method, path, headers, body) and answers from a route function with seed-shaped JSON and an
 * X-Compute-Request-Id header.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  text: string;
  body: unknown;
}

export interface StubAnswer {
  status: number;
  body?: unknown;
  /** Raw body text instead of JSON. */
  text?: string;
  headers?: Record<string, string>;
  /** Never answer (for request-timeout tests). */
  hang?: boolean;
}

export type StubRoute = (req: RecordedRequest) => StubAnswer | undefined;

export interface Stub {
  url: string;
  requests: RecordedRequest[];
  route: StubRoute;
  close(): Promise<void>;
}

let counter = 0;
export function requestId(): string {
  counter += 1;
  return `req-00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`;
}

export async function startStub(route: StubRoute): Promise<Stub> {
  const requests: RecordedRequest[] = [];
  const stub: Stub = { url: '', requests, route, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = undefined;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, text, body };
      requests.push(rec);
      const answer = stub.route(rec) ?? {
        status: 404,
        body: { error_code: 'AGENT_ERR_NOT_FOUND', error_msg: `no route ${rec.method} ${rec.url}` },
      };
      if (answer.hang) return;
      const payload = answer.text ?? (answer.body === undefined ? '' : JSON.stringify(answer.body));
      res.writeHead(answer.status, {
        'X-Compute-Request-Id': requestId(),
        ...(payload !== '' && answer.text === undefined ? { 'Content-Type': 'application/json' } : {}),
        ...answer.headers,
      });
      res.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  stub.url = `http://127.0.0.1:${port}`;
  stub.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return stub;
}

/** A Writable-like sink that keeps what was written. */
export class Sink {
  text = '';
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}
