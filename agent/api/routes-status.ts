/**
 * The status page (docs/status-page.md): `GET /status` (the page itself: no data, no token, the same bytes for
 * everyone), `GET /v1/status/snapshot` (the fleet as the token may see it) and `GET /v1/status/events` (the journal
 * as server-sent events, from a seq). The token is always a header (`X-Auth-Token`): the page reads the stream with
 * fetch(), never EventSource, so no token is ever in a URL.
 */
import { PassThrough } from 'node:stream';
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { INSTANCE_STATES } from '../model.js';
import { STATUS_PAGE, STATUS_PAGE_CSP } from '../status/page.js';
import { StatusStreams, type StreamLimits } from '../status/streams.js';
import { buildSnapshot, type StatusStore } from '../status/view.js';
import { contextOf } from './auth.js';
import { badRequest, echo } from './errors.js';
import { TOKEN_ERRORS, responses } from './responses.js';

export interface StatusOptions {
  /** The store the snapshot and the streams read (the journal among it). */
  store: StatusStore;
  /** Stream bounds; defaults STATUS_STREAM_LIMITS (agent/status/streams.ts). */
  limits?: Partial<StreamLimits>;
  /** ms since the epoch (snapshot times, stream durations). Default Date.now. */
  now?: () => number;
  /** The streams' hub, when the caller keeps one (tests read its count); default: one made here with `limits`. */
  streams?: StatusStreams;
}

/** A journal seq as the stream takes it: a whole number, at most 15 digits. */
const SEQ_PATTERN = '^(0|[1-9][0-9]{0,14})$';
const SEQ_RE = new RegExp(SEQ_PATTERN);

const Str = () => Type.String();
const Nullable = (s: TSchema) => Type.Union([s, Type.Null()]);
const ErrorBody = Nullable(Type.Object({ error_code: Str(), error_msg: Str(), error_type: Str() }));
const Power = Type.Unsafe<string>({ type: 'string', enum: ['on', 'off', 'unknown'] });
const TargetPower = Type.Unsafe<string | null>({ type: 'string', enum: ['on', 'off'], nullable: true });

const StatusSnapshotSchema = Type.Object(
  {
    seq: Type.Integer({ description: 'The last journal seq the snapshot reflects: stream from here (`since`).' }),
    taken_at: Str(),
    agent_id: Str(),
    role: Type.Unsafe<string>({ type: 'string', enum: ['admin', 'member'] }),
    project_id: Str(),
    nodes: Type.Array(
      Type.Object(
        {
          id: Str(), name: Str(), type: Str(), power_state: Power, target_power_state: TargetPower, maintenance: Type.Boolean(),
          maintenance_reason: Nullable(Str()), last_error: ErrorBody, instance_id: Nullable(Str()),
        },
        { additionalProperties: false },
      ),
      { description: 'Every node (admins); empty for members.' },
    ),
    instances: Type.Array(
      Type.Object(
        {
          id: Str(), name: Str(), project_id: Str(), node_id: Nullable(Str()),
          state: Type.Unsafe<string>({ type: 'string', enum: [...INSTANCE_STATES] }),
          operation_state: Nullable(Str()), power_state: Power, target_power_state: TargetPower, alive: Type.Union([Type.Boolean(), Type.Null()]),
          addresses: Type.Array(Type.Object({ addr: Str(), version: Type.Integer(), type: Str(), network: Str() }, { additionalProperties: false })),
          progress: Type.Integer(), error: ErrorBody,
        },
        { additionalProperties: false },
      ),
      { description: "Instances not terminated: every project's (admins), the token's project's (members)." },
    ),
    events: Type.Array(
      Type.Object(
        { seq: Type.Integer(), at: Str(), kind: Str(), instance_id: Nullable(Str()), node_id: Nullable(Str()), cause: Str(), data: Type.Object({}) },
        { additionalProperties: false },
      ),
      { description: 'The most recent journal entries the caller may see (at most 50), oldest first.' },
    ),
  },
  { additionalProperties: false },
);

