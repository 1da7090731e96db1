/** Admin-only node routes (`/v1/nodes`); the auth hook answers 403 to anyone else before these run. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isAgentError } from '../errors.js';
import { contextOf } from './auth.js';
import type { ApiDeps } from './deps.js';
import { badRequest } from './errors.js';
import { toPowerRequest } from './routes-v1.js';
import { pageOf } from './paging.js';
import {
  FakeFaultsBody,
  MaintenanceBody,
  NodeParams,
  PageQuery,
  PowerBody,
  UUID_RE,
  type MaintenanceBodyT,
  type PageQueryT,
  type PowerBodyT,
} from './schemas.js';
import { BODY_ERRORS, NodeList, NodeView, TOKEN_ERRORS, responses } from './responses.js';
import { nodeView } from './views.js';

type Params = Record<string, string>;

export function registerNodeRoutes(
  app: FastifyInstance,
  deps: ApiDeps,
  fakeFaults?: (nodeId: string, faults: Record<string, unknown>) => void,
): void {
  const { service } = deps;
  const tags = ['nodes (admin)'];

  const admin = [...TOKEN_ERRORS, 403];
  app.get(
    '/v1/nodes',
    {
      schema: {
        tags,
        summary: 'List nodes by name, one page',
        querystring: PageQuery,
        response: responses('v1', [{ status: 200, description: 'The nodes', schema: NodeList }], admin),
      },
    },
    async (req: FastifyRequest) => {
      const page = pageOf(req.query as PageQueryT, deps.pageSize(), UUID_RE);
      return { nodes: service.listNodes(contextOf(req), page).map((n) => nodeView(n, deps.base())) };
    },
  );

  app.get(
    '/v1/nodes/:id',
    {
      schema: {
        tags,
        summary: 'Show a node',
        params: NodeParams,
        response: responses('v1', [{ status: 200, description: 'The node', schema: NodeView }], [...admin, 404]),
      },
    },
    async (req: FastifyRequest) => nodeView(service.getNode(contextOf(req), (req.params as Params)['id']!), deps.base()),
  );

  app.put(
    '/v1/nodes/:id/states/power',
    {
      schema: {
        tags,
        summary: "Change a node's power state (202; same body as an instance's)",
        params: NodeParams,
        body: PowerBody,
        response: responses(
          'v1',
          [{ status: 202, description: 'Accepted (or already in that state); no body' }],
          [...admin, ...BODY_ERRORS, 404, 406, 409, 503],
        ),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const pr = toPowerRequest(req.body as PowerBodyT);
      await service.setNodePower(contextOf(req), (req.params as Params)['id']!, pr);
      return reply.code(202).send();
    },
  );

  app.put(
    '/v1/nodes/:id/maintenance',
    {
      schema: {
        tags,
        summary: 'Set or clear maintenance (200 with the node)',
        params: NodeParams,
        body: MaintenanceBody,
        response: responses('v1', [{ status: 200, description: 'The node as it now is', schema: NodeView }], [...admin, ...BODY_ERRORS, 404]),
      },
    },
    async (req: FastifyRequest) => {
      const b = req.body as MaintenanceBodyT;
      if (!b.maintenance && b.reason !== undefined) {
        throw badRequest('Invalid input: body.reason: only allowed with "maintenance": true');
      }
      const node = await service.setMaintenance(contextOf(req), (req.params as Params)['id']!, b.maintenance, b.reason);
      return nodeView(node, deps.base());
    },
  );

  if (fakeFaults !== undefined) {
    app.put(
      '/v1/nodes/:id/fake-faults',
      {
        schema: {
          tags: ['testing (fake driver only)'],
          summary: "Set the fake driver's faults of a node (test and demo builds only)",
          params: NodeParams,
          body: FakeFaultsBody,
          response: responses('v1', [{ status: 204, description: 'Set; no body' }], [...admin, ...BODY_ERRORS, 404]),
        },
      },
      async (req: FastifyRequest, reply: FastifyReply) => {
        const ctx = contextOf(req);
        const id = (req.params as Params)['id']!;
        service.getNode(ctx, id); // 404 for an unknown node
        try {
          fakeFaults(id, { ...(req.body as Record<string, unknown>) });
        } catch (e) {
          // The lab refuses unknown faults and out-of-range values with an Error listing them: the caller's mistake.
          if (e instanceof Error && !isAgentError(e)) throw badRequest(`Invalid input: body: ${e.message.replace(/^faults: /, '')}`);
          throw e;
        }
        return reply.code(204).send();
      },
    );
  }
}
