#!/usr/bin/env node
/**
 * metald: the daemon. The only module that touches `process`, signals and `listen()`.
 *
 *   metald --config /etc/metald/metald.yaml          run
 *   metald --config FILE --check                     validate the file (every error as `path: message`) and exit
 *
 * SIGTERM/SIGINT stop in order: the BMC commands in flight are drained (at most BMC_DRAIN_MS, agent/drain.ts), running
 * operations are left persisted for the next start to resume or fail, and a stop that takes longer than STOP_LIMIT_MS
 * exits anyway. SIGHUP re-reads the config file and every secret file and says what it applied and what needs a
 * restart. Under systemd (`Type=notify`, systemd/metald.service) the daemon says READY=1 once start-up recovery is
 * done and the API listens, WATCHDOG=1 every WATCHDOG_USEC/2 from the event loop, STOPPING=1, RELOADING=1 and
 * STATUS= lines on NOTIFY_SOCKET (agent/sd-notify.ts).
 *
 * `runMetald(argv, injections)` is the daemon; this file's own command line calls it with no injections. The only
 * other caller is the test-only entry point scripts/test-metald-store-faults.ts, which passes a store fault injector.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import type { Logger } from 'pino';
import type { Agent } from './build-agent.js';
import type { ConfigWithWarnings } from './config/load.js';
import type { Config } from './config/types.js';
import type { Deployer } from './ports.js';
import type { Notifier, ServiceNotifier } from './sd-notify.js';
import type { StoreFaultInjector } from './store/sqlite.js';

// Everything else is imported inside runMetald, after applyV8Flags: a static import is loaded and compiled before
// this module's first line runs, and V8's young generation grows during that loading.

const VERSION = '0.1.0';

type ConfigLoader = typeof import('./config/load.js');

/**
 * The daemon's V8 settings, applied before the daemon's modules are loaded, so they hold however it is started
 * (`node dist/agent/main.js` by systemd and the bench, without NODE_OPTIONS). Both are read by V8 as it runs (the
 * heap's sizes given on node's command line are fixed once the heap exists):
 * - `--semi-space-growth-factor=1`: the young generation keeps its initial size (two 1 MiB semi-spaces) instead of
 *   doubling up to two 16 MiB ones under start-up's allocation; V8 keeps those pages resident (~25 MiB of RSS).
 * - `--optimize-for-size`: the old generation grows by small steps and V8 compacts and releases what start-up's
 *   short-lived objects (the YAML document, the config's validation) left: ~5-10 MiB at 100 nodes, ~15 at 1,000.
 * A flag the operator gives (`node --flag`, NODE_OPTIONS; for the first, any young-generation size) wins.
 * @returns the flags applied.
 */
export function applyV8Flags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, nodeOptions ?? ''].join(' ');
  const flags = [
    { flag: '--semi-space-growth-factor=1', unless: /--(max|min)-semi-space-size|--semi-space-growth-factor/ },
    { flag: '--optimize-for-size', unless: /--(no-)?optimize[-_]for[-_]size/ },
  ]
    .filter((f) => !f.unless.test(given))
    .map((f) => f.flag);
  for (const f of flags) setFlagsFromString(f);
  return flags;
}

