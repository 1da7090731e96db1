/**
 * A small scripted Redfish BMC for the driver's unit tests: node:https with the openssl-made certificate of tls.ts,
 * one system, one manager with one CD slot, a SessionService, ETags on the system. Its own request log (`seen`) is
 * what the tests assert; `on(method, path, handler)` replaces a route for one test (return undefined to fall back to
 * the default). Not the Redfish emulator of test/emulators/: only what the driver tests need, scripted per case.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export type Handler = (req: Seen, bmc: ScriptedBmc) => Reply | undefined | Promise<Reply | undefined>;

export const USER = 'admin';
export const PASSWORD = 's3cret-Pa55';
const SYS = '/redfish/v1/Systems/1';
const CD = '/redfish/v1/Managers/1/VirtualMedia/Cd';

export class ScriptedBmc {
  readonly seen: Seen[] = [];
  power = 'Off';
  resets: readonly string[] | null = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'GracefulRestart'];
  boot: Record<string, unknown> = {
    BootSourceOverrideTarget: 'None',
    'BootSourceOverrideTarget@Redfish.AllowableValues': ['None', 'Pxe', 'Hdd', 'Cd'],
    BootSourceOverrideEnabled: 'Disabled',
    BootSourceOverrideMode: 'UEFI',
  };
  media: { Image: string | null; Inserted: boolean } = { Image: null, Inserted: false };
  etag = 1;
  sessionsEnabled = true;
  /** The password it accepts (a test may rotate it). */
  password = PASSWORD;
  /** TCP connections accepted, and TLS handshakes completed on the server's side. */
  tcpConnections = 0;
  tlsConnections = 0;
  /** token -> session path. */
  readonly sessions = new Map<string, string>();
  private readonly routes = new Map<string, Handler>();
  private readonly sockets = new Set<Socket>();
  private nextSession = 1;

  private constructor(private readonly server: Server) {}

  static async start(tls: { cert: string; key: string }): Promise<ScriptedBmc> {
    const server = createServer({ cert: tls.cert, key: tls.key });
    const bmc = new ScriptedBmc(server);
    server.on('secureConnection', () => void (bmc.tlsConnections += 1));
    server.on('connection', (s: Socket) => {
      bmc.tcpConnections += 1;
      bmc.sockets.add(s);
      s.on('close', () => bmc.sockets.delete(s));
    });
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const seen: Seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        bmc.seen.push(seen);
        void bmc.handle(seen).then((r) => {
          const body = r.body === undefined ? '' : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
          res.writeHead(r.status, { ...(body ? { 'content-type': 'application/json' } : {}), ...r.headers });
          res.end(body);
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return bmc;
  }

  get origin(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Connections still open (a client that closed its pool has none). */
  get openConnections(): number {
    return this.sockets.size;
  }

  on(method: string, path: string, handler: Handler): this {
    this.routes.set(`${method} ${path}`, handler);
    return this;
  }

  /** The requests other than the unauthenticated service root. */
  calls(): string[] {
    return this.seen.map((s) => `${s.method} ${s.path}`);
  }

  /** Closes the listener and every connection (the driver's keep-alive sockets too). */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  system(): Record<string, unknown> {
    const reset: Record<string, unknown> = { target: `${SYS}/Actions/ComputerSystem.Reset` };
    if (this.resets) reset['ResetType@Redfish.AllowableValues'] = this.resets;
    return {
      '@odata.id': SYS,
      Id: '1',
      Manufacturer: 'Scripted',
      Model: 'S1',
      SerialNumber: 'SN-1',
      PowerState: this.power,
      Boot: this.boot,
      ProcessorSummary: { Count: 2 },
      MemorySummary: { TotalSystemMemoryGiB: 4 },
      Links: { ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/1' }] },
      Actions: { '#ComputerSystem.Reset': reset },
    };
  }

  private authorized(h: IncomingHttpHeaders): boolean {
    const token = h['x-auth-token'];
    if (typeof token === 'string') return this.sessions.has(token);
    const basic = h['authorization'];
    return basic === `Basic ${Buffer.from(`${USER}:${this.password}`).toString('base64')}`;
  }

  private async handle(req: Seen): Promise<Reply> {
    const custom = this.routes.get(`${req.method} ${req.path}`);
    const r = custom ? await custom(req, this) : undefined;
    return r ?? this.builtin(req);
  }

  private builtin(req: Seen): Reply {
    const key = `${req.method} ${req.path}`;
    if (key === 'GET /redfish/v1/') {
      return {
        status: 200,
        body: {
          '@odata.id': '/redfish/v1/',
          Systems: { '@odata.id': '/redfish/v1/Systems' },
          Managers: { '@odata.id': '/redfish/v1/Managers' },
          ...(this.sessionsEnabled ? { SessionService: { '@odata.id': '/redfish/v1/SessionService' }, Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } } } : {}),
        },
      };
    }
    if (key === 'POST /redfish/v1/SessionService/Sessions' && this.sessionsEnabled) {
      const b = JSON.parse(req.body || '{}') as { UserName?: string; Password?: string };
      if (b.UserName !== USER || b.Password !== this.password) return { status: 401, body: errorBody('Base.1.8.NoValidSession', 'Invalid credentials.') };
      const id = this.nextSession++;
      const token = `tok-${id}-${Math.random().toString(36).slice(2)}`;
      const path = `/redfish/v1/SessionService/Sessions/${id}`;
      this.sessions.set(token, path);
      return { status: 201, headers: { 'x-auth-token': token, location: path }, body: { '@odata.id': path, UserName: USER } };
    }
    if (!this.authorized(req.headers)) return { status: 401, body: errorBody('Base.1.8.NoValidSession', 'No valid session.') };
    if (req.method === 'DELETE' && req.path.startsWith('/redfish/v1/SessionService/Sessions/')) {
      for (const [t, p] of this.sessions) if (p === req.path) this.sessions.delete(t);
      return { status: 204 };
    }
    switch (key) {
      case 'GET /redfish/v1/Systems':
        return { status: 200, body: { Members: [{ '@odata.id': SYS }] } };
      case `GET ${SYS}`:
        return { status: 200, headers: { etag: `W/"${this.etag}"` }, body: this.system() };
      case `POST ${SYS}/Actions/ComputerSystem.Reset`:
        return this.reset(req);
      case `PATCH ${SYS}`:
        return this.patchSystem(req);
      case 'GET /redfish/v1/Managers/1':
        return { status: 200, body: { '@odata.id': '/redfish/v1/Managers/1', VirtualMedia: { '@odata.id': '/redfish/v1/Managers/1/VirtualMedia' } } };
      case 'GET /redfish/v1/Managers/1/VirtualMedia':
        return { status: 200, body: { Members: [{ '@odata.id': CD }] } };
      case `GET ${CD}`:
        return {
          status: 200,
          body: {
            '@odata.id': CD,
            MediaTypes: ['CD', 'DVD'],
            ...this.media,
            Actions: { '#VirtualMedia.InsertMedia': { target: `${CD}/Actions/VirtualMedia.InsertMedia` }, '#VirtualMedia.EjectMedia': { target: `${CD}/Actions/VirtualMedia.EjectMedia` } },
          },
        };
      case `POST ${CD}/Actions/VirtualMedia.InsertMedia`: {
        const b = JSON.parse(req.body) as { Image: string };
        this.media = { Image: b.Image, Inserted: true };
        return { status: 204 };
      }
      case `POST ${CD}/Actions/VirtualMedia.EjectMedia`:
        this.media = { Image: null, Inserted: false };
        return { status: 204 };
      default:
        return { status: 404, body: errorBody('Base.1.8.ResourceMissingAtURI', `The resource at the URI ${req.path} was not found.`) };
    }
  }

  private reset(req: Seen): Reply {
    const { ResetType } = JSON.parse(req.body) as { ResetType: string };
    if (this.resets && !this.resets.includes(ResetType)) {
      return { status: 400, body: errorBody('Base.1.8.ActionParameterValueNotInList', `The value ${ResetType} for the parameter ResetType is not in the list of acceptable values.`) };
    }
    if (['On', 'ForceOn', 'ForceRestart', 'GracefulRestart', 'PowerCycle'].includes(ResetType)) this.power = 'On';
    else if (ResetType === 'PushPowerButton') this.power = this.power === 'On' ? 'Off' : 'On';
    else this.power = 'Off';
    return { status: 204 };
  }

  private patchSystem(req: Seen): Reply {
    const match = req.headers['if-match'];
    if (match !== undefined && match !== `W/"${this.etag}"`) {
      return { status: 412, body: errorBody('Base.1.8.PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.') };
    }
    const { Boot } = JSON.parse(req.body) as { Boot: Record<string, unknown> };
    this.boot = { ...this.boot, ...Boot };
    this.etag += 1;
    return { status: 204 };
  }
}

export function errorBody(id: string, message: string, resolution?: string): unknown {
  return {
    error: {
      code: 'Base.1.8.GeneralError',
      message: 'A general error has occurred. See ExtendedInfo for more information.',
      '@Message.ExtendedInfo': [{ MessageId: id, Message: message, ...(resolution ? { Resolution: resolution } : {}) }],
    },
  };
}
