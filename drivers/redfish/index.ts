/**
 * The `redfish` driver: its settings only, until the drivers issue brings the driver itself. A node naming it is
 * enrolled; its BMC calls fail BMC_ERR_UNSUPPORTED (drivers/registry.ts: a definition without `create`).
 */
import { Type } from '@sinclair/typebox';
import { driverSettings, FilePath } from '../settings.js';
import type { DriverDefinition } from '../types.js';

export const redfishDriver: DriverDefinition = {
  name: 'redfish',
  capabilities: ['power', 'boot', 'media', 'inventory'],
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
};
