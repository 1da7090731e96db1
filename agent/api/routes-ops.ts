/** Operational routes, answered without a token: liveness, readiness, metrics, the OpenAPI document. */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import type { AgentService } from '../service.js';
import type { LinkStatus } from '../upstream/types.js';
import { Health, Readiness, responses } from './responses.js';

/** The ICMP engine the daemon runs (`raw`, `fping`, `fake`) and why (agent/pinger/select.ts's reason). */
export interface LivenessEngineInfo {
  engine: string;
  reason: string;
}

/** The upstream link's status with the journal's last seq (/readyz's `upstream`). */
export type UpstreamInfo = LinkStatus & { last_seq: number };

export function registerOpsRoutes(
  app: FastifyInstance,
  service: AgentService,
  registry: Registry,
  liveness?: () => LivenessEngineInfo,
  upstream?: () => UpstreamInfo,
): void {
  const tags = ['operations'];
  const security: Record<string, string[]>[] = [];

  app.get(
    '/healthz',
    { schema: { tags, security, summary: 'The process answers', response: responses('v1', [{ status: 200, description: 'Alive', schema: Health }], []) } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags,
        security,
        summary: 'Ready for work: store open, start-up power reads done (503 with reasons); the ICMP engine that runs and why; the upstream link (never waited for)',
        response: responses(
          'v1',
          [
            { status: 200, description: 'Ready', schema: Readiness },
            { status: 503, description: 'Not ready; the reasons say why', schema: Readiness },
          ],
          [],
        ),
      },
    },
    async (_req, reply: FastifyReply) => {
      const r = service.ready();
      void reply.code(r.ready ? 200 : 503);
      return {
        status: r.ready ? 'ready' : 'not ready',
        reasons: r.reasons,
        ...(liveness ? { liveness: liveness() } : {}),
        ...(upstream ? { upstream: upstream() } : {}),
      };
    },
  );

  const textBody = { 'text/plain': { schema: Type.String({ description: 'Prometheus text exposition format 0.0.4' }) } };
  app.get(
    '/metrics',
    { schema: { tags, security, summary: 'Prometheus metrics', response: responses('v1', [{ status: 200, description: 'The metrics', content: textBody }], []) } },
    async (_req, reply: FastifyReply) => {
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    },
  );

  app.get(
    '/openapi.json',
    {
      schema: {
        tags,
        security,
        summary: 'This document',
        response: responses('v1', [{ status: 200, description: 'OpenAPI 3.0', schema: Type.Object({ openapi: Type.String() }) }], []),
      },
    },
    async () => app.swagger(),
  );
}
