/**
 * The boot server (docs/boot-protocol.md): a second fastify instance on `boot.listen`, plain HTTP on the provisioning
 * network, serving what a server being installed reaches: its iPXE script by MAC, the ramdisk files, the token
 * lookup for a virtual-media boot, the one-time job document, and the progress and result reports. Nothing else.
 *
 * Tokens are secrets: no URL is logged as it came (each request's line names the route template and the job's id),
 * and no answer but the job document and the iPXE script of its node carries one. A report is answered after its
 * write is on disk (the store's durability barrier).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Store } from '../store/types.js';
import { JobError, type BootJobs } from './jobs.js';
import { documentLines, type FetchedDocument, type JobDocument } from './document.js';

export const BOOT_BODY_LIMIT = 64 * 1024;

const MAC = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i;
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
const SHA256 = '^[0-9a-fA-F]{64}$';

const ProgressBody = Type.Object(
  { progress: Type.Number({ minimum: 0, maximum: 100 }), message: Type.Optional(Type.String({ maxLength: 1024 })) },
  { additionalProperties: false },
);
const ResultBody = Type.Object(
  {
    result: Type.Union([Type.Literal('success'), Type.Literal('failure')]),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    image_sha256: Type.Optional(Type.String({ pattern: SHA256 })),
  },
  { additionalProperties: false },
);

export interface BootServerOptions {
  jobs: BootJobs;
  store: Pick<Store, 'durable'>;
  config: () => Config;
  /** The URL servers reach this server by (boot.public_url, else the listening address), no trailing slash. */
  publicUrl: () => string;
  log: Logger;
}

const RAMDISK_FILES = { kernel: 'kernel', initrd: 'initrd', 'ramdisk.iso': 'iso' } as const;

