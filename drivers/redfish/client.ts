/**
 * One BMC's Redfish service: the HTTP calls of the driver, with authentication, discovery and task monitors.
 *
 * - Authentication: a SessionService session (POST to the root's `Links.Sessions` with UserName/Password; the
 *   `X-Auth-Token` answer header is the token, `Location` the session to DELETE on close). When the service has no
 *   SessionService or refuses the login for any reason but bad credentials (404, 405, 501, 403, 5xx, no token),
 *   HTTP Basic is used instead. A 401 to the login is BMC_ERR_AUTH: nothing else was sent. A 401 mid-session (the BMC
 *   expired or dropped the session, or refused Basic credentials) logs in again once, reading the password file
 *   again, and repeats the call: the 401 proves the call was not run.
 * - Discovery: the service root (unauthenticated, as the spec says), the system (`system_id`, else the only member of
 *   Systems), its manager (`Links.ManagedBy`, else the only member of Managers). Every path the BMC gives is resolved
 *   against its origin and must stay on it: credentials never go elsewhere.
 * - A 202 answer is a task: its monitor (`Location`) is polled until the task ends, under the call's deadline.
 */
import { BmcError } from '../errors.js';
import type { DriverClock, DriverLogger, HttpClient, HttpResponse } from '../ports.js';
import type { CallOptions } from '../types.js';
import { extendedInfo, httpError, transportError } from './errors.js';

export type Json = Record<string, unknown>;

export interface RedfishReply {
  status: number;
  headers: Record<string, string>;
  json: Json | null;
  /** The resource's ETag (header, else `@odata.etag`), if any. */
  etag: string | null;
}

export interface RedfishClientOptions {
  driver: string;
  /** `https://host[:port]`. */
  origin: string;
  username: string | null;
  password: () => Promise<string | null>;
  systemId: string | null;
  caFile: string | undefined;
  insecure: boolean;
  http: HttpClient;
  clock: DriverClock;
  log: DriverLogger;
  /** Deadline of a call that gives none (close's logout, a task without a deadline). */
  defaultTimeoutMs?: number;
}

type Auth = { kind: 'none' } | { kind: 'basic'; header: string } | { kind: 'session'; token: string; location: string | null };

/** Delays between task monitor polls, in ms; the last repeats until the call's deadline. */
export const TASK_POLL_MS = [50, 100, 200, 500, 1000] as const;
const TASK_FAILED = new Set(['Exception', 'Killed', 'Cancelled', 'Interrupted']);
const TASK_RUNNING = new Set(['New', 'Starting', 'Running', 'Suspended', 'Pending', 'Stopping', 'Cancelling', 'Service']);

export class RedfishClient {
  private root: Json | null = null;
  private auth: Auth | null = null;
  private authing: Promise<Auth> | null = null;
  private systemPath: string | null = null;
  private managerPath: string | null = null;

  constructor(private readonly o: RedfishClientOptions) {}

