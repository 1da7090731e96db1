/**
 * The `redfish` driver: power, boot override, virtual media and inventory of one system over HTTPS (the HTTP port,
 * drivers/http.ts on undici in production). One file per capability; the service (sessions, discovery, tasks) is
 * client.ts, the error tables errors.ts. TLS is verified against `ca_file` (the system CAs when absent);
 * `insecure: true` turns verification off and is logged as a warning at bind and on every power read.
 * Reboot of an off server: drivers/bmc.ts never sends a reset (a verified off, then a verified on).
 */
import { Type } from '@sinclair/typebox';
import { BmcError } from '../errors.js';
import { driverSettings, FilePath } from '../settings.js';
import type { BoundDriver, CallOptions, DriverFactory, Inventory } from '../types.js';
import { createRedfishBoot } from './boot.js';
import { RedfishClient, type Json } from './client.js';
import { createRedfishMedia } from './media.js';
import { createRedfishPower, type PowerContext, type SystemView } from './power.js';

const NAME = 'redfish';
const CAPABILITIES = ['power', 'boot', 'media', 'inventory'] as const;

export const redfishDriver: DriverFactory = {
  name: NAME,
  capabilities: CAPABILITIES,
  settings: driverSettings({
    /** The system's path, e.g. `/redfish/v1/Systems/1` (the only system when absent). */
    system_id: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /** CA bundle of the BMC's certificate (the system CAs when absent). */
    ca_file: Type.Optional(FilePath()),
  }),
  check(s, report) {
    const address = s['address'];
    if (typeof address === 'string') {
      let u: URL | undefined;
      try {
        u = new URL(address);
      } catch {
        u = undefined;
      }
      if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:')) {
        report.error('address', 'the redfish driver needs an https:// address, e.g. "https://10.0.1.22"');
      } else if (u.username || u.password) {
        report.error('address', 'credentials in a URL are not allowed: use username and password_file');
      } else if (u.protocol === 'http:' && s['insecure'] !== true) {
        report.error('address', 'http:// sends the BMC credentials in clear: use https://, or set insecure: true');
      }
    }
    const hasUser = typeof s['username'] === 'string';
    if (hasUser !== (typeof s['password_file'] === 'string')) {
      report.error(hasUser ? 'password_file' : 'username', 'the redfish driver needs both username and password_file, or neither');
    }
    if (s['insecure'] === true && s['ca_file'] !== undefined) report.warn('ca_file', 'ignored while insecure: true');
  },

  /** @throws Error without an HTTP port or with an address that is not a URL (the node's calls then fail, nothing sent). */
  create(target, ports): BoundDriver {
    const http = ports.http;
    if (!http) throw new Error('the redfish driver needs an HTTP client port, and this process supplies none');
    const s = target.settings;
    const url = new URL(String(s['address']));
    if (typeof s['port'] === 'number') url.port = String(s['port']);
    const origin = url.origin;
    const insecure = s['insecure'] === true;
    const where = { node: target.nodeId, driver: NAME, origin };
    const warnInsecure = () => {
      if (insecure) ports.log.warn(where, 'TLS certificate verification is OFF for this BMC (insecure: true): it can be impersonated and its credentials stolen');
    };
    warnInsecure();
    const client = new RedfishClient({
      driver: NAME,
      origin,
      username: typeof s['username'] === 'string' ? s['username'] : null,
      password: () => target.secret('password_file'),
      systemId: typeof s['system_id'] === 'string' ? s['system_id'] : null,
      caFile: typeof s['ca_file'] === 'string' ? s['ca_file'] : undefined,
      insecure,
      http,
      clock: ports.clock,
      log: ports.log,
    });
    const ctx: PowerContext = {
      driver: NAME,
      client,
      async readSystem(opts: CallOptions): Promise<SystemView> {
        const path = await client.system(opts);
        const r = await client.call('GET', path, opts);
        if (!r.json) throw new BmcError('BMC_ERR_BAD_RESPONSE', NAME, `GET ${path}: an empty answer`);
        const json = await power.complete(r.json, opts);
        power.noteSystem(json);
        return { path, json, etag: r.etag };
      },
      onPowerRead: warnInsecure,
    };
    const power = createRedfishPower(ctx);
    return {
      name: NAME,
      capabilities: CAPABILITIES,
      power,
      boot: createRedfishBoot(ctx),
      media: createRedfishMedia(ctx),
      inventory: { getInventory: async (opts) => inventoryOf((await ctx.readSystem(opts ?? {})).json) },
      close: () => client.close(),
    };
  },
};

function inventoryOf(system: Json): Inventory {
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const gib = num((system['MemorySummary'] as Json | undefined)?.['TotalSystemMemoryGiB']);
  return {
    manufacturer: str(system['Manufacturer']),
    model: str(system['Model']),
    serial: str(system['SerialNumber']),
    macs: [],
    cpus: num((system['ProcessorSummary'] as Json | undefined)?.['Count']),
    memory_mib: gib === null ? null : Math.round(gib * 1024),
  };
}
