/**
 * The local REST API (design 4.2): `buildApi(opts)` returns a fastify instance with every route registered and
 * ready; agent/main.ts calls `listen()`. Tests use `inject()`.
 *
 * Per request, in order: request id (`X-Compute-Request-Id: req-<uuid>`, also the RequestContext's request_id) ->
 * auth hook (rate limit, token, policy, URL identifiers; agent/api/auth.ts) -> body parsing and schema validation ->
 * handler -> one error handler for everything that went wrong (agent/api/errors.ts) -> the answer waits for the
 * store's group commit (every commit so far on disk) and is written.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ApiToken } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { RequestContext } from '../model.js';
import type { AgentService } from '../service.js';
import { AUTH_HEADER, authenticate } from './auth.js';
import type { ApiDeps } from './deps.js';
import { badRequest, echo, familyOf, renderError, toHttpError } from './errors.js';
import { checkRequestInput, duplicateKey } from './input.js';
import type { PageSize } from './paging.js';
import { answerClientError, answerExpectation } from './raw-errors.js';
import { createHttpMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { registerNodeRoutes } from './routes-nodes.js';
import { registerNovaRoutes } from './routes-nova.js';
import { registerOpsRoutes, type LivenessEngineInfo, type UpstreamInfo } from './routes-ops.js';
import { registerStatusRoutes, type StatusOptions } from './routes-status.js';
import { registerV1Routes } from './routes-v1.js';
import type { ViewEnv } from './views.js';

export interface ApiOptions {
  service: AgentService;
  /** Token value -> its grant; called per request, so a SIGHUP reload takes effect at once. */
  tokens: () => Map<string, ApiToken>;
  rateLimit: { per_token_per_s: number; burst: number };
  /** List pages (api.page_size), read per request. */
  pageSize: () => PageSize;
  /** Larger bodies answer 413 (`AGENT_ERR_PAYLOAD_TOO_LARGE`). */
  maxBodyBytes: number;
  /** Base URL for links and Location (no trailing slash needed). */
  publicUrl: () => string;
  agentId: string;
  /** Metrics are created on this registry (never prom-client's global one). */
  registry: Registry;
  log: Logger;
  /** ms since the epoch; the rate limiter's clock. Default Date.now. */
  clock?: () => number;
  /**
   * Test/demo only: registers admin-only `PUT /v1/nodes/{id}/fake-faults` (body: the faults object, 204).
   * @throws Error naming the problems when the faults are invalid (unknown fault, wrong type, out of range): a 400.
   */
  fakeFaults?: (nodeId: string, faults: Record<string, unknown>) => void;
  /** The ICMP engine that runs and why (shown by /readyz); absent: /readyz says nothing of it. */
  liveness?: () => LivenessEngineInfo;
  /** The upstream link's status (shown by /readyz; readiness never waits for it); absent: /readyz says nothing of it. */
  upstream?: () => UpstreamInfo;
  /**
   * The store's durability barrier (Store.durable): every answer waits for it before it is written, so no answer
   * shows a commit that a power loss could still undo; a failed sync turns the answer into a 500 AGENT_ERR_STORE.
   * Absent: answers do not wait (tests of the API alone).
   */
  durable?: () => Promise<void> | null;
  /**
   * The status page (`GET /status`, `/v1/status/snapshot`, `/v1/status/events`; docs/status-page.md) over this store.
   * Absent: those routes are not registered (tests of the API alone).
   */
  status?: StatusOptions;
}