  /** One call with authentication; a non-2xx answer throws its mapped BmcError. */
  async call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, opts: CallOptions = {}, body?: unknown, headers: Record<string, string> = {}): Promise<RedfishReply> {
    const what = `${method} ${path}`;
    let auth = await this.authenticate(opts);
    let res = await this.raw(method, path, opts, auth, body, headers);
    if (res.status === 401 && auth.kind !== 'none') {
      // A session expired or dropped, or Basic credentials refused (a rotated password): log in again once, with the
      // password file read again. The 401 proves the call was not run, so repeating it is safe.
      this.o.log.info({ driver: this.o.driver, origin: this.o.origin, auth: auth.kind }, 'redfish credentials refused: logging in again once');
      this.auth = null;
      auth = await this.authenticate(opts);
      res = await this.raw(method, path, opts, auth, body, headers);
    }
    if (res.status < 200 || res.status > 299) throw httpError(this.o.driver, what, res.status, res.body);
    return reply(res, this.o.driver, what);
  }

  /** A call whose 202 is followed to the task's end. */
  async act(method: 'POST' | 'PATCH', path: string, body: unknown, opts: CallOptions = {}, headers: Record<string, string> = {}): Promise<RedfishReply> {
    const started = this.o.clock.now();
    const res = await this.call(method, path, opts, body, headers);
    return res.status === 202 ? this.followTask(`${method} ${path}`, res, started, opts) : res;
  }

  async serviceRoot(opts: CallOptions): Promise<Json> {
    if (this.root) return this.root;
    const res = await this.raw('GET', '/redfish/v1/', opts, { kind: 'none' });
    if (res.status !== 200) throw httpError(this.o.driver, 'GET /redfish/v1/ (service root)', res.status, res.body);
    this.root = reply(res, this.o.driver, 'GET /redfish/v1/').json ?? {};
    return this.root;
  }

  /** The system's path: `system_id`, else the only member of the root's Systems. */
  async system(opts: CallOptions): Promise<string> {
    if (this.systemPath) return this.systemPath;
    if (this.o.systemId) return (this.systemPath = this.path(this.o.systemId, 'system_id'));
    const collection = this.link(await this.serviceRoot(opts), 'Systems');
    if (!collection) throw new BmcError('BMC_ERR_UNSUPPORTED', this.o.driver, 'the Redfish service root lists no Systems; nothing was sent');
    this.systemPath = await this.onlyMember(collection, 'system', 'system_id', opts);
    return this.systemPath;
  }

  /** The system's manager: `Links.ManagedBy[0]`, else the only member of the root's Managers. */
  async manager(system: Json, opts: CallOptions): Promise<string | null> {
    if (this.managerPath) return this.managerPath;
    const by = ((system['Links'] as Json | undefined)?.['ManagedBy'] as Json[] | undefined)?.[0]?.['@odata.id'];
    if (typeof by === 'string') return (this.managerPath = this.path(by, 'Links.ManagedBy'));
    const collection = this.link(await this.serviceRoot(opts), 'Managers');
    if (!collection) return null;
    const members = await this.members(collection, opts);
    return members.length === 1 ? (this.managerPath = members[0]!) : null;
  }

  async members(collection: string, opts: CallOptions): Promise<string[]> {
    const { json } = await this.call('GET', collection, opts);
    const list = Array.isArray(json?.['Members']) ? (json['Members'] as Json[]) : [];
    return list.map((m) => m['@odata.id']).filter((p): p is string => typeof p === 'string').map((p) => this.path(p, collection));
  }

  /** A path the BMC gave (absolute or relative), checked to stay on the BMC's origin. */
  path(ref: string, where: string): string {
    let u: URL;
    try {
      u = new URL(ref, this.o.origin);
    } catch {
      throw new BmcError('BMC_ERR_BAD_RESPONSE', this.o.driver, `${where}: not a path: ${JSON.stringify(ref.slice(0, 200))}`);
    }
    if (u.origin !== new URL(this.o.origin).origin) {
      throw new BmcError('BMC_ERR_BAD_RESPONSE', this.o.driver, `${where}: ${u.origin} is not this BMC (${this.o.origin}); not followed`);
    }
    return `${u.pathname}${u.search}`;
  }

  /** A link of a resource, as a checked path (null when absent). */
  link(doc: Json | null | undefined, key: string, within?: string): string | null {
    const ref = link(doc, key, within);
    return ref === null ? null : this.path(ref, within ? `${within}.${key}` : key);
  }

  /** Logs out (DELETE of the session); errors are logged, not thrown. */
  async close(): Promise<void> {
    const auth = this.auth;
    this.auth = null;
    if (auth?.kind !== 'session' || auth.location === null) return;
    try {
      const res = await this.raw('DELETE', auth.location, { timeoutMs: 2_000 }, auth);
      if (res.status >= 300 && res.status !== 404) this.o.log.debug({ driver: this.o.driver, status: res.status }, 'redfish logout refused');
    } catch (e) {
      this.o.log.debug({ driver: this.o.driver, err: (e as Error).message }, 'redfish logout failed');
    }
  }

  private async onlyMember(collection: string, what: string, setting: string, opts: CallOptions): Promise<string> {
    const members = await this.members(collection, opts);
    if (members.length === 1) return members[0]!;
    throw new BmcError(
      'BMC_ERR_UNSUPPORTED',
      this.o.driver,
      members.length === 0
        ? `${collection} lists no ${what}; nothing was sent`
        : `${collection} lists ${members.length} ${what}s (${members.slice(0, 5).join(', ')}): set ${setting}; nothing was sent`,
    );
  }

  private authenticate(opts: CallOptions): Promise<Auth> {
    if (this.auth) return Promise.resolve(this.auth);
    this.authing ??= this.login(opts).finally(() => (this.authing = null));
    return this.authing;
  }

  private async login(opts: CallOptions): Promise<Auth> {
    const user = this.o.username;
    if (user === null) return (this.auth = { kind: 'none' });
    const password = (await this.o.password()) ?? '';
    const basic: Auth = { kind: 'basic', header: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
    const sessions = this.link(await this.serviceRoot(opts), 'Sessions', 'Links');
    if (!sessions) return (this.auth = basic);
    const res = await this.raw('POST', sessions, opts, { kind: 'none' }, { UserName: user, Password: password });
    if (res.status === 401) {
      throw new BmcError('BMC_ERR_AUTH', this.o.driver, `login as ${user} refused (HTTP 401${detail(res.body)}); nothing was sent`);
    }
    const token = res.headers['x-auth-token'];
    // Any other refusal (404, 405, 501, 403, 5xx) carries no token, nor does a service that ignores the login: Basic.
    if (!token) {
      this.o.log.info({ driver: this.o.driver, origin: this.o.origin, status: res.status }, 'redfish SessionService refused a session: using HTTP Basic');
      return (this.auth = basic);
    }
    const loc = res.headers['location'] ?? (safeJson(res.body)?.['@odata.id'] as string | undefined);
    return (this.auth = { kind: 'session', token, location: typeof loc === 'string' ? this.path(loc, 'session Location') : null });
  }

  private async followTask(what: string, accepted: RedfishReply, started: number, opts: CallOptions): Promise<RedfishReply> {
    const monitor = accepted.headers['location'] ?? (accepted.json?.['@odata.id'] as string | undefined);
    if (typeof monitor !== 'string') return accepted;
    const path = this.path(monitor, `${what}: task monitor`);
    const deadline = started + (opts.timeoutMs ?? this.o.defaultTimeoutMs ?? 30_000);
    for (let i = 0; ; i++) {
      const left = deadline - this.o.clock.now();
      if (left <= 0) {
        throw new BmcError('BMC_ERR_TIMEOUT', this.o.driver, `${what}: task ${path} still running at the deadline; it may still complete`);
      }
      await this.o.clock.sleep(Math.min(TASK_POLL_MS[Math.min(i, TASK_POLL_MS.length - 1)]!, left), opts.signal);
      const res = await this.call('GET', path, opts);
      const state = res.json?.['TaskState'];
      if (res.status === 202 || (typeof state === 'string' && TASK_RUNNING.has(state))) continue;
      if (typeof state === 'string' && TASK_FAILED.has(state)) {
        const msgs = extendedInfo(JSON.stringify({ '@Message.ExtendedInfo': res.json?.['Messages'] ?? [] }));
        throw new BmcError('BMC_ERR_COMMAND_FAILED', this.o.driver, `${what}: task ${path} ended ${state}${msgs ? `: ${msgs}` : ''}`);
      }
      return res;
    }
  }

  private async raw(method: string, path: string, opts: CallOptions, auth: Auth, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResponse> {
    const h: Record<string, string> = { accept: 'application/json', 'odata-version': '4.0', ...headers };
    if (auth.kind === 'basic') h['authorization'] = auth.header;
    if (auth.kind === 'session') h['x-auth-token'] = auth.token;
    try {
      return await this.o.http.request({
        method: method as 'GET',
        url: `${this.o.origin}${path}`,
        headers: h,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(this.o.caFile !== undefined && !this.o.insecure ? { caFile: this.o.caFile } : {}),
        insecure: this.o.insecure,
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (e) {
      throw transportError(this.o.driver, `${method} ${path}`, e);
    }
  }
}

function reply(res: HttpResponse, driver: string, what: string): RedfishReply {
  let json: Json | null = null;
  if (res.body.trim() !== '') {
    json = safeJson(res.body);
    if (json === null) throw new BmcError('BMC_ERR_BAD_RESPONSE', driver, `${what}: HTTP ${res.status} with a body that is not a JSON object`);
  }
  const tag = res.headers['etag'] ?? (typeof json?.['@odata.etag'] === 'string' ? json['@odata.etag'] : null);
  return { status: res.status, headers: res.headers, json, etag: tag ?? null };
}

function safeJson(body: string): Json | null {
  try {
    const v: unknown = JSON.parse(body);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : null;
  } catch {
    return null;
  }
}

/** `doc[key]['@odata.id']`, or `doc[within][key]['@odata.id']`. */
export function link(doc: Json | null | undefined, key: string, within?: string): string | null {
  const holder = within ? (doc?.[within] as Json | undefined) : doc;
  const id = (holder?.[key] as Json | undefined)?.['@odata.id'];
  return typeof id === 'string' ? id : null;
}

function detail(body: string): string {
  const d = extendedInfo(body);
  return d ? `: ${d}` : '';
}
