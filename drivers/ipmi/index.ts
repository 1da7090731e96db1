/**
 * The `ipmi` driver: power and boot device through ipmitool over IPMI 2.0 lanplus (ipmitool.ts builds argv and reads
 * output; client.ts runs it through the ProcessRunner port; power.ts and boot.ts are the capabilities).
 * The password (`password_file`) reaches ipmitool only through its environment (`-E`), never argv; every call has
 * the deadline drivers/bmc.ts gives it, after which ipmitool's process group is killed.
 */
import { isIP } from 'node:net';
import { Type } from '@sinclair/typebox';
import { driverSettings, HOSTNAME_RE, type DriverSettings } from '../settings.js';
import type { BoundDriver, DriverFactory } from '../types.js';
import { createIpmiBoot } from './boot.js';
import { IpmitoolClient } from './client.js';
import { ipmitoolHome } from './home.js';
import { createIpmiPower } from './power.js';

/**
 * Defaults of the settings below (docs/config.md), applied by the driver: not `default` keywords, which the config
 * loader would write into the settings of every node, whatever its drivers.
 */
export const IPMI_DEFAULTS = { port: 623, cipher_suite: 3, retries: 2, retry_timeout_s: 1, ipmitool: 'ipmitool' } as const;

export const IPMI_SETTINGS = driverSettings({
  /** IPMI lanplus cipher suite (ipmitool -C); 3 when absent (asking the BMC costs seconds on some, e.g. ipmi_sim). */
  cipher_suite: Type.Optional(Type.Integer({ minimum: 0, maximum: 17 })),
  /** ipmitool -R: attempts per request. */
  retries: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
  /** ipmitool -N: seconds between retransmissions. */
  retry_timeout_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 60 })),
  /**
   * false for a BMC that keeps a boot device for the next boot only (ipmi_sim, some old BMCs): a persistent boot
   * device (an installed node's disk) is then set for the next boot only and verified as such. Default true.
   */
  persistent_boot: Type.Optional(Type.Boolean()),
});

/** Host and port of the BMC: `address` is a host, an IP or a URL whose host (and port) are used; `port` wins. */
export function ipmiEndpoint(s: DriverSettings): { host: string; port: number } {
  const address = String(s['address']);
  let host = address;
  let urlPort: number | undefined;
  if (address.includes('://')) {
    const u = new URL(address);
    host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    urlPort = u.port === '' ? undefined : Number(u.port);
  }
  const port = typeof s['port'] === 'number' ? s['port'] : (urlPort ?? IPMI_DEFAULTS.port);
  return { host, port };
}

export const ipmiDriver: DriverFactory = {
  name: 'ipmi',
  capabilities: ['power', 'boot'],
  settings: IPMI_SETTINGS,
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
  /** @throws Error when the ports have no process runner (the registry then fails the node's calls, nothing sent). */
  create(target, ports): BoundDriver {
    if (!ports.run) throw new Error('the ipmi driver needs a process runner (ports.run) to run ipmitool');
    const s = target.settings;
    const { host, port } = ipmiEndpoint(s);
    const num = (key: 'cipher_suite' | 'retries' | 'retry_timeout_s'): number => (typeof s[key] === 'number' ? (s[key] as number) : IPMI_DEFAULTS[key]);
    const client = new IpmitoolClient({
      runner: ports.run,
      clock: ports.clock,
      log: ports.log,
      binary: IPMI_DEFAULTS.ipmitool,
      nodeId: target.nodeId,
      session: {
        host,
        port,
        username: String(s['username'] ?? ''),
        cipherSuite: num('cipher_suite'),
        retries: num('retries'),
        retryTimeoutS: num('retry_timeout_s'),
      },
      password: () => target.secret('password_file'),
      home: ipmitoolHome(ports.workDir, (message) => ports.log.warn({ node: target.nodeId }, message)),
    });
    return {
      name: 'ipmi',
      capabilities: ['power', 'boot'],
      power: createIpmiPower(client),
      boot: createIpmiBoot(client, s['persistent_boot'] !== false),
      close: () => Promise.resolve(),
    };
  },
};