export async function buildBootServer(opts: BootServerOptions): Promise<FastifyInstance> {
  const log = opts.log.child({ component: 'boot' });
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BOOT_BODY_LIMIT,
    routerOptions: { maxParamLength: 256 },
  });

  // One line per request: the route template (never the URL: it holds the token) and the job it was about.
  app.addHook('onResponse', async (req, reply) => {
    const jobId = (req as { jobId?: string }).jobId;
    log.info({ method: req.method, route: req.routeOptions.url ?? 'unknown', status: reply.statusCode, job_id: jobId, ms: Math.round(reply.elapsedTime) }, 'boot request');
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof JobError) return sendError(reply, err.status, err.code, err.message);
    const status = err.statusCode ?? 500;
    if (status === 413) return sendError(reply, 413, 'BAD_REQUEST', `the body is over ${BOOT_BODY_LIMIT} bytes`);
    if (status >= 400 && status < 500) return sendError(reply, 400, 'BAD_REQUEST', err.message);
    log.error({ err }, 'boot server request failed');
    return sendError(reply, 500, 'INTERNAL', 'internal error');
  });
  app.setNotFoundHandler((_req, reply) => sendError(reply, 404, 'NOT_FOUND', 'no such path on the boot server'));

  const base = () => opts.publicUrl().replace(/\/+$/, '');

  app.get('/v1/ipxe', async (req, reply) => {
    const mac = macOf(req);
    reply.type('text/plain; charset=utf-8');
    if (!mac) return reply.code(400).send('#!ipxe\necho metald: the request has no valid mac= parameter\nexit 1\n');
    const job = opts.jobs.issuedForMac(mac);
    if (!job) return `#!ipxe\necho metald: no installer job for ${mac}: booting from disk\nexit\n`;
    (req as { jobId?: string }).jobId = job.job_id;
    const b = base();
    return [
      '#!ipxe',
      `echo metald: installer job for ${mac}`,
      `kernel ${b}/v1/ramdisk/kernel initrd=initrd.img console=ttyS0,115200 metald.url=${b} metald.token=${job.token} metald.mac=${mac}`,
      `initrd --name initrd.img ${b}/v1/ramdisk/initrd`,
      'boot',
      '',
    ].join('\n');
  });

  app.get<{ Params: { file: string } }>('/v1/ramdisk/:file', async (req, reply) => {
    const key = RAMDISK_FILES[req.params.file as keyof typeof RAMDISK_FILES];
    const path = key ? opts.config().boot?.ramdisk[key] : null;
    if (!path) return sendError(reply, 404, 'NOT_FOUND', `${req.params.file}: not configured (boot.ramdisk)`);
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      log.warn({ file: req.params.file, path }, 'a configured ramdisk file is missing');
      return sendError(reply, 404, 'NOT_FOUND', `${req.params.file}: the configured file is missing`);
    }
    reply.type('application/octet-stream').header('content-length', size);
    return reply.send(createReadStream(path));
  });

  app.get('/v1/lookup', async (req, reply) => {
    const mac = macOf(req);
    if (!mac) return sendError(reply, 400, 'BAD_REQUEST', 'mac: a MAC address is required (aa:bb:cc:dd:ee:ff)');
    const job = opts.jobs.issuedForMac(mac);
    if (!job) return sendError(reply, 404, 'NO_JOB', `no installer job waits for ${mac}`);
    (req as { jobId?: string }).jobId = job.job_id;
    return { token: job.token };
  });

  app.get<{ Params: { token: string }; Querystring: { format?: string } }>('/v1/jobs/:token', async (req, reply) => {
    const format = req.query.format ?? 'json';
    if (format !== 'json' && format !== 'lines') return sendError(reply, 400, 'BAD_REQUEST', 'format: json or lines');
    const job = opts.jobs.fetch(tokenOf(req));
    (req as { jobId?: string }).jobId = job.job_id;
    await opts.store.durable();
    const b = `${base()}/v1/jobs/${job.token}`;
    const doc: FetchedDocument = {
      ...(job.document as unknown as JobDocument),
      expires_at: new Date(job.deadline_at).toISOString(),
      progress_url: `${b}/progress`,
      result_url: `${b}/result`,
    };
    if (format === 'lines') return reply.type('text/plain; charset=utf-8').send(documentLines(doc));
    return doc;
  });

  app.post<{ Params: { token: string } }>('/v1/jobs/:token/progress', async (req, reply) => {
    const body = parse(ProgressBody, req.body);
    const job = opts.jobs.progress(tokenOf(req), body);
    (req as { jobId?: string }).jobId = job.job_id;
    await opts.store.durable();
    return reply.code(204).send();
  });

  app.post<{ Params: { token: string } }>('/v1/jobs/:token/result', async (req, reply) => {
    const body = parse(ResultBody, req.body);
    const job = opts.jobs.result(tokenOf(req), body);
    (req as { jobId?: string }).jobId = job.job_id;
    log.info({ job_id: job.job_id, instance_id: job.instance_id, state: job.state, message: job.message }, 'installer result');
    await opts.store.durable();
    return reply.code(204).send();
  });

  await app.ready();
  return app;
}

function sendError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
}

function macOf(req: FastifyRequest): string | null {
  const m = (req.query as { mac?: unknown }).mac;
  return typeof m === 'string' && MAC.test(m) ? m.toLowerCase().replace(/-/g, ':') : null;
}

function tokenOf(req: FastifyRequest<{ Params: { token: string } }>): string {
  const t = req.params.token;
  if (!TOKEN.test(t)) throw new JobError(404, 'NO_JOB', 'no job has this token');
  return t;
}

function parse<S extends TSchema>(schema: S, body: unknown): Static<S> {
  if (Value.Check(schema, body)) return body;
  const first = Value.Errors(schema, body).First();
  const where = first?.path ? first.path.replace(/^\//, '').replace(/\//g, '.') : 'body';
  throw new JobError(400, 'BAD_REQUEST', `${where || 'body'}: ${first?.message ?? 'does not match the schema'}`);
}
