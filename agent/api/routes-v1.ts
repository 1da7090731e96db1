/**
 * v1 instance routes (seeds 003, 004): create/list/show/delete, status, OS operations, power states.
 * Bodies were validated by the route schemas and identifiers by the auth hook before any handler runs.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RequestContext } from '../model.js';
import type { CreateInstanceInput, OsOperationName, OsOperationParams, PowerRequest } from '../service.js';
import { acceptsTimeout, parsePowerTarget, SOFT_TARGET_WORDS } from '../vocab.js';
import { contextOf } from './auth.js';
import type { ApiDeps } from './deps.js';
import { badRequest, echo } from './errors.js';
import { pageOf } from './paging.js';
import { InstanceListRenderer } from './rendered.js';
import {
  ACTION_NAMES,
  ActionBody,
  CreateInstanceBody,
  InstanceParams,
  PowerBody,
  ProjectInstanceParams,
  PageQuery,
  ProjectParams,
  UUID_RE,
  type ActionBodyT,
  type CreateInstanceBodyT,
  type PageQueryT,
  type PowerBodyT,
} from './schemas.js';
import {
  ActionAccepted,
  BODY_ERRORS,
  InstanceList,
  InstanceView,
  PowerStatesView,
  StatusView,
  TOKEN_ERRORS,
  responses,
} from './responses.js';
import { instanceView, powerStatesView, statusView } from './views.js';

type Params = Record<string, string>;

/** Ironic words/aliases + timeout -> PowerRequest; `timeout` only with the soft targets (400 otherwise). */
export function toPowerRequest(body: PowerBodyT): PowerRequest {
  const target = parsePowerTarget(body.target);
  if (target === undefined) throw badRequest(`Invalid input: body.target: unknown power target '${echo(body.target)}'`);
  if (body.timeout !== undefined && !acceptsTimeout(target)) {
    throw badRequest(`Invalid input: body.timeout: only allowed with ${SOFT_TARGET_WORDS}, not "${echo(body.target)}"`);
  }
  return { target, timeout_s: body.timeout };
}

/** The create body (seed 004) as the engine takes it: the REST route's and the upstream command's (one mapping). */
export function toCreateInput(b: CreateInstanceBodyT): CreateInstanceInput {
  return {
    name: b.name,
    description: b.description,
    instance_type_uuid: b.instance_type_uuid,
    image_uuid: b.image_uuid,
    availability_zone: b.availability_zone,
    networks: b.networks?.map((n) => ({ uuid: n.uuid, port_type: n.port_type })),
    metadata: b.metadata === undefined ? undefined : { ...b.metadata },
    extra: b.extra === undefined ? undefined : { ...b.extra, ssh_keys: b.extra.ssh_keys ? [...b.extra.ssh_keys] : undefined },
  };
}

/** `{"<op>": {...}}` -> the operation and its parameters (exactly one key, guaranteed by the schema). */
export function toOperation(b: ActionBodyT): { op: OsOperationName; params: OsOperationParams } {
  const keys = Object.keys(b);
  const op = ACTION_NAMES.find((n) => n === keys[0]);
  if (op === undefined || keys.length !== 1) {
    throw badRequest(`Invalid input: body must have exactly one of ${ACTION_NAMES.join(', ')}`);
  }
  switch (op) {
    case 'reinstall':
    case 'switch-install': {
      const p = op === 'reinstall' ? b.reinstall : b['switch-install'];
      return {
        op,
        params: {
          image_uuid: p?.image_uuid,
          hostname: p?.hostname,
          ssh_keys: p?.ssh_keys ? [...p.ssh_keys] : undefined,
          password_hash: p?.password_hash,
          user_data: p?.user_data,
        },
      };
    }
    case 'modify-ip':
      return {
        op,
        params: { networks: (b['modify-ip']?.networks ?? []).map((n) => ({ uuid: n.uuid, port_type: n.port_type, fixed_ip: n.fixed_ip })) },
      };
    case 'change-password':
      return { op, params: { password_hash: b['change-password']?.password_hash } };
    case 'uninstall':
    case 'retry':
      return { op, params: {} };
  }
}

