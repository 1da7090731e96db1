/**
 * Who is calling, and may they: the `X-Auth-Token` lookup, the per-token (or per-address) rate limit, the URL
 * identifiers, and the RequestContext handed to the AgentService. Runs as an onRequest hook, so all of it is decided
 * before a body is read and nothing is called on the service for a refused request.
 *
 * Order (docs/api.md, "Policy"): rate limit -> 401 (unknown routes included) -> 403 (admin-only paths) -> project id 400 -> project mismatch
 * 400 (seed 001's message) -> identifiers 404. Ownership of an instance is the service's (NOT_FOUND for a member
 * looking at another project's instance).
 */
import type { FastifyRequest } from 'fastify';
import type { ApiToken } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { RequestContext } from '../model.js';
import { GENERIC_MESSAGES, badRequest, echo } from './errors.js';
import type { RateLimiter } from './rate-limit.js';
import { PROJECT_ID_RE, REQUEST_ID_RE, UUID_RE } from './schemas.js';

export const AUTH_HEADER = 'x-auth-token';

/**
 * Paths answered without a token (and without rate limiting: probes and scrapers must not be throttled). `/status` is
 * the status page's HTML, which holds no data: the page reads its data with a token (agent/api/routes-status.ts).
 */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/status']);

const contexts = new WeakMap<FastifyRequest, RequestContext>();

/** The caller's context; set by the auth hook for every token-checked route. */
export function contextOf(req: FastifyRequest): RequestContext {
  const ctx = contexts.get(req);
  if (ctx === undefined) throw new AgentError('AGENT_ERR_INTERNAL', 'route reached without a request context');
  return ctx;
}

export function buildContext(requestId: string, token: ApiToken): RequestContext {
  return {
    request_id: requestId,
    project_id: token.project_id,
    user_id: token.user_id,
    roles: [...token.roles],
    is_admin: token.roles.includes('admin'),
  };
}

/** seed 001's 400 text, letter for letter. */
export function projectMismatchMessage(urlProject: string, ctxProject: string): string {
  return `Malformed request URL: URL's project_id '${urlProject}' doesn't match Context's project_id '${ctxProject}'`;
}

function headerValue(req: FastifyRequest): string | undefined {
  const v = req.headers[AUTH_HEADER];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

export interface AuthDeps {
  tokens: () => Map<string, ApiToken>;
  limiter: RateLimiter;
}

/** The onRequest hook. Throws AgentError; the error handler renders it in the path's family. */
export function authenticate(req: FastifyRequest, deps: AuthDeps): void {
  const route = req.routeOptions.url;
  if (!req.is404 && route !== undefined && PUBLIC_ROUTES.has(route)) return;

  const value = headerValue(req);
  const token = value === undefined ? undefined : deps.tokens().get(value);
  const taken = deps.limiter.take(token !== undefined ? `token:${value}` : `addr:${req.ip}`);
  if (!taken.ok) {
    throw new AgentError('AGENT_ERR_RATE_LIMITED', GENERIC_MESSAGES.rateLimited, { retry_after_s: taken.retryAfterS });
  }
  if (token === undefined) throw new AgentError('AGENT_ERR_UNAUTHORIZED', GENERIC_MESSAGES.unauthorized);
  if (req.is404 || route === undefined) return; // unknown route (or method): the not-found handler answers 404 / 405

  const ctx = buildContext(req.id, token);
  if (route.startsWith('/v1/nodes') && !ctx.is_admin) {
    throw new AgentError('AGENT_ERR_FORBIDDEN', 'Policy does not allow this operation: node endpoints are admin-only.');
  }
  const params = req.params as Record<string, string | undefined>;
  const project = params['project_id'];
  if (project !== undefined) {
    if (!PROJECT_ID_RE.test(project)) {
      throw badRequest(`Malformed request URL: project_id '${echo(project)}' must match ^[A-Za-z0-9_-]{1,64}$`);
    }
    if (project !== ctx.project_id) throw badRequest(projectMismatchMessage(project, ctx.project_id));
  }
  const id = params['id'];
  if (id !== undefined && !UUID_RE.test(id)) {
    const what = route.startsWith('/v1/nodes') ? 'Node' : 'Instance';
    throw new AgentError('AGENT_ERR_NOT_FOUND', `${what} ${echo(id)} could not be found.`);
  }
  const requestId = params['request_id'];
  if (requestId !== undefined && !REQUEST_ID_RE.test(requestId)) {
    throw new AgentError('AGENT_ERR_NOT_FOUND', `Action ${echo(requestId)} could not be found.`);
  }
  contexts.set(req, ctx);
}
