/**
 * A real HTTP server on 127.0.0.1 port 0 standing in for metald's REST API in metalctl's tests: it records every
 * request (method, path, headers, body) and answers from a route function with seed-shaped JSON and an
 * X-Compute-Request-Id header (a route may set it, to name the action a mutation recorded); `actionAnswer` gives
 * the answer of one action, with X-Metald-Action-Finished once it is finished, as metald does.
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

/** metald's header on the answer of a finished action (docs/api.md): its ISO finish time; absent while in flight. */
export const ACTION_FINISHED_HEADER = 'X-Metald-Action-Finished';

/** One step event of an action (seed 001). */
export interface StubEvent {
  event: string;
  start_time: string;
  finish_time: string | null;
  result: string | null;
  traceback?: string | null;
}

/** What `GET .../os-instance-actions/{request_id}` shows at one moment. */
export interface ActionSnapshot {
  events: StubEvent[];
  /** The action's finish time: sent as X-Metald-Action-Finished; none while in flight. */
  finished?: string;
  /** seed 001's outcome: null success, else the failure. */
  message?: string | null;
}

/** The answer of `GET .../os-instance-actions/{request_id}` for `snap`, as metald gives it (body seed 001's). */
export function actionAnswer(
  action: { action: string; request_id: string; instance_uuid: string; project_id: string },
  snap: ActionSnapshot,
): StubAnswer {
  const body = {
    instanceAction: {
      action: action.action,
      events: snap.events.map((e) => ({ traceback: null, ...e })),
      instance_uuid: action.instance_uuid,
      message: snap.message ?? null,
      project_id: action.project_id,
      request_id: action.request_id,
      start_time: '2026-06-08T10:00:00.000000',
      user_id: 'f5a98f28f61e4fd19622f9016c481d48',
    },
  };
  return { status: 200, body, ...(snap.finished !== undefined ? { headers: { [ACTION_FINISHED_HEADER]: snap.finished } } : {}) };
}

/** A Writable-like sink that keeps what was written. */
export class Sink {
  text = '';
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}
