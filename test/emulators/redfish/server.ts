/**
 * The Redfish BMC emulator's HTTP(S) server: one process, many systems. Routes /redfish/v1 (DMTF shapes from
 * resources.ts, state in model.ts) and the test-only control endpoints under /emulator/ (no auth; never used by a
 * driver). See docs/emulators.md.
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { parseFaults, parseProfile, RedfishModel, RedfishRefusal, type EmulatedSystem, type ModelOptions } from './model.js';
import * as R from './resources.js';

export interface EmulatorOptions extends ModelOptions {
  port?: number;
  host?: string;
  /** PEM key and certificate: HTTPS when given, HTTP otherwise. */
  tls?: { key: string; cert: string };
  username?: string;
  password: string;
}

export interface RedfishEmulator {
  /** `http(s)://host:port` (no trailing slash). */
  url: string;
  model: RedfishModel;
  /** Sessions open now (token -> user). */
  sessionCount(): number;
  close(): Promise<void>;
}

interface Session {
  id: string;
  user: string;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };
const MAX_BODY = 64 * 1024;

export async function startRedfishEmulator(o: EmulatorOptions): Promise<RedfishEmulator> {
  const model = new RedfishModel(o);
  const username = o.username ?? 'admin';
  const sessions = new Map<string, Session>();
  const uuid = randomUUID();
  let sessionSeq = 0;
  /** Requests answered 401 (refused logins, Basic credentials or tokens, dropped sessions): a client's auth attempts that failed. */
  let authRefused = 0;
  const sockets = new Set<Socket>();
  const held = new Set<() => void>();

  const sameSecret = (a: string, b: string): boolean => {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  };
  const credentialsOk = (user: unknown, pass: unknown): boolean =>
    typeof user === 'string' && typeof pass === 'string' && !model.faults.rejectPassword && sameSecret(user, username) && sameSecret(pass, o.password);

  const err = (status: number, id: string, msg: string, args: string[] = [], headers: Record<string, string> = {}): Reply => ({ status, body: R.errorBody(id, msg, args), headers });
  const notFound = (path: string): Reply => err(404, 'Base.1.8.ResourceMissingAtURI', `The resource at the URI ${path} was not found.`, [path]);
  const methodNotAllowed = (allow: string): Reply => err(405, 'Base.1.8.OperationNotAllowed', 'The operation is not allowed on this resource.', [], { Allow: allow });
  const unauthorized = (): Reply => err(401, 'Base.1.8.NoValidSession', 'There is no valid session established with the implementation.', [], { 'WWW-Authenticate': 'Basic realm="redfish"' });

  /** Who is asking: a session token or Basic credentials. null: not authenticated. */
  function authenticate(req: IncomingMessage, sys: string | null): { user: string } | null | 'dropped' {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && token !== '') {
      const on = model.faults.dropSessionOn;
      if (model.faults.dropSession && model.faultFor(sys) && (on === undefined || req.method === on)) {
        model.faults = { ...model.faults, dropSession: false };
        sessions.clear();
        return 'dropped';
      }
      const s = sessions.get(token);
      return s && !model.faults.rejectPassword ? { user: s.user } : null;
    }
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i > 0 && credentialsOk(decoded.slice(0, i), decoded.slice(i + 1))) return { user: username };
    }
    return null;
  }

  function systemOf(parts: string[]): string | null {
    return (parts[2] === 'Systems' || parts[2] === 'Managers') && parts[3] ? parts[3] : null;
  }

  function ifMatch(req: IncomingMessage, s: EmulatedSystem, etag: string): Reply | null {
    const given = req.headers['if-match'];
    if (given === undefined) return s.profile.requireIfMatch ? err(428, 'Base.1.8.PreconditionRequired', 'This resource requires an If-Match header.') : null;
    const tags = given.split(',').map((t) => t.trim());
    if (tags.includes('*') || tags.includes(etag)) return null;
    return err(412, 'Base.1.8.PreconditionFailed', `The ETag ${given} does not match the resource's current ETag.`, [given]);
  }

  function resource(body: Record<string, unknown>, etag?: string): Reply {
    return { status: 200, body, headers: etag ? { ETag: etag } : {} };
  }

  /** The request body as a JSON object, or the 400 to answer. */
  function parseJson(raw: string, allowEmpty: boolean): { body: Record<string, unknown> } | { reply: Reply } {
    if (raw.trim() === '') return allowEmpty ? { body: {} } : { reply: err(400, 'Base.1.8.MalformedJSON', 'The request body is empty.') };
    try {
      const v: unknown = JSON.parse(raw);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return { body: v as Record<string, unknown> };
    } catch {
      // fall through
    }
    return { reply: err(400, 'Base.1.8.MalformedJSON', 'The request body is not a JSON object.') };
  }

  function refusal(e: unknown): Reply {
    if (e instanceof RedfishRefusal) return err(e.status, e.messageId, e.message, e.args);
    throw e;
  }

  /** /redfish/v1/... ; parts = ['redfish','v1',...]. */
  function redfish(req: IncomingMessage, parts: string[], path: string, raw: string): Reply {
    const method = req.method ?? 'GET';
    if (parts.length === 1) return method === 'GET' ? { status: 200, body: { v1: `${R.ROOT}/` } } : methodNotAllowed('GET');
    if (parts[1] !== 'v1') return notFound(path);
    const rest = parts.slice(2);
    const sys = systemOf(parts);
    if (rest.length === 0) return method === 'GET' ? resource(R.serviceRoot(uuid)) : methodNotAllowed('GET');
    if (rest[0] === 'odata' && rest.length === 1) return { status: 200, body: { '@odata.context': `${R.ROOT}/$metadata`, value: ['Systems', 'Managers', 'SessionService', 'TaskService'].map((n) => ({ name: n, kind: 'Singleton', url: `${R.ROOT}/${n}` })) } };

    const sessionsPath = rest[0] === 'SessionService' && rest[1] === 'Sessions';
    if (sessionsPath && rest.length === 2 && method === 'POST') {
      const parsed = parseJson(raw, false);
      if ('reply' in parsed) return parsed.reply;
      const b = parsed.body;
      if (typeof b.UserName !== 'string' || typeof b.Password !== 'string') return err(400, 'Base.1.8.PropertyMissing', 'UserName and Password are required strings.', ['UserName/Password']);
      if (!credentialsOk(b.UserName, b.Password)) return err(401, 'Base.1.8.InsufficientPrivilege', 'The user name or password is not valid.');
      sessionSeq += 1;
      const id = String(sessionSeq);
      const token = randomBytes(24).toString('hex');
      sessions.set(token, { id, user: b.UserName });
      return { status: 201, body: R.session(id, b.UserName), headers: { 'X-Auth-Token': token, Location: `${R.ROOT}/SessionService/Sessions/${id}` } };
    }

    const who = authenticate(req, sys);
    if (who === 'dropped') return err(401, 'Base.1.8.NoValidSession', 'The session was dropped by the service.', [], { 'WWW-Authenticate': 'Basic realm="redfish"' });
    if (who === null) return unauthorized();

    if (rest[0] === 'SessionService') {
      if (rest.length === 1) return method === 'GET' ? resource(R.sessionService()) : methodNotAllowed('GET');
      if (sessionsPath && rest.length === 2) return method === 'GET' ? resource(R.collection('SessionCollection.SessionCollection', 'Sessions', `${R.ROOT}/SessionService/Sessions`, [...sessions.values()].map((s) => `${R.ROOT}/SessionService/Sessions/${s.id}`))) : methodNotAllowed('GET, POST');
      if (sessionsPath && rest.length === 3) {
        const entry = [...sessions.entries()].find(([, s]) => s.id === rest[2]);
        if (!entry) return notFound(path);
        if (method === 'GET') return resource(R.session(entry[1].id, entry[1].user));
        if (method === 'DELETE') {
          sessions.delete(entry[0]);
          return { status: 204 };
        }
        return methodNotAllowed('GET, DELETE');
      }
      return notFound(path);
    }
    if (rest[0] === 'TaskService') {
      if (rest.length === 1) return method === 'GET' ? resource(R.taskService()) : methodNotAllowed('GET');
      if (rest[1] !== 'Tasks') return notFound(path);
      if (rest.length === 2) return method === 'GET' ? resource(R.collection('TaskCollection.TaskCollection', 'Tasks', `${R.ROOT}/TaskService/Tasks`, [...model.tasks.keys()].map(R.taskPath))) : methodNotAllowed('GET');
      const t = rest.length === 3 ? model.tasks.get(rest[2]!) : undefined;
      if (!t) return notFound(path);
      if (method !== 'GET') return methodNotAllowed('GET');
      return { status: t.state === 'Running' ? 202 : 200, body: R.task(t), headers: t.state === 'Running' ? { Location: R.taskPath(t.id), 'Retry-After': '1' } : {} };
    }
    if (rest[0] === 'Systems' || rest[0] === 'Managers') {
      const isSystem = rest[0] === 'Systems';
      if (rest.length === 1) {
        if (method !== 'GET') return methodNotAllowed('GET');
        const ids = [...model.systems.keys()];
        return resource(isSystem ? R.collection('ComputerSystemCollection.ComputerSystemCollection', 'Computer System Collection', `${R.ROOT}/Systems`, ids.map(R.systemPath)) : R.collection('ManagerCollection.ManagerCollection', 'Manager Collection', `${R.ROOT}/Managers`, ids.map(R.managerPath)));
      }
      const s = model.systems.get(rest[1]!);
      if (!s) return notFound(path);
      return isSystem ? systemRoute(req, s, rest.slice(2), path, raw) : managerRoute(req, s, rest.slice(2), path, raw);
    }
    return notFound(path);
  }

  function systemRoute(req: IncomingMessage, s: EmulatedSystem, sub: string[], path: string, raw: string): Reply {
    const method = req.method ?? 'GET';
    if (sub.length === 0) {
      if (method === 'GET') {
        s.reads += 1;
        s.lastReadAtMs = model.elapsed();
        return resource(R.system(s), s.etag());
      }
      if (method !== 'PATCH') return methodNotAllowed('GET, PATCH');
      const pre = ifMatch(req, s, s.etag());
      if (pre) return pre;
      const parsed = parseJson(raw, false);
      if ('reply' in parsed) return parsed.reply;
      try {
        model.patchBoot(s, parsed.body);
      } catch (e) {
        return refusal(e);
      }
      return resource(R.system(s), s.etag());
    }
    if (sub[0] === 'Actions' && sub[1] === 'ComputerSystem.Reset' && sub.length === 2) {
      if (method !== 'POST') return methodNotAllowed('POST');
      const parsed = parseJson(raw, false);
      if ('reply' in parsed) return parsed.reply;
      try {
        const t = model.reset(s, parsed.body.ResetType);
        return t ? { status: 202, body: R.task(t), headers: { Location: R.taskPath(t.id) } } : { status: 204 };
      } catch (e) {
        return refusal(e);
      }
    }
    if (sub[0] === 'VirtualMedia' && s.profile.vmediaUnder !== 'manager') return mediaRoute(req, s, sub.slice(1), R.systemPath(s.id), path, raw);
    return notFound(path);
  }

  function managerRoute(req: IncomingMessage, s: EmulatedSystem, sub: string[], path: string, raw: string): Reply {
    if (sub.length === 0) return req.method === 'GET' ? resource(R.manager(s)) : methodNotAllowed('GET');
    if (sub[0] === 'VirtualMedia' && s.profile.vmediaUnder !== 'system') return mediaRoute(req, s, sub.slice(1), R.managerPath(s.id), path, raw);
    return notFound(path);
  }

  function mediaRoute(req: IncomingMessage, s: EmulatedSystem, sub: string[], base: string, path: string, raw: string): Reply {
    const method = req.method ?? 'GET';
    if (sub.length === 0) return method === 'GET' ? resource(R.collection('VirtualMediaCollection.VirtualMediaCollection', 'Virtual Media', `${base}/VirtualMedia`, [`${base}/VirtualMedia/Cd`])) : methodNotAllowed('GET');
    if (sub[0] !== 'Cd') return notFound(path);
    if (sub.length === 1) return method === 'GET' ? resource(R.virtualCd(s, base), s.mediaEtag()) : methodNotAllowed('GET');
    const action = sub.length === 3 && sub[1] === 'Actions' ? sub[2] : null;
    if (action !== 'VirtualMedia.InsertMedia' && action !== 'VirtualMedia.EjectMedia') return notFound(path);
    if (method !== 'POST') return methodNotAllowed('POST');
    const parsed = parseJson(raw, action === 'VirtualMedia.EjectMedia');
    if ('reply' in parsed) return parsed.reply;
    try {
      if (action === 'VirtualMedia.InsertMedia') model.insertMedia(s, parsed.body);
      else model.ejectMedia(s);
    } catch (e) {
      return refusal(e);
    }
    return { status: 204 };
  }

  /** Test-only control endpoints (docs/emulators.md). */
  function control(req: IncomingMessage, parts: string[], path: string, raw: string): Reply {
    const method = req.method ?? 'GET';
    const bad = (e: unknown): Reply => ({ status: 400, body: { error: (e as Error).message } });
    if (parts[1] === 'faults' && parts.length === 2) {
      if (method === 'GET') return { status: 200, body: model.faults };
      if (method === 'DELETE') {
        model.faults = {};
        releaseHeld();
        return { status: 200, body: model.faults };
      }
      if (method !== 'PUT' && method !== 'PATCH') return methodNotAllowed('GET, PUT, PATCH, DELETE');
      try {
        const f = parseFaults(JSON.parse(raw || 'null'));
        model.faults = method === 'PUT' ? f : { ...model.faults, ...f };
      } catch (e) {
        return bad(e);
      }
      if (!model.faults.hang) releaseHeld();
      return { status: 200, body: model.faults };
    }
    if (parts[1] === 'systems') {
      if (parts.length === 2 && method === 'GET') return { status: 200, body: [...model.systems.values()].map((s) => ({ id: s.id, powerState: s.power, reads: s.reads })) };
      const s = parts.length === 3 ? model.systems.get(parts[2]!) : undefined;
      if (!s) return { status: 404, body: { error: `no system at ${path}` } };
      if (method === 'GET') return { status: 200, body: model.dump(s) };
      if (method !== 'PATCH') return methodNotAllowed('GET, PATCH');
      try {
        const b = JSON.parse(raw || 'null') as unknown;
        if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new Error('body must be a JSON object');
        const { powerState, ...profile } = b as Record<string, unknown>;
        model.configure(s, { power: powerState, profile: parseProfile(profile) });
      } catch (e) {
        return bad(e);
      }
      return { status: 200, body: model.dump(s) };
    }
    if (parts[1] === 'tls' && parts.length === 2) {
      if (method !== 'PUT') return methodNotAllowed('PUT');
      if (!o.tls) return { status: 409, body: { error: 'the emulator serves plain HTTP: no certificate to change' } };
      try {
        const b = JSON.parse(raw || 'null') as { key?: unknown; cert?: unknown } | null;
        if (typeof b?.key !== 'string' || typeof b.cert !== 'string') throw new Error('body must be {"key": PEM, "cert": PEM}');
        (server as HttpsServer).setSecureContext({ key: b.key, cert: b.cert });
      } catch (e) {
        return bad(e);
      }
      // The connections made with the old certificate end, as at a restart (clients handshake again), but this one.
      const mine = req.socket;
      setImmediate(() => {
        for (const sock of sockets) if (sock !== mine) sock.destroy();
      });
      return { status: 200, body: { changed: true } };
    }
    if (parts[1] === 'stats' && parts.length === 2) {
      if (method === 'DELETE') {
        requests = 0;
        maxInFlight = inFlight;
      } else if (method !== 'GET') return methodNotAllowed('GET, DELETE');
      const m = process.memoryUsage();
      const cpu = process.cpuUsage();
      return { status: 200, body: { systems: model.systems.size, sessions: sessions.size, logins: sessionSeq, authRefused, rssBytes: m.rss, heapUsedBytes: m.heapUsed, cpuMs: Math.round((cpu.user + cpu.system) / 1000), requests, inFlight, maxInFlight } };
    }
    return { status: 404, body: { error: `no control endpoint at ${path}` } };
  }

  function releaseHeld(): void {
    for (const go of [...held]) go();
    held.clear();
  }

  /** /redfish requests since start (or the last DELETE /emulator/stats), open now, and the most open at once. */
  let requests = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  function send(res: ServerResponse, r: Reply): void {
    if (r.status === 401) authRefused += 1;
    const headers: Record<string, string> = { 'OData-Version': '4.0', ...r.headers };
    if (r.body === undefined) {
      res.writeHead(r.status, headers).end();
      return;
    }
    const text = JSON.stringify(r.body);
    res.writeHead(r.status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) }).end(text);
  }

  function handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
    if (parts[0] === 'emulator') return send(res, control(req, parts, path, raw));
    if (parts[0] !== 'redfish') return send(res, notFound(path));
    requests += 1;
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.once('close', () => (inFlight -= 1));
    const sys = systemOf(parts);
    const f = model.faults;
    if (model.faultFor(sys)) {
      if (f.dropConnection) {
        model.faults = { ...f, dropConnection: false };
        req.socket.destroy();
        return;
      }
      if (f.hang) {
        held.add(() => answer());
        return;
      }
      if (f.unavailable === true || (typeof f.unavailable === 'number' && f.unavailable > 0)) {
        if (typeof f.unavailable === 'number') model.faults = { ...f, unavailable: f.unavailable - 1 };
        return send(res, err(503, 'Base.1.8.ServiceTemporarilyUnavailable', 'The service is temporarily unavailable. Retry in 1 seconds.', ['1'], { 'Retry-After': '1' }));
      }
    }
    answer();
    function answer(): void {
      const delay = model.faultFor(sys) ? (model.faults.delayMs ?? 0) : 0;
      const go = (): void => {
        if (res.destroyed) return;
        try {
          send(res, redfish(req, parts, path, raw));
        } catch (e) {
          send(res, err(500, 'Base.1.8.InternalError', `emulator error: ${(e as Error).message}`));
        }
      };
      if (delay > 0) setTimeout(go, delay);
      else go();
    }
  }

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        send(res, err(413, 'Base.1.8.GeneralError', `The request body is over ${MAX_BODY} bytes.`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (size <= MAX_BODY) handle(req, res, Buffer.concat(chunks).toString('utf8'));
    });
  };
  const server: Server = o.tls ? createHttps({ key: o.tls.key, cert: o.tls.cert }, listener) : createHttp(listener);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  return {
    url: `${o.tls ? 'https' : 'http'}://${host}:${addr.port}`,
    model,
    sessionCount: () => sessions.size,
    async close() {
      model.stop();
      held.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
