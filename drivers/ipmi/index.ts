/**
 * The `ipmi` driver (ipmitool, lanplus): its settings only, until the drivers issue brings the driver itself. A node
 * naming it is enrolled; its BMC calls fail BMC_ERR_UNSUPPORTED (drivers/registry.ts: a definition without `create`).
 */
import { isIP } from 'node:net';
import { Type } from '@sinclair/typebox';
import { driverSettings, HOSTNAME_RE } from '../settings.js';
import type { DriverDefinition } from '../types.js';

export const ipmiDriver: DriverDefinition = {
  name: 'ipmi',
  capabilities: ['power', 'boot'],
  settings: driverSettings({
    /** IPMI lanplus cipher suite (ipmitool's default when absent). */
    cipher_suite: Type.Optional(Type.Integer({ minimum: 0, maximum: 17 })),
  }),
  check(s, report) {
    const address = s['address'];
    if (typeof address === 'string') {
      if (address.includes('://')) {
        let ok = false;
        try {
          ok = new URL(address).hostname !== '';
        } catch {
          ok = false;
        }
        if (!ok) report.error('address', 'expected a host name, an IP address or a URL');
      } else if (!isIP(address) && !HOSTNAME_RE.test(address)) {
        report.error('address', 'expected a host name or an IP address');
      }
    }
    if (typeof s['username'] !== 'string') report.error('username', 'the ipmi driver needs username and password_file');
    if (typeof s['password_file'] !== 'string') {
      report.error('password_file', 'the ipmi driver needs username and password_file');
    }
  },
};
