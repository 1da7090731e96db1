/**
 * The composition root: `buildAgent(config, opts)` wires the store, drivers, liveness, engine and REST API, and
 * returns `{start, stop, reload}`. Start in order, stop in reverse. Only agent/main.ts touches `process`, signals
 * and `listen()`; tests build agents in-process with their own ports.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { fakeOptions } from '../drivers/fake/index.js';
import { FakeLab } from '../drivers/fake/lab.js';
import { createDefaultRegistry } from '../drivers/registry.js';
import { buildApi } from './api/server.js';
import { RegistryBmcProvider } from './bmc-provider.js';
import { SecretFiles, resolveTokens } from './config/secrets.js';
import { diffConfig, mergeForReload } from './config/reload.js';
import type { ApiToken, Config } from './config/types.js';
import { formatListen } from './config/load.js';
import { Liveness } from './liveness.js';
import { normaliseIp } from './net.js';
import { DeployerRouter, FakeLabDeployer } from './operations/deployers.js';
import { Engine } from './operations/engine.js';
import { FakeLabPinger } from './pinger/fake.js';
import { FpingPinger } from './pinger/fping.js';
import { systemClock, type Clock, type Deployer, type Pinger } from './ports.js';
import { openStore, type StoreFaultInjector } from './store/sqlite.js';
import type { Store } from './store/types.js';

export interface BuildOptions {
  log: Logger;
  secrets?: SecretFiles;
  clock?: Clock;
  pinger?: Pinger;
  deployer?: Deployer;
  uuid?: () => string;
  fakeLab?: FakeLab;
  storeFault?: StoreFaultInjector;
}

export interface Agent {
  readonly engine: Engine;
  readonly api: FastifyInstance;
  readonly store: Store;
  readonly lab: FakeLab | null;
  readonly metrics: Registry;
  /** Recovery, start-up power reads, then the loops. The API may already listen: mutations answer 503 until done. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** SIGHUP: re-read secrets and apply what can change safely; says what it did not apply. */
  reload(next: Config | null): { applied: string[]; restartRequired: string[]; secretsChanged: string[]; errors: string[] };
  config(): Config;
}

export async function buildAgent(initial: Config, opts: BuildOptions): Promise<Agent> {
  let config = initial;
  const log = opts.log;
  const clock = opts.clock ?? systemClock;
  const secrets = opts.secrets ?? new SecretFiles();
  let tokens: Map<string, ApiToken> = resolveTokens(config, secrets);
  const store = openStore({ dir: config.state_dir, agentId: config.agent_id, ...(opts.storeFault ? { fault: opts.storeFault } : {}) });
  const lab = config.allow_fake_drivers ? (opts.fakeLab ?? new FakeLab()) : null;
  const registry = createDefaultRegistry({
    allowFake: config.allow_fake_drivers,
    fakeLab: lab ?? undefined,
    ports: { clock, log: log.child({ component: 'driver' }) },
  });
  const bmcs = new RegistryBmcProvider(registry, secrets, () => config, clock);

  const ownerOfAddress = (addr: string): string | null => {
    const want = normaliseIp(addr) ?? addr;
    for (const i of store.listInstances()) {
      if (i.state === 'terminated') continue;
      // A modify-ip in flight: the server being installed already owns its new addresses.
      const owned = [...i.addresses, ...(i.extra.pending_ip?.addresses ?? [])];
      if (owned.some((a) => (normaliseIp(a.addr) ?? a.addr) === want)) return i.node_id;
    }
    return null;
  };
  const pinger: Pinger =
    opts.pinger ??
    (config.liveness.engine === 'fake'
      ? (() => {
          if (!lab) throw new Error('liveness.engine: fake needs allow_fake_drivers: true');
          return new FakeLabPinger(lab, ownerOfAddress);
        })()
      : new FpingPinger(config.liveness.fping_path));
  const deployer = opts.deployer ?? new DeployerRouter(lab ? new FakeLabDeployer(lab) : null);

  let engineRef: Engine | null = null;
  const liveness = new Liveness(pinger, clock, () => config.liveness, (id, alive) => engineRef?.onAliveChange(id, alive));
  const engine = new Engine({
    config: () => config,
    store,
    liveness,
    log: log.child({ component: 'engine' }),
    ports: { clock, pinger, deployer, bmcs, log, uuid: opts.uuid ?? randomUUID },
  });
  engineRef = engine;

  let apiRef: FastifyInstance | null = null;
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const api = await buildApi({
    service: engine,
    tokens: () => tokens,
    rateLimit: config.api.rate_limit,
    maxBodyBytes: config.api.max_body_bytes,
    // Without api.public_url, links name the address the API is bound to (port 0 in the config: the real port).
    publicUrl: () => {
      if (config.api.public_url) return config.api.public_url;
      const bound = apiRef?.server.address();
      const port = bound && typeof bound === 'object' ? bound.port : config.api.listen.port;
      return `http://${formatListen({ host: config.api.listen.host, port })}`;
    },
    agentId: config.agent_id,
    registry: metrics,
    log,
    ...(lab
      ? {
          fakeFaults: (nodeId: string, faults: Record<string, unknown>) => {
            lab.server(nodeId, fakeOptions(store.getNode(nodeId)?.bmc)).setFaults(faults as never);
          },
        }
      : {}),
  });

  apiRef = api;
  let retentionTimer: NodeJS.Timeout | null = null;
  return {
    engine,
    api,
    store,
    lab,
    metrics,
    config: () => config,
    async start() {
      await engine.start();
      liveness.startMonitor(() => store.listInstances().filter((i) => i.state === 'running'));
      const purge = () => {
        try {
          const n = engine.purgeTerminated();
          if (n > 0) log.info({ purged: n }, 'terminated instances past retention removed');
        } catch (e) {
          log.error({ err: e }, 'purging terminated instances failed');
        }
      };
      purge();
      retentionTimer = setInterval(purge, 3600_000).unref();
    },
    /** In reverse: stop taking requests, then the loops, then the operations, then the store. */
    async stop() {
      await api.close();
      if (retentionTimer) clearInterval(retentionTimer);
      await liveness.stop();
      await engine.stop();
      store.close();
    },
    reload(next) {
      const errors: string[] = [];
      const secretsResult = secrets.reload();
      for (const f of secretsResult.failed) errors.push(`${f.file}: ${f.error}`);
      let applied: string[] = [];
      let restartRequired: string[] = [];
      if (next) {
        const diff = diffConfig(config, next);
        applied = diff.apply;
        restartRequired = diff.restartRequired;
        config = mergeForReload(config, next);
      }
      try {
        tokens = resolveTokens(config, secrets);
      } catch (e) {
        errors.push(e instanceof Error ? e.message : String(e));
      }
      // BMC handles are rebuilt when a node's settings change; passwords are read at call time (secrets reloaded).
      engine.syncConfigNodes();
      return { applied, restartRequired, secretsChanged: secretsResult.changed, errors };
    },
  };
}
