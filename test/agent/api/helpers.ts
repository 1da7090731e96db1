/** Builds the API over a StubService with three tokens: an admin (project `adminproj`), members of p1 and p2. */
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildApi, type ApiOptions } from '../../../agent/api/server.js';
import type { ApiToken } from '../../../agent/config/types.js';
import { StubService } from './stub-service.js';

export const ADMIN = 'tok-admin';
export const M1 = 'tok-member-p1';
export const M2 = 'tok-member-p2';
export const BASE = 'http://192.168.150.51:6385';
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const REQ_ID_RE = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function tokenMap(): Map<string, ApiToken> {
  return new Map<string, ApiToken>([
    [ADMIN, { token_file: '/x/a', project_id: 'adminproj', user_id: 'ops', roles: ['admin'] }],
    [M1, { token_file: '/x/1', project_id: 'p1', user_id: 'u1', roles: ['member'] }],
    [M2, { token_file: '/x/2', project_id: 'p2', user_id: 'u2', roles: ['member'] }],
  ]);
}

export interface Harness {
  app: FastifyInstance;
  svc: StubService;
  registry: Registry;
  logs: string[];
  now: { t: number };
  faults: { nodeId: string; faults: Record<string, unknown> }[];
}

export async function harness(over: Partial<ApiOptions> = {}, withFaults = false): Promise<Harness> {
  const svc = new StubService();
  const registry = new Registry();
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const now = { t: 1_000_000 };
  const faults: Harness['faults'] = [];
  const tokens = tokenMap();
  const app = await buildApi({
    service: svc,
    tokens: () => tokens,
    rateLimit: { per_token_per_s: 1000, burst: 1000 },
    pageSize: () => ({ default: 1000, max: 1000 }),
    maxBodyBytes: 16 * 1024,
    publicUrl: () => `${BASE}/`,
    agentId: 'rack-a12',
    registry,
    log: pino({ level: 'debug' }, sink),
    clock: () => now.t,
    ...(withFaults ? { fakeFaults: (nodeId: string, f: Record<string, unknown>) => void faults.push({ nodeId, faults: f }) } : {}),
    ...over,
  });
  return { app, svc, registry, logs, now, faults };
}

export function auth(token: string): Record<string, string> {
  return { 'x-auth-token': token };
}
