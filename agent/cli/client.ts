/**
 * A small typed HTTP client of metald's local REST API (docs/api.md), used by `metalctl`.
 *
 * Contract: every call sends `X-Auth-Token`, has a deadline (`timeoutMs`, through AbortSignal), and either resolves
 * with a 2xx answer or throws one of three errors: ApiError (the API answered with a non-2xx status; its message is
 * the API's own: `error_msg` on v1 paths, the nova fault's `message` on v2/v2.1 paths), ConnectionError (nothing
 * was answered: refused, unresolvable, reset, timed out). `fetch` is injectable so tests need no monkeypatching.
 */
import type { LinkStatus } from '../upstream/types.js';
import type { IronicPowerTarget } from '../vocab.js';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** Base URL of the API, e.g. http://127.0.0.1:6385 (a path prefix is kept). */
  baseUrl: string;
  /** The API token (read from a file or the environment by the caller; never from argv). */
  token: string;
  /** Per-request deadline in milliseconds. */
  timeoutMs: number;
  fetch?: FetchLike | undefined;
}

/** What a successful call returns: the parsed body (undefined when empty or not JSON) and the raw text. */
export interface ApiResponse<T> {
  status: number;
  requestId: string | null;
  /** The answer's headers (metalctl --wait reads X-Metald-Action-Finished). */
  headers: Headers;
  /** The body exactly as received (what `--json` prints). */
  text: string;
  body: T;
}

/** GET /readyz's body (agent/api/responses.ts Readiness). */
export interface Readiness {
  status: 'ready' | 'not ready';
  reasons: string[];
  liveness?: { engine: string; reason: string };
  /** The upstream link (agent/upstream/types.ts LinkStatus) and the journal's last seq. */
  upstream?: LinkStatus & { last_seq: number };
}

/** The API answered with a non-2xx status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly requestId: string | null,
    readonly body: unknown,
    message: string,
  ) {
    super(message);
  }
}

/** Nothing usable was answered: connection refused or reset, name not resolved, deadline passed. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly url: string,
    /** A short machine word: ECONNREFUSED, ENOTFOUND, TIMEOUT, ... */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

// ---- wire shapes (seed documents; only the fields metalctl reads are typed, the rest pass through) ----

export interface FixedIp {
  ip_address: string;
  version: number;
}

export interface NetworkInfoEntry {
  network?: string;
  port_type?: string | null;
  mac_address?: string | null;
  fixed_ips?: FixedIp[];
}

/** Seed 004 instance (create response, list item, show). */
export interface InstanceView {
  uuid: string;
  name: string;
  description: string | null;
  instance_type_uuid: string | null;
  image_uuid: string | null;
  availability_zone: string | null;
  network_info: Record<string, NetworkInfoEntry> | null;
  links?: { href: string; rel: string }[];
  status: string;
  power_state: string | null;
  project_id: string;
  user_id: string;
  created_at: string;
  updated_at: string | null;
  [key: string]: unknown;
}

export interface StatusError {
  error_code: string;
  error_msg: string;
  error_type: string;
}

/** Seed 003 status. */
export interface InstanceStatus {
  state: string;
  operation_state: string | null;
  error: StatusError | null;
}

/** Seed 004 states. */
export interface PowerStates {
  power_state: string | null;
  target_power_state: string | null;
}

/** Seed 002 server (only what metalctl reads). */
export interface ServerView {
  server: { id: string; status?: string; progress?: number | null; [key: string]: unknown };
}

export interface InstanceActionSummary {
  action: string;
  instance_uuid: string;
  message: string | null;
  project_id: string;
  request_id: string;
  start_time: string;
  user_id: string;
}

export interface InstanceActionEvent {
  event: string;
  start_time: string | null;
  finish_time: string | null;
  result: string | null;
  traceback?: string | null;
}

export interface InstanceActionDetail extends InstanceActionSummary {
  events: InstanceActionEvent[];
}

export interface FpingServer {
  alive: boolean;
  id: string;
  project_id: string;
}

