/**
 * v2 / v2.1 routes in nova's shapes: os-fping (seed 000), server details (seed 002), instance actions (seed 001).
 * Errors on these paths are nova faults (agent/api/errors.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AgentError } from '../errors.js';
import type { LivenessAnswer } from '../service.js';
import { contextOf } from './auth.js';
import type { ApiDeps } from './deps.js';
import { badRequest, echo } from './errors.js';
import { pageOf } from './paging.js';
import {
  ActionParams,
  FpingQuery,
  PageQuery,
  ProjectInstanceParams,
  ProjectParams,
  REQUEST_ID_RE,
  UUID_RE,
  type FpingQueryT,
  type PageQueryT,
} from './schemas.js';
import { ActionList, ActionOne, FpingMany, FpingOne, ServerView, TOKEN_ERRORS, responses } from './responses.js';
import { actionSummaryView, actionView, serverView } from './views.js';

type Params = Record<string, string>;

/**
 * Set on one action's answer once the action is finished (absent while in flight), with its finish time: seed 001's
 * body has no action-level finish time and keeps its keys, so a waiting client (metalctl --wait) reads it here.
 */
export const ACTION_FINISHED_HEADER = 'X-Metald-Action-Finished';
const ACTION_FINISHED_DOC = { type: 'string', description: "The action's finish time (ISO 8601, UTC); absent while it is in flight" } as const;

function isoTime(s: string): string {
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? s : new Date(ms).toISOString();
}

function fpingServer(a: LivenessAnswer): { alive: boolean; id: string; project_id: string } {
  return { alive: a.alive, id: a.instance_id, project_id: a.project_id };
}

/** `a,b,c` -> UUIDs (400 naming the parameter when one is not). Empty -> undefined. */
function uuidList(name: string, v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) return undefined;
  const bad = items.find((s) => !UUID_RE.test(s));
  if (bad !== undefined) throw badRequest(`Invalid input: querystring.${name}: '${echo(bad)}' is not an instance UUID`);
  return items;
}

/** nova treats the presence of all_tenants as the request; '0' and 'false' are read as "no" here. */
function wantsAllTenants(v: string | undefined): boolean {
  return v !== undefined && !['0', 'false', 'False'].includes(v);
}

export function registerNovaRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { service } = deps;

  app.get(
    '/v2.1/:project_id/os-fping/:id',
    {
      schema: {
        tags: ['liveness'],
        summary: 'Ping an instance (seed 000): admin or owner',
        params: ProjectInstanceParams,
        response: responses('nova', [{ status: 200, description: 'The verdict', schema: FpingOne }], [...TOKEN_ERRORS, 404]),
      },
    },
    async (req: FastifyRequest) => ({ server: fpingServer(await service.ping(contextOf(req), (req.params as Params)['id']!)) }),
  );

  app.get(
    '/v2.1/:project_id/os-fping',
    {
      schema: {
        tags: ['liveness'],
        summary: "Ping a page of the project's instances, newest first (all_tenants: every project's, admin only)",
        params: ProjectParams,
        querystring: FpingQuery,
        response: responses('nova', [{ status: 200, description: 'The verdicts', schema: FpingMany }], [...TOKEN_ERRORS, 403]),
      },
    },
    async (req: FastifyRequest) => {
      const ctx = contextOf(req);
      const q = req.query as FpingQueryT;
      const allProjects = wantsAllTenants(q.all_tenants);
      if (allProjects && !ctx.is_admin) {
        throw new AgentError('AGENT_ERR_FORBIDDEN', 'Policy does not allow all_tenants: admin only.');
      }
      const include = uuidList('include', q.include);
      const exclude = uuidList('exclude', q.exclude);
      if (include !== undefined && exclude !== undefined) {
        throw badRequest('Invalid input: querystring: give include or exclude, not both');
      }
      const page = pageOf(q, deps.pageSize(), UUID_RE);
      const answers = await service.pingMany(ctx, {
        allProjects,
        page,
        ...(include !== undefined ? { include } : {}),
        ...(exclude !== undefined ? { exclude } : {}),
      });
      return { servers: answers.map(fpingServer) };
    },
  );

  app.get(
    '/v2/:project_id/servers/:id',
    {
      schema: {
        tags: ['servers'],
        summary: 'Server details (seed 002)',
        params: ProjectInstanceParams,
        response: responses('nova', [{ status: 200, description: 'The server', schema: ServerView }], [...TOKEN_ERRORS, 404]),
      },
    },
    async (req: FastifyRequest) => {
      const ctx = contextOf(req);
      const p = req.params as Params;
      return { server: serverView(service.getInstance(ctx, p['id']!), deps.viewEnv(ctx, p['project_id']!)) };
    },
  );

  app.get(
    '/v2/:project_id/servers/:id/os-instance-actions',
    {
      schema: {
        tags: ['servers'],
        summary: "A server's actions, newest first, one page (seed 001, without events)",
        params: ProjectInstanceParams,
        querystring: PageQuery,
        response: responses('nova', [{ status: 200, description: 'The actions', schema: ActionList }], [...TOKEN_ERRORS, 404]),
      },
    },
    async (req: FastifyRequest) => {
      const ctx = contextOf(req);
      const id = (req.params as Params)['id']!;
      service.getInstance(ctx, id); // 404 for an instance the caller cannot see, whatever listActions does
      const page = pageOf(req.query as PageQueryT, deps.pageSize(), REQUEST_ID_RE);
      return { instanceActions: service.listActions(ctx, id, page).map((a) => actionSummaryView(a, ctx.is_admin)) };
    },
  );

  app.get(
    '/v2/:project_id/servers/:id/os-instance-actions/:request_id',
    {
      schema: {
        tags: ['servers'],
        summary: 'One action with its events (seed 001); traceback for admins only',
        params: ActionParams,
        response: responses(
          'nova',
          [{ status: 200, description: 'The action', schema: ActionOne, headers: { [ACTION_FINISHED_HEADER]: ACTION_FINISHED_DOC } }],
          [...TOKEN_ERRORS, 404],
        ),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const ctx = contextOf(req);
      const p = req.params as Params;
      service.getInstance(ctx, p['id']!);
      const action = service.getAction(ctx, p['id']!, p['request_id']!);
      if (action.finish_time !== null) void reply.header(ACTION_FINISHED_HEADER, isoTime(action.finish_time));
      return { instanceAction: actionView(action, ctx.is_admin) };
    },
  );
}