function loadOrExplain(loader: ConfigLoader, path: string): ConfigWithWarnings | null {
  const { ConfigError, loadConfigWithWarnings } = loader;
  try {
    // The daemon parses through the cache in state_dir (agent/config/parse-cache.ts); --check too (it only reads).
    return loadConfigWithWarnings(path, { parseCache: true });
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`metald: invalid configuration ${path}:`);
      for (const line of e.errors) console.error(`  ${line}`);
    } else {
      console.error(`metald: cannot load configuration ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
    return null;
  }
}

/** What a caller other than the command line may inject. Production passes nothing. */
export interface DaemonInjections {
  /** TEST-ONLY: passed to the store's construction (see agent/store/sqlite.ts). */
  storeFault?: StoreFaultInjector;
  /** TEST-ONLY: the installer of every node (scripts/test-metald-installer.ts), instead of the DeployerRouter. */
  deployer?: Deployer;
}

export async function runMetald(argv: string[], inject: DaemonInjections = {}): Promise<void> {
  applyV8Flags(process.execArgv, process.env['NODE_OPTIONS']);
  const { Command } = await import('commander');
  const loader = await import('./config/load.js');
  const program = new Command()
    .name('metald')
    .description('Bare-metal provisioning agent')
    .version(VERSION)
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--check', 'validate the configuration and exit')
    .parse(argv);
  const opts = program.opts<{ config: string; check?: boolean }>();

  const loaded = loadOrExplain(loader, opts.config);
  if (!loaded) {
    process.exitCode = 2;
    return;
  }
  if (opts.check) {
    for (const w of loaded.warnings) console.error(`warning: ${w}`);
    console.error(`metald: ${opts.config} is valid`);
    return;
  }
  const [{ createLogger }, { buildAgent }, { LifecycleError }, { listenUrl }, sd, { STOP_LIMIT_MS }] = await Promise.all([
    import('./log.js'),
    import('./build-agent.js'),
    import('./lifecycle.js'),
    import('./api/public-url.js'),
    import('./sd-notify.js'),
    import('./drain.js'),
  ]);
  const log = createLogger({ level: loaded.config.log_level });
  for (const w of loaded.warnings) log.warn({ config: opts.config }, w);
  log.info({ config: opts.config, parse: loaded.parse?.hit ? 'cached' : 'yaml' }, 'configuration loaded');
  const notify = createServiceNotifier(sd, log);
  notify.status('starting: opening the store, recovering operations, reading every node\'s power');

  let agent: Agent;
  try {
    agent = await buildAgent(loaded.config, { log, ...(inject.storeFault ? { storeFault: inject.storeFault } : {}), ...(inject.deployer ? { deployer: inject.deployer } : {}) });
  } catch (e) {
    log.fatal({ err: e }, 'metald could not start');
    notify.close();
    log.flush();
    console.error(`metald: could not start: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
    return;
  }

  // The config is valid and state_dir exists (the store is open): a restart with this file skips its YAML parse.
  const saveParse = (l: ConfigWithWarnings, config: Config) => {
    try {
      l.parse?.save(config.state_dir);
    } catch (e) {
      log.warn({ err: e }, 'could not save the parsed configuration (the next start parses the file again)');
    }
  };
  saveParse(loaded, loaded.config);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    notify.stopping(`stopping (${signal}): draining BMC commands, closing the store`);
    // The bound of the whole stop: past it, metald exits as after a crash (every committed record is on disk).
    const limit = setTimeout(() => {
      log.fatal({ limit_ms: STOP_LIMIT_MS }, 'the stop did not finish in time: exiting (the next start resumes)');
      log.flush();
      process.exit(1);
    }, STOP_LIMIT_MS);
    limit.unref();
    try {
      await agent.stop();
      log.info('stopped');
    } catch (e) {
      log.error({ err: e }, 'stop failed');
      process.exitCode = 1;
    }
    clearTimeout(limit);
    notify.close();
    log.flush();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    notify.reloading();
    const next = loadOrExplain(loader, opts.config);
    if (!next) log.error({ config: opts.config }, 'SIGHUP: the configuration is invalid; the running one is kept (secrets re-read)');
    const res = agent.reload(next?.config ?? null);
    if (next) saveParse(next, agent.config());
    log.info(
      { applied: res.applied, restart_required: res.restartRequired, secrets_changed: res.secretsChanged.length, errors: res.errors },
      'SIGHUP: reloaded',
    );
    const summary = `${res.applied.length} applied, ${res.restartRequired.length} need a restart, ${res.errors.length} errors`;
    notify.reloaded(`${readyStatus()}; last reload: ${next ? summary : 'invalid configuration, kept the running one'}`);
  });

  // The agent's components start in order; the API's start is this listen(), before recovery (503 until ready).
  const listen = loaded.config.api.listen;
  const listenApi = async () => {
    await agent.api.listen({ host: listen.host, port: listen.port });
    log.info({ url: listenUrl(listen, agent.api.server.address()), agent_id: loaded.config.agent_id, version: VERSION }, 'api listening');
  };
  const bootListen = loaded.config.boot?.listen;
  const listenBoot = async () => {
    if (!agent.boot || !bootListen) return;
    await agent.boot.listen({ host: bootListen.host, port: bootListen.port });
    log.info({ url: listenUrl(bootListen, agent.boot.server.address()) }, 'boot server listening');
  };
  const readyStatus = () => `ready: ${agent.config().nodes.length} nodes, API on ${listenUrl(listen, agent.api.server.address())}`;
  try {
    await agent.start({ listen: listenApi, listenBoot });
    log.info('ready');
    notify.ready(readyStatus());
  } catch (e) {
    // The components started before the failing one are already stopped, in reverse.
    if (e instanceof LifecycleError && (e.component === 'api' || e.component === 'boot')) {
      const where = e.component === 'boot' && bootListen ? bootListen : listen;
      log.fatal({ err: e.cause, listen: loader.formatListen(where), component: e.component }, 'cannot listen');
      notify.close();
    } else {
      log.fatal({ err: e instanceof LifecycleError ? e.cause : e, component: e instanceof LifecycleError ? e.component : undefined }, 'start-up failed');
      await stop('start-failure');
    }
    process.exitCode = 1;
  }
}

/**
 * The daemon's notifier from its environment (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID): a problem with the socket
 * is logged (each distinct message once), never fatal.
 */
function createServiceNotifier(sd: typeof import('./sd-notify.js'), log: Logger): ServiceNotifier {
  const seen = new Set<string>();
  const onError = (err: Error) => {
    if (seen.has(err.message) || seen.size > 20) return;
    seen.add(err.message);
    log.warn({ err, notify_socket: process.env['NOTIFY_SOCKET'] }, 'sd_notify failed (the service manager may not hear from metald)');
  };
  let n: Notifier;
  try {
    n = sd.notifierFromEnv(process.env, onError);
  } catch (e) {
    onError(e as Error);
    n = new sd.NullNotifier();
  }
  const watchdogMs = n.enabled ? sd.watchdogPeriodMs(process.env, process.pid) : null;
  if (n.enabled) log.info({ notify_socket: process.env['NOTIFY_SOCKET'], watchdog_ms: watchdogMs }, 'notifying the service manager');
  return new sd.ServiceNotifier(n, watchdogMs);
}

/** True when this module is the program being run (also through the npm bin symlink), not imported. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  runMetald(process.argv).catch((e: unknown) => {
    console.error(`metald: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