/** The admin node view (Ironic's names: `uuid`, `instance_uuid`). */
export interface NodeView {
  uuid: string;
  name: string;
  type?: string;
  boot_mode?: string;
  power_state: string | null;
  target_power_state?: string | null;
  maintenance: boolean;
  maintenance_reason?: string | null;
  last_error?: unknown;
  instance_uuid: string | null;
  [key: string]: unknown;
}

export interface CreateInstanceBody {
  name: string;
  description?: string;
  instance_type_uuid?: string;
  image_uuid: string;
  availability_zone?: string;
  networks?: { uuid: string; port_type?: string }[];
  metadata?: Record<string, string>;
  extra?: {
    node_id?: string;
    hostname?: string;
    ssh_keys?: string[];
    password_hash?: string;
    user_data?: string;
  };
}

export interface OsParams {
  image_uuid?: string;
  hostname?: string;
  ssh_keys?: string[];
  password_hash?: string;
  user_data?: string;
}

/** The body of `POST .../actions`: exactly one key. */
export type ActionBody =
  | { reinstall: OsParams }
  | { 'switch-install': OsParams & { image_uuid: string } }
  | { 'modify-ip': { networks: { uuid: string; port_type?: string; fixed_ip?: string }[] } }
  | { uninstall: Record<string, never> }
  | { 'change-password': { password_hash: string } }
  | { retry: Record<string, never> };

/** Ironic's power targets (seed 004; agent/vocab.ts). */
export interface PowerBody {
  target: IronicPowerTarget;
  timeout?: number;
}

const seg = (s: string): string => encodeURIComponent(s);

/** The message of an error body: v1 `error_msg`, a nova fault's `message`, or a framework's `message`. */
export function errorMessageOf(body: unknown, text: string, status: number): string {
  if (body !== null && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (typeof b.error_msg === 'string') return b.error_msg;
    const keys = Object.keys(b);
    if (keys.length === 1) {
      const fault = b[keys[0] as string];
      if (fault !== null && typeof fault === 'object' && typeof (fault as Record<string, unknown>).message === 'string') {
        return (fault as Record<string, string>).message as string;
      }
    }
    if (typeof b.message === 'string') return b.message;
  }
  const t = text.trim();
  if (t !== '' && t.length <= 200) return t;
  return `HTTP ${status}`;
}

function causeCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    const o = e as { code?: unknown; errors?: unknown[]; cause?: unknown };
    if (typeof o.code === 'string') return o.code;
    if (Array.isArray(o.errors) && o.errors.length > 0) {
      const first = o.errors[0] as { code?: unknown };
      if (typeof first?.code === 'string') return first.code;
    }
    e = o.cause;
  }
  return undefined;
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  CERT_HAS_EXPIRED: 'TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate cannot be verified',
};

export class MetalClient {
  private readonly base: string;
  private readonly fetchFn: FetchLike;

