/** Operational routes, answered without a token: liveness, readiness, metrics, the OpenAPI document. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import type { AgentService } from '../service.js';

export function registerOpsRoutes(app: FastifyInstance, service: AgentService, registry: Registry): void {
  const tags = ['operations'];
  const security: Record<string, string[]>[] = [];

  app.get('/healthz', { schema: { tags, security, summary: 'The process answers' } }, async () => ({ status: 'ok' }));

  app.get(
    '/readyz',
    { schema: { tags, security, summary: 'Ready for work: store open, start-up power reads done (503 with reasons)' } },
    async (_req, reply: FastifyReply) => {
      const r = service.ready();
      void reply.code(r.ready ? 200 : 503);
      return { status: r.ready ? 'ready' : 'not ready', reasons: r.reasons };
    },
  );

  app.get('/metrics', { schema: { tags, security, summary: 'Prometheus metrics' } }, async (_req, reply: FastifyReply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });

  app.get('/openapi.json', { schema: { tags, security, summary: 'This document' } }, async () => app.swagger());
}
