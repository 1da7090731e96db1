/** Binding the real redfish driver, with the real undici HTTP port, to a ScriptedBmc; a logger that records. */
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { UndiciHttpClient } from '../../../drivers/http.js';
import { defaultDriverPorts, type DriverLogger } from '../../../drivers/ports.js';
import { redfishDriver } from '../../../drivers/redfish/index.js';
import type { BoundDriver } from '../../../drivers/types.js';
import { PASSWORD, ScriptedBmc, USER } from './scripted-bmc.js';
import { makeTestPki, type TestPki } from './tls.js';

export interface LogEntry {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

export function recordingLog(): { log: DriverLogger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void entries.push({ level, obj, msg });
  return { entries, log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

export interface Bound {
  driver: BoundDriver;
  http: UndiciHttpClient;
  logs: LogEntry[];
}

/**
 * Per test: a fresh ScriptedBmc (`ctx.bmc`) and `ctx.bind(settings)`, which binds the driver with the CA as
 * `ca_file`, the test user and password. Everything is closed after each test, also when it fails.
 */
export function useScriptedBmc() {
  const ctx = {} as { pki: TestPki; bmc: ScriptedBmc; bind(over?: Record<string, unknown>, password?: () => string): Bound };
  const open: (Bound & { close(): Promise<void> })[] = [];
  beforeAll(() => {
    ctx.pki = makeTestPki();
  });
  afterAll(() => ctx.pki.cleanup());
  afterEach(async () => {
    for (const b of open.splice(0)) await b.close();
    await ctx.bmc.close();
  });
  beforeEach(async () => {
    ctx.bmc = await ScriptedBmc.start(ctx.pki);
  });
  ctx.bind = (over = {}, password) => {
    const b = bindTo(ctx.bmc, ctx.pki, over, password);
    open.push(b);
    return b;
  };
  return ctx;
}


/** The driver bound to `bmc` with the CA as ca_file, the test user and password; `close` releases all. */
export function bindTo(
  bmc: ScriptedBmc,
  pki: TestPki,
  over: Record<string, unknown> = {},
  password: () => string = () => PASSWORD,
): Bound & { close(): Promise<void> } {
  const { log, entries } = recordingLog();
  const http = new UndiciHttpClient();
  const settings = { address: bmc.origin, username: USER, password_file: '/run/credentials/pw', ca_file: pki.caFile, ...over };
  const driver = redfishDriver.create(
    { nodeId: 'rf-node', settings, secret: (k) => Promise.resolve(k === 'password_file' ? password() : null) },
    { clock: defaultDriverPorts.clock, log, http },
  );
  return {
    driver,
    http,
    logs: entries,
    close: async () => {
      await driver.close?.();
      await http.close();
    },
  };
}