  constructor(private readonly opts: ClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  /** The base URL as given (for messages). */
  get baseUrl(): string {
    return this.base;
  }

  /**
   * One request. Resolves on 2xx only.
   * @throws ApiError on a non-2xx answer, ConnectionError when nothing was answered in time.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const url = this.base + path;
    const headers: Record<string, string> = { 'X-Auth-Token': this.opts.token, Accept: 'application/json' };
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(this.opts.timeoutMs) };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(url, init);
      text = await res.text();
    } catch (err) {
      throw this.connectionError(err);
    }
    const requestId = res.headers.get('x-compute-request-id');
    let parsed: unknown = undefined;
    if (text.trim() !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (res.status < 200 || res.status > 299) {
      throw new ApiError(res.status, requestId, parsed, errorMessageOf(parsed, text, res.status));
    }
    return { status: res.status, requestId, headers: res.headers, text, body: parsed as T };
  }

  private connectionError(err: unknown): ConnectionError {
    const name = (err as { name?: unknown } | null)?.name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      const s = this.opts.timeoutMs / 1000;
      return new ConnectionError(this.base, 'TIMEOUT', `no answer from metald at ${this.base} within ${s} s (--timeout)`);
    }
    const code = causeCode(err) ?? 'UNKNOWN';
    const what = REASONS[code] ?? (err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err));
    const hint = code === 'ECONNREFUSED' ? ' (is metald running? set --url or METALCTL_URL)' : '';
    return new ConnectionError(this.base, code, `cannot connect to metald at ${this.base}: ${what}${hint}`);
  }

  // ---- instances (seed 004 / 003) ----

  listInstances(project: string): Promise<ApiResponse<{ instances: InstanceView[] }>> {
    return this.request('GET', `/v1/${seg(project)}/instances`);
  }
  getInstance(project: string, id: string): Promise<ApiResponse<InstanceView>> {
    return this.request('GET', `/v1/${seg(project)}/instances/${seg(id)}`);
  }
  createInstance(project: string, body: CreateInstanceBody): Promise<ApiResponse<InstanceView>> {
    return this.request('POST', `/v1/${seg(project)}/instances`, body);
  }
  deleteInstance(project: string, id: string): Promise<ApiResponse<unknown>> {
    return this.request('DELETE', `/v1/${seg(project)}/instances/${seg(id)}`);
  }
  getStatus(project: string, id: string): Promise<ApiResponse<InstanceStatus>> {
    return this.request('GET', `/v1/${seg(project)}/instances/${seg(id)}/status`);
  }
  postAction(project: string, id: string, body: ActionBody): Promise<ApiResponse<{ request_id?: string }>> {
    return this.request('POST', `/v1/${seg(project)}/instances/${seg(id)}/actions`, body);
  }
  getPowerStates(id: string): Promise<ApiResponse<PowerStates>> {
    return this.request('GET', `/v1/instances/${seg(id)}/states`);
  }
  setInstancePower(id: string, body: PowerBody): Promise<ApiResponse<unknown>> {
    return this.request('PUT', `/v1/instances/${seg(id)}/states/power`, body);
  }

  // ---- nova views (seeds 002, 001, 000) ----

  getServer(project: string, id: string): Promise<ApiResponse<ServerView>> {
    return this.request('GET', `/v2/${seg(project)}/servers/${seg(id)}`);
  }
  listActions(project: string, id: string): Promise<ApiResponse<{ instanceActions: InstanceActionSummary[] }>> {
    return this.request('GET', `/v2/${seg(project)}/servers/${seg(id)}/os-instance-actions`);
  }
  getAction(project: string, id: string, requestId: string): Promise<ApiResponse<{ instanceAction: InstanceActionDetail }>> {
    return this.request('GET', `/v2/${seg(project)}/servers/${seg(id)}/os-instance-actions/${seg(requestId)}`);
  }
  ping(project: string, id: string): Promise<ApiResponse<{ server: FpingServer }>> {
    return this.request('GET', `/v2.1/${seg(project)}/os-fping/${seg(id)}`);
  }
  pingAll(project: string, allTenants: boolean): Promise<ApiResponse<{ servers: FpingServer[] }>> {
    return this.request('GET', `/v2.1/${seg(project)}/os-fping${allTenants ? '?all_tenants=1' : ''}`);
  }

  // ---- the agent ----

  /** /readyz: readiness (200 or 503, both answered as a body here), the ICMP engine, the upstream link. */
  async readiness(): Promise<ApiResponse<Readiness>> {
    try {
      return await this.request('GET', '/readyz');
    } catch (e) {
      if (e instanceof ApiError && e.status === 503 && e.body !== null && typeof e.body === 'object') {
        return { status: 503, requestId: e.requestId, headers: new Headers(), text: JSON.stringify(e.body), body: e.body as Readiness };
      }
      throw e;
    }
  }

  // ---- nodes (admin) ----

  listNodes(): Promise<ApiResponse<{ nodes: NodeView[] }>> {
    return this.request('GET', '/v1/nodes');
  }
  getNode(id: string): Promise<ApiResponse<NodeView>> {
    return this.request('GET', `/v1/nodes/${seg(id)}`);
  }
  setNodePower(id: string, body: PowerBody): Promise<ApiResponse<unknown>> {
    return this.request('PUT', `/v1/nodes/${seg(id)}/states/power`, body);
  }
  setMaintenance(id: string, maintenance: boolean, reason?: string): Promise<ApiResponse<unknown>> {
    const body: { maintenance: boolean; reason?: string } = { maintenance };
    if (reason !== undefined) body.reason = reason;
    return this.request('PUT', `/v1/nodes/${seg(id)}/maintenance`, body);
  }
}