export const StatusEventsQuery = Type.Object(
  {
    since: Type.Optional(
      Type.String({ pattern: SEQ_PATTERN, description: 'Resume after this journal seq (the snapshot\'s `seq`, or the last `id:` seen); default: from now.' }),
    ),
  },
  { additionalProperties: false },
);

/** `since`, else `Last-Event-ID`, as a seq; null: neither. @throws AgentError BAD_REQUEST for a header that is not a seq. */
function resumeFrom(req: FastifyRequest): number | null {
  const q = (req.query as { since?: string }).since;
  if (q !== undefined) return Number(q);
  const h = req.headers['last-event-id'];
  if (h === undefined) return null;
  const v = Array.isArray(h) ? h.join(',') : h;
  if (!SEQ_RE.test(v)) throw badRequest(`Invalid input: header Last-Event-ID: '${echo(v)}' is not a journal seq (a whole number)`);
  return Number(v);
}

/** Registers the three routes; returns the streams (the server ends them before it closes). */
export function registerStatusRoutes(app: FastifyInstance, agentId: string, opts: StatusOptions): StatusStreams {
  const now = opts.now ?? Date.now;
  const streams = opts.streams ?? new StatusStreams({ store: opts.store, log: app.log, now, ...(opts.limits ? { limits: opts.limits } : {}) });
  const tags = ['status page'];

  app.get(
    '/status',
    {
      schema: {
        tags,
        security: [],
        summary: 'The status page: one HTML document, no data in it (it asks for a token, then reads the two routes below)',
        response: responses('v1', [{ status: 200, description: 'The page', content: { 'text/html': { schema: Type.String() } } }], []),
      },
    },
    async (_req, reply: FastifyReply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('Content-Security-Policy', STATUS_PAGE_CSP)
        .header('X-Content-Type-Options', 'nosniff')
        .header('X-Frame-Options', 'DENY')
        .header('Referrer-Policy', 'no-referrer')
        .header('Cache-Control', 'no-store')
        .send(STATUS_PAGE),
  );

  app.get(
    '/v1/status/snapshot',
    {
      schema: {
        tags,
        summary: 'The fleet as this token may see it, tagged with the journal seq it reflects (admins: every node and instance; members: their project\'s instances, no node)',
        response: responses('v1', [{ status: 200, description: 'The snapshot', schema: StatusSnapshotSchema }], [...TOKEN_ERRORS]),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      void reply.header('Cache-Control', 'no-store');
      return buildSnapshot(opts.store, contextOf(req), agentId, new Date(now()));
    },
  );

  app.get(
    '/v1/status/events',
    {
      schema: {
        tags,
        summary: 'The journal as server-sent events, scoped as the snapshot, from `since` (or Last-Event-ID) or from now; 429 beyond the open-stream caps',
        querystring: StatusEventsQuery,
        response: responses(
          'v1',
          [{ status: 200, description: 'An endless text/event-stream (hello, journal, reset events; heartbeat comments)', content: { 'text/event-stream': { schema: Type.String() } } }],
          [...TOKEN_ERRORS],
        ),
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const since = resumeFrom(req);
      const ctx = contextOf(req);
      void reply
        .type('text/event-stream; charset=utf-8')
        .header('Cache-Control', 'no-store')
        .header('X-Accel-Buffering', 'no');
      if (req.method === 'HEAD') return reply.send('');
      const body = new PassThrough();
      const opened = streams.open(ctx, since, {
        write: (text) => void body.write(text),
        buffered: () => body.readableLength + body.writableLength + reply.raw.writableLength,
        end: () => {
          if (!body.writableEnded) body.end();
        },
      });
      reply.raw.on('close', () => opened.close());
      return reply.send(body);
    },
  );

  app.addHook('preClose', (done) => {
    streams.closeAll();
    done();
  });
  return streams;
}