export function registerV1Routes(app: FastifyInstance, deps: ApiDeps): void {
  const { service } = deps;
  const tags = ['instances'];
  const env = (req: FastifyRequest, ctx: RequestContext) => deps.viewEnv(ctx, (req.params as Params)['project_id'] ?? ctx.project_id);
  const lists = new InstanceListRenderer();

  app.post(
    '/v1/:project_id/instances',
    {
      schema: {
        tags,
        summary: 'Create an instance (seed 004)',
        params: ProjectParams,
        body: CreateInstanceBody,
        response: responses(
          'v1',
          [
            {
              status: 201,
              description: 'Accepted and recorded; the install runs on (follow /status)',
              schema: InstanceView,
              headers: { Location: { type: 'string', description: "The new instance's URL" } },
            },
          ],
          [...TOKEN_ERRORS, ...BODY_ERRORS, 409, 503],
        ),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const ctx = contextOf(req);
      const project = (req.params as Params)['project_id']!;
      const { instance } = await service.createInstance(ctx, toCreateInput(req.body as CreateInstanceBodyT));
      void reply.code(201).header('Location', `${deps.base()}/v1/${project}/instances/${instance.id}`);
      return instanceView(instance, env(req, ctx));
    },
  );

  app.get(
    '/v1/:project_id/instances',
    {
      schema: {
        tags,
        summary: "List instances, oldest first, one page (admins: every project's)",
        params: ProjectParams,
        querystring: PageQuery,
        response: responses('v1', [{ status: 200, description: 'The instances', schema: InstanceList }], TOKEN_ERRORS),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const ctx = contextOf(req);
      const page = pageOf(req.query as PageQueryT, deps.pageSize(), UUID_RE);
      const list = service.listInstances(ctx, { allProjects: ctx.is_admin, page });
      // Already JSON, as bytes: fastify sends a Buffer as it is, with the JSON type it would have set.
      void reply.type('application/json; charset=utf-8');
      return lists.body(list, env(req, ctx));
    },
  );

  app.get(
    '/v1/:project_id/instances/:id',
    {
      schema: {
        tags,
        summary: 'Show an instance (seed 004)',
        params: ProjectInstanceParams,
        response: responses('v1', [{ status: 200, description: 'The instance', schema: InstanceView }], [...TOKEN_ERRORS, 404]),
      },
    },
    async (req: FastifyRequest) => {
      const ctx = contextOf(req);
      return instanceView(service.getInstance(ctx, (req.params as Params)['id']!), env(req, ctx));
    },
  );

  app.delete(
    '/v1/:project_id/instances/:id',
    {
      schema: {
        tags,
        summary: 'Delete an instance (202; follow /status)',
        params: ProjectInstanceParams,
        response: responses(
          'v1',
          [{ status: 202, description: 'Accepted and recorded; no body' }],
          [...TOKEN_ERRORS, ...BODY_ERRORS, 404, 409, 503],
        ),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      await service.deleteInstance(contextOf(req), (req.params as Params)['id']!);
      return reply.code(202).send();
    },
  );

  app.get(
    '/v1/:project_id/instances/:id/status',
    {
      schema: {
        tags,
        summary: 'Instance status: state, operation_state, error (seed 003)',
        params: ProjectInstanceParams,
        response: responses('v1', [{ status: 200, description: 'The status', schema: StatusView }], [...TOKEN_ERRORS, 404]),
      },
    },
    async (req: FastifyRequest) => {
      const ctx = contextOf(req);
      return statusView(service.getInstance(ctx, (req.params as Params)['id']!), ctx.is_admin);
    },
  );

  app.post(
    '/v1/:project_id/instances/:id/actions',
    {
      schema: {
        tags,
        summary: 'Run an OS operation (seed 003): exactly one of reinstall, switch-install, modify-ip, uninstall, change-password, retry',
        params: ProjectInstanceParams,
        body: ActionBody,
        response: responses(
          'v1',
          [{ status: 202, description: 'Accepted and recorded: the action to follow', schema: ActionAccepted }],
          [...TOKEN_ERRORS, ...BODY_ERRORS, 404, 409, 503],
        ),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const { op, params } = toOperation(req.body as ActionBodyT);
      const action = await service.runOperation(contextOf(req), (req.params as Params)['id']!, op, params);
      void reply.code(202);
      return { request_id: action.request_id };
    },
  );

  app.get(
    '/v1/instances/:id/states',
    {
      schema: {
        tags: ['power'],
        summary: 'Power state summary (seed 004, Ironic words)',
        params: InstanceParams,
        response: responses('v1', [{ status: 200, description: 'Power and target power', schema: PowerStatesView }], [...TOKEN_ERRORS, 404]),
      },
    },
    async (req: FastifyRequest) => powerStatesView(service.getInstance(contextOf(req), (req.params as Params)['id']!)),
  );

  app.put(
    '/v1/instances/:id/states/power',
    {
      schema: {
        tags: ['power'],
        summary: 'Change the power state (202; seed 004)',
        params: InstanceParams,
        body: PowerBody,
        response: responses(
          'v1',
          [{ status: 202, description: 'Accepted (or already in that state); no body' }],
          [...TOKEN_ERRORS, ...BODY_ERRORS, 404, 406, 409, 503],
        ),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const pr = toPowerRequest(req.body as PowerBodyT);
      await service.setInstancePower(contextOf(req), (req.params as Params)['id']!, pr);
      return reply.code(202).send();
    },
  );
}
