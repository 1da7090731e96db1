#!/usr/bin/env node
/**
 * metald: the daemon. The only module that touches `process`, signals and `listen()`.
 *
 *   metald --config /etc/metald/metald.yaml          run
 *   metald --config FILE --check                     validate the file (every error as `path: message`) and exit
 *
 * SIGTERM/SIGINT stop in order (running operations are left for the next start to resume or fail); SIGHUP re-reads
 * the config file and every secret file and says what it applied and what needs a restart.
 *
 * `runMetald(argv, injections)` is the daemon; this file's own command line calls it with no injections. The only
 * other caller is the test-only entry point scripts/test-metald-store-faults.ts, which passes a store fault injector.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { listenUrl } from './api/public-url.js';
import { buildAgent, type Agent } from './build-agent.js';
import { ConfigError, formatListen, loadConfigWithWarnings } from './config/load.js';
import type { Config } from './config/types.js';
import { LifecycleError } from './lifecycle.js';
import { createLogger } from './log.js';
import type { StoreFaultInjector } from './store/sqlite.js';

const VERSION = '0.1.0';

function loadOrExplain(path: string): { config: Config; warnings: string[] } | null {
  try {
    return loadConfigWithWarnings(path);
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
}

export async function runMetald(argv: string[], inject: DaemonInjections = {}): Promise<void> {
  const program = new Command()
    .name('metald')
    .description('Bare-metal provisioning agent')
    .version(VERSION)
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--check', 'validate the configuration and exit')
    .parse(argv);
  const opts = program.opts<{ config: string; check?: boolean }>();

  const loaded = loadOrExplain(opts.config);
  if (!loaded) {
    process.exitCode = 2;
    return;
  }
  if (opts.check) {
    for (const w of loaded.warnings) console.error(`warning: ${w}`);
    console.error(`metald: ${opts.config} is valid`);
    return;
  }
  const log = createLogger({ level: loaded.config.log_level });
  for (const w of loaded.warnings) log.warn({ config: opts.config }, w);

  let agent: Agent;
  try {
    agent = await buildAgent(loaded.config, { log, ...(inject.storeFault ? { storeFault: inject.storeFault } : {}) });
  } catch (e) {
    log.fatal({ err: e }, 'metald could not start');
    log.flush();
    console.error(`metald: could not start: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
    return;
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    try {
      await agent.stop();
      log.info('stopped');
    } catch (e) {
      log.error({ err: e }, 'stop failed');
      process.exitCode = 1;
    }
    log.flush();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    const next = loadOrExplain(opts.config);
    if (!next) log.error({ config: opts.config }, 'SIGHUP: the configuration is invalid; the running one is kept (secrets re-read)');
    const res = agent.reload(next?.config ?? null);
    log.info(
      { applied: res.applied, restart_required: res.restartRequired, secrets_changed: res.secretsChanged.length, errors: res.errors },
      'SIGHUP: reloaded',
    );
  });

  // The agent's components start in order; the API's start is this listen(), before recovery (503 until ready).
  const listen = loaded.config.api.listen;
  const listenApi = async () => {
    await agent.api.listen({ host: listen.host, port: listen.port });
    log.info({ url: listenUrl(listen, agent.api.server.address()), agent_id: loaded.config.agent_id, version: VERSION }, 'api listening');
  };
  try {
    await agent.start({ listen: listenApi });
    log.info('ready');
  } catch (e) {
    // The components started before the failing one are already stopped, in reverse.
    if (e instanceof LifecycleError && e.component === 'api') {
      log.fatal({ err: e.cause, listen: formatListen(listen) }, 'cannot listen');
    } else {
      log.fatal({ err: e instanceof LifecycleError ? e.cause : e, component: e instanceof LifecycleError ? e.component : undefined }, 'start-up failed');
      await stop('start-failure');
    }
    process.exitCode = 1;
  }
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