export const REQUEST_ID_HEADER = 'X-Compute-Request-Id';

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: opts.log.child({ component: 'api' }) as FastifyBaseLogger,
    // One line per request is logged by the onResponse hook below (with the route template and status).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    bodyLimit: opts.maxBodyBytes,
    genReqId: () => `req-${randomUUID()}`,
    // Long ids still reach the auth hook (401 before 404) and its UUID check (404); longer ones are a 404 too.
    routerOptions: { maxParamLength: 1024 },
    // Requests Node cannot parse: a full raw answer with our header and body (agent/api/raw-errors.ts).
    clientErrorHandler: answerClientError,
    // Node would answer a missing Host itself (a bare 400): the onRequest hook below answers it in our shape.
    http: { requireHostHeader: false },
    requestIdHeader: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: false, allowUnionTypes: true } },
    // Errors raised before routing (a URL that does not decode, ...): same bodies and header as everything else.
    frameworkErrors: (err, req, reply) => {
      const e = toHttpError(err, req.log, opts.maxBodyBytes);
      void (reply as unknown as FastifyReply)
        .code(e.status)
        .header(REQUEST_ID_HEADER, req.id)
        .type('application/json; charset=utf-8')
        .send(renderError(familyOf(req.url), e));
    },
  });

  // Route response schemas document the answers (agent/api/responses.ts, /openapi.json); they must not shape them.
  // fast-json-stringify would drop every field a schema does not list: replies stay JSON.stringify, byte for byte
  // what they were before the schemas existed.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  app.server.on('checkExpectation', answerExpectation);
  // Route templates by method, for 405 + Allow on a known path with another method.
  const routes: { re: RegExp; methods: Set<string> }[] = [];
  app.addHook('onRoute', (r) => {
    const re = new RegExp(`^${r.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]+/g, '[^/]+')}$`);
    let entry = routes.find((x) => x.re.source === re.source);
    if (entry === undefined) routes.push((entry = { re, methods: new Set() }));
    for (const m of Array.isArray(r.method) ? r.method : [r.method]) entry.methods.add(m);
  });
  const allowedMethods = (path: string): string[] =>
    [...new Set(routes.filter((r) => r.re.test(path)).flatMap((r) => [...r.methods]))].sort();

  const base = () => opts.publicUrl().replace(/\/+$/, '');
  const limiter = new RateLimiter(opts.rateLimit, opts.clock ?? Date.now);
  const metrics = createHttpMetrics(opts.registry);
  const nodeNames = (ctx: RequestContext) => (nodeId: string): string | null => {
    // The node lookup is admin-only at the API level; the view reads the name with an internal admin context.
    const internal: RequestContext = { ...ctx, user_id: 'metald-api', roles: ['admin'], is_admin: true };
    try {
      return opts.service.getNode(internal, nodeId).name;
    } catch {
      return null;
    }
  };
  const deps: ApiDeps = {
    service: opts.service,
    agentId: opts.agentId,
    base,
    pageSize: opts.pageSize,
    viewEnv: (ctx, urlProject): ViewEnv => ({
      base: base(),
      agentId: opts.agentId,
      urlProject,
      isAdmin: ctx.is_admin,
      nodeName: nodeNames(ctx),
    }),
  };

  // Only JSON bodies: anything else is a 415 (FST_ERR_CTP_INVALID_MEDIA_TYPE, mapped in errors.ts). fastify's own
  // JSON parser (prototype poisoning refused), then a duplicate key is a 400: JSON.parse would keep the last silently.
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    parseJson(req, body as string, (err: Error | null, value?: unknown) => {
      if (err) return done(err, undefined);
      const dup = duplicateKey(body as string);
      if (dup !== null) return done(badRequest(`Invalid input: ${dup.path}: duplicate key '${echo(dup.key)}'`), undefined);
      done(null, value);
    });
  });

  app.addHook('onRequest', async (req) => {
    if (req.raw.httpVersionMajor === 1 && req.raw.httpVersionMinor >= 1 && req.headers.host === undefined) {
      throw badRequest('Invalid input: HTTP/1.1 requires a Host header');
    }
    authenticate(req, { tokens: opts.tokens, limiter });
  });
  app.addHook('preParsing', async (req, _reply, payload) => {
    checkRequestInput(req);
    return payload;
  });
  app.addHook('onSend', async (req, reply, payload) => {
    void reply.header(REQUEST_ID_HEADER, req.id);
    // Group commit: what this request committed (and any commit before it) is on disk before the answer leaves.
    const pending = opts.durable?.();
    if (pending) {
      try {
        await pending;
      } catch (err) {
        const e = toHttpError(err, req.log, opts.maxBodyBytes);
        void reply.code(e.status).type('application/json; charset=utf-8');
        return JSON.stringify(renderError(familyOf(req.url), e));
      }
    }
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.is404 || req.routeOptions.url === undefined ? 'unmatched' : req.routeOptions.url;
    metrics.observe({ method: req.method, route, status: reply.statusCode }, reply.elapsedTime / 1000);
    req.log.info(
      { method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 },
      'request completed',
    );
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toHttpError(err, req.log, opts.maxBodyBytes);
    if (e.retryAfterS !== undefined) void reply.header('Retry-After', String(e.retryAfterS));
    return reply.code(e.status).type('application/json; charset=utf-8').send(renderError(familyOf(req.url), e));
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const allow = allowedMethods(path);
    if (allow.length > 0) {
      const e = toHttpError(
        new AgentError('AGENT_ERR_METHOD_NOT_ALLOWED', `Method ${echo(req.method)} is not allowed on this path; allowed: ${allow.join(', ')}`),
        req.log,
        opts.maxBodyBytes,
      );
      return reply.code(405).header('Allow', allow.join(', ')).type('application/json; charset=utf-8').send(renderError(familyOf(req.url), e));
    }
    const e = toHttpError(new AgentError('AGENT_ERR_NOT_FOUND', `No route for ${echo(req.method)} ${echo(req.url.split('?')[0] ?? '')}`), req.log, opts.maxBodyBytes);
    const family = familyOf(req.url);
    return reply
      .code(404)
      .type('application/json; charset=utf-8')
      .send(renderError(family, family === 'nova' ? { ...e, message: 'The resource could not be found.' } : e));
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'metald local REST API',
        version: '1',
        description: 'Bare-metal provisioning agent: the seed-shaped API (docs/api.md). Every response carries X-Compute-Request-Id.',
      },
      components: { securitySchemes: { token: { type: 'apiKey', in: 'header', name: 'X-Auth-Token' } } },
      security: [{ token: [] }],
    },
  });

  registerOpsRoutes(app, opts.service, opts.registry, opts.liveness, opts.upstream);
  registerV1Routes(app, deps);
  registerNodeRoutes(app, deps, opts.fakeFaults);
  registerNovaRoutes(app, deps);
  if (opts.status) registerStatusRoutes(app, opts.agentId, opts.status);

  await app.ready();
  return app;
}

export { AUTH_HEADER };
