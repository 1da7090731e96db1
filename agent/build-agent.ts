/**
 * The composition root: `buildAgent(config, opts)` wires the store, drivers, liveness, engine and REST API, and
 * returns `{start, stop, reload}`: its lifecycle components (agent/lifecycle.ts) start in order and stop in reverse.
 * Wiring only: the fakes are wired by agent/fakes.ts, loaded only with `allow_fake_drivers`. Only agent/main.ts
 * touches `process`, signals and `listen()`; tests build agents in-process with their own ports.
 */
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { FakeLab } from '../drivers/fake/lab.js';
import { UndiciHttpClient } from '../drivers/http.js';
import { ExecaProcessRunner } from '../drivers/process.js';
import { createDefaultRegistry } from '../drivers/registry.js';
import { createLivenessMetrics, createOutboxMetrics, createPowerSyncMetrics } from './api/metrics.js';
import { publicUrl } from './api/public-url.js';
import { buildApi } from './api/server.js';
import { NetworkDeployer } from './boot/deployer.js';
import { BootJobs } from './boot/jobs.js';
import { buildBootServer } from './boot/server.js';
import { RegistryBmcProvider } from './bmc-provider.js';
import { SecretFiles, resolveTokens } from './config/secrets.js';
import { diffConfig, mergeForReload } from './config/reload.js';
import { BMC_DRAIN_MS, BmcDrain } from './drain.js';
import type { ApiToken, Config } from './config/types.js';
import type { Fakes } from './fakes.js';
import { Lifecycle, type Component } from './lifecycle.js';
import { Liveness } from './liveness.js';
import { DeployerRouter } from './operations/deployers.js';
import { Engine } from './operations/engine.js';
import { systemClock, type Clock, type Deployer, type Pinger } from './ports.js';
import { openStore, type StoreFaultInjector } from './store/sqlite.js';
import type { WalSyncPort } from './store/wal-sync.js';
import type { Store } from './store/types.js';
import { agentVersion, createUpstream, type UpstreamComponent } from './upstream/wire.js';
import { createUpstreamMetrics } from './api/metrics-upstream.js';
import { BmcCallCounts, createBmcMetrics } from './api/metrics-bmc.js';
import { createOperationMetrics } from './api/metrics-operations.js';

export interface BuildOptions {
  log: Logger;
  secrets?: SecretFiles;
  clock?: Clock;
  pinger?: Pinger;
  deployer?: Deployer;
  uuid?: () => string;
  fakeLab?: FakeLab;
  storeFault?: StoreFaultInjector;
  /** TEST-ONLY: fake-driven nodes install through the boot server too (the test plays their installer). */
  fakeNodesBootFromNetwork?: boolean;
  /** TEST-ONLY: the boot server's token generator. */
  bootToken?: () => string;
  /** TEST-ONLY: the store's WAL sync port (tests hold or fail it); default fdatasync on the pool. */
  walSync?: WalSyncPort;
  /** How long a stop waits for BMC commands in flight (agent/drain.ts); default BMC_DRAIN_MS. */
  drainMs?: number;
}

export interface Agent {
  readonly engine: Engine;
  readonly api: FastifyInstance;
  /** The boot server (agent/boot/server.ts), null without `boot` in the config. */
  readonly boot: FastifyInstance | null;
  readonly store: Store;
  readonly lab: FakeLab | null;
  readonly metrics: Registry;
  /** The upstream link (a `disabled` status without upstream.url). */
  readonly upstream: UpstreamComponent;
  /** The lifecycle components' names, in start order (stopped in reverse). */
  readonly components: readonly string[];
  /**
   * Starts the components in order: the API listens (when `listen` is given) before recovery, start-up power reads
   * and the loops, so mutations answer 503 until they are done.
   * @throws LifecycleError naming the component that failed, after the ones already started were stopped.
   */
  start(opts?: StartOptions): Promise<void>;
  /** Stops the started components in reverse: the API stops taking requests first, the store closes last. */
  stop(): Promise<void>;
  /** SIGHUP: re-read secrets and apply what can change safely; says what it did not apply. */
  reload(next: Config | null): { applied: string[]; restartRequired: string[]; secretsChanged: string[]; errors: string[] };
  config(): Config;
}

export interface StartOptions {
  /** agent/main.ts: makes the API listen. Absent in tests that use `api.inject()`. */
  listen?: () => Promise<void>;
  /** agent/main.ts: makes the boot server listen on boot.listen (with `boot` in the config). */
  listenBoot?: () => Promise<void>;
}

export async function buildAgent(initial: Config, opts: BuildOptions): Promise<Agent> {
  let config = initial;
  const log = opts.log;
  const clock = opts.clock ?? systemClock;
  const secrets = opts.secrets ?? new SecretFiles();
  let tokens: Map<string, ApiToken> = resolveTokens(config, secrets);
  const store = openStore({
    dir: config.state_dir,
    agentId: config.agent_id,
    // A hook run after a commit (an accepted operation's launch) that fails: logged, the commit stands.
    onAfterCommitError: (err) => log.error({ err }, 'after-commit hook failed; its transaction stays committed'),
    ...(opts.storeFault ? { fault: opts.storeFault } : {}),
    ...(opts.walSync ? { walSync: opts.walSync } : {}),
    // Nothing more is written or acknowledged (every write and answer is a 500); a restart reads what is on disk.
    onSyncFailure: (err) => log.fatal({ err }, 'the store could not sync its WAL to disk: metald must be restarted'),
    // The journal (the outbox) is bounded whether or not an upstream is set (docs/protocol.md, "The outbox policy").
    outbox: { maxEvents: config.outbox.max_events, maxBytes: config.outbox.max_bytes },
    onOutboxStuck: (i) => log.warn(i, 'the outbox is over its bounds and nothing is left to fold (every object has one entry)'),
  });
  const fakes: Fakes | null = config.allow_fake_drivers ? (await import('./fakes.js')).wireFakes(store, opts.fakeLab) : null;
  const lab = fakes?.lab ?? null;
  const http = new UndiciHttpClient();
  // A stop lets the BMC commands in flight end (bounded) before the abort reaches them (agent/drain.ts).
  const drainMs = opts.drainMs ?? BMC_DRAIN_MS;
  const drain = new BmcDrain((n) => log.warn({ cut: n, drain_ms: drainMs }, 'stop: BMC commands still running after the drain were cut'));
  const registry = createDefaultRegistry({
    allowFake: config.allow_fake_drivers,
    bindable: fakes ? [fakes.driver] : [],
    ports: { clock, log: log.child({ component: 'driver' }), http: drain.http(http), run: drain.runner(new ExecaProcessRunner()), workDir: join(config.state_dir, 'drivers') },
  });
  // The registry /metrics answers from; the BMC handles count their calls into bmcCalls (agent/api/metrics-bmc.ts).
  const metrics = new Registry();
  const bmcCalls = new BmcCallCounts();
  const bmcs = new RegistryBmcProvider(registry, secrets, () => config, clock, bmcCalls.observe);

  const liveEngine = await choosePinger(config, opts.pinger, fakes);
  const pinger = liveEngine.pinger;
  log.info({ engine: liveEngine.engine, reason: liveEngine.reason }, `liveness engine: ${liveEngine.engine} (${liveEngine.reason})`);
  // The boot server (agent/boot/, docs/boot-protocol.md) with `boot` in the config: the installer jobs of the nodes
  // that are not fake, served on boot.listen.
  const bootJobs = config.boot ? new BootJobs({ store, clock, config: () => config, ...(opts.bootToken ? { newToken: opts.bootToken } : {}) }) : null;
  const fakeDeployer = opts.fakeNodesBootFromNetwork ? null : (fakes?.deployer ?? null);
  const deployer = opts.deployer ?? new DeployerRouter(fakeDeployer, bootJobs ? new NetworkDeployer(bootJobs) : null);
  let bootRef: FastifyInstance | null = null;
  const boot = bootJobs
    ? await buildBootServer({
        jobs: bootJobs,
        store,
        config: () => config,
        publicUrl: () => publicUrl({ listen: config.boot!.listen, public_url: config.boot!.public_url }, bootRef?.server.address()),
        log,
      })
    : null;
  bootRef = boot;

  let engineRef: Engine | null = null;
  const liveness = new Liveness(
    pinger,
    clock,
    () => config.liveness,
    (changes) => engineRef?.onAliveChanges(changes),
    (id) => store.lastAliveVerdict(id),
    { onSweepError: (err) => log.warn({ err, component: 'liveness' }, 'liveness sweep failed; the next one runs as planned') },
  );
  const engine = new Engine({
    config: () => config,
    store,
    liveness,
    log: log.child({ component: 'engine' }),
    ports: { clock, pinger, deployer, bmcs, log, uuid: opts.uuid ?? randomUUID },
    onOperationEnded: createOperationMetrics(metrics, (id) => store.getAction(id), () => clock.now(), (err) => log.warn({ err }, 'operation metrics failed')),
  });
  engineRef = engine;
  // Reads the upstream token and CA now: a missing file fails the start naming it.
  const upstream = createUpstream({ config: () => config, store, engine, secrets, clock, log, agentVersion: agentVersion() });
  const upstreamInfo = () => ({ ...upstream.status(), last_seq: store.lastSeq() });

  let apiRef: FastifyInstance | null = null;
  collectDefaultMetrics({ register: metrics });
  createBmcMetrics(metrics, bmcCalls);
  createPowerSyncMetrics(metrics, () => engine.powerSyncStats());
  createLivenessMetrics(metrics, liveEngine.engine, () => liveness.stats());
  createUpstreamMetrics(metrics, upstreamInfo);
  createOutboxMetrics(metrics, () => store.outboxDepth());
  const api = await buildApi({
    service: engine,
    tokens: () => tokens,
    rateLimit: config.api.rate_limit,
    pageSize: () => config.api.page_size,
    maxBodyBytes: config.api.max_body_bytes,
    publicUrl: () => publicUrl(config.api, apiRef?.server.address()),
    agentId: config.agent_id,
    registry: metrics,
    log,
    liveness: () => ({ engine: liveEngine.engine, reason: liveEngine.reason }),
    upstream: upstreamInfo,
    durable: () => store.durable(),
    ...(fakes ? { fakeFaults: fakes.fakeFaults } : {}),
    // The status page (docs/status-page.md): the snapshot and the journal's event streams read the store.
    status: { store, now: () => clock.now() },
  });

  apiRef = api;
  let retentionTimer: NodeJS.Timeout | null = null;
  const purge = () => {
    try {
      const n = engine.purgeTerminated();
      if (n > 0) log.info({ purged: n }, 'terminated instances past retention removed');
    } catch (e) {
      log.error({ err: e }, 'purging terminated instances failed');
    }
  };
  let listen: (() => Promise<void>) | undefined;
  let listenBoot: (() => Promise<void>) | undefined;
  // The API listens before recovery (mutations answer 503 until it is done) and closes before the engine stops (no
  // request is in flight when operations are aborted): the engine's stop and start are two components around it.
  const components: Component[] = [
    { name: 'store', start: () => undefined, stop: () => store.close() },
    // The config's nodes are enrolled before the API listens (one transaction: ~0.1 s at 2,000 new nodes).
    // The HTTP client's pools close after the engine's BMC handles (their Redfish logouts).
    // The ICMP engine (its socket or processes) closes once the operations that probe through it have stopped.
    // The stop drains the BMC commands in flight first (bounded by drainMs; their steps stay persisted as sent).
    {
      name: 'operations',
      start: () => engine.prepare(),
      stop: async () => {
        drain.begin(drainMs);
        if (drain.inFlight > 0) log.info({ in_flight: drain.inFlight, drain_ms: drainMs }, 'stop: draining BMC commands in flight');
        try {
          await engine.stop();
        } finally {
          const r = await drain.settled();
          if (r.drained + r.cut > 0) log.info({ drained: r.drained, cut: r.cut }, 'stop: BMC commands drained');
          await Promise.all([http.close(), liveEngine.close()]);
        }
      },
    },
    { name: 'api', start: () => listen?.(), stop: () => api.close() },
    // Before recovery: a resumed deploy waits for reports that reach it here.
    ...(boot ? [{ name: 'boot', start: () => listenBoot?.(), stop: () => boot.close() }] : []),
    { name: 'recovery', start: () => engine.start(), stop: () => undefined },
    {
      name: 'liveness',
      start: () => liveness.startMonitor((after, limit) => store.listRunningInstances(after, limit)),
      stop: () => liveness.stop(),
    },
    // After recovery (the hello's snapshot reflects it), before the loops' first changes; readiness never waits for
    // the controller: start() only begins dialling. Stopped before the engine: the link closes 1001 first.
    { name: 'upstream', start: () => upstream.start(), stop: () => upstream.stop() },
    {
      name: 'retention',
      start: () => {
        purge();
        retentionTimer = setInterval(purge, 3600_000).unref();
      },
      stop: () => {
        if (retentionTimer) clearInterval(retentionTimer);
      },
    },
  ];
  const lifecycle = new Lifecycle(components);
  return {
    engine,
    api,
    boot,
    store,
    lab,
    metrics,
    upstream,
    components: lifecycle.names(),
    config: () => config,
    start(startOpts = {}) {
      listen = startOpts.listen;
      listenBoot = startOpts.listenBoot;
      return lifecycle.start();
    },
    stop: () => lifecycle.stop(),
    reload(next) {
      const errors: string[] = [];
      const secretsResult = secrets.reload();
      for (const f of secretsResult.failed) errors.push(`${f.file}: ${f.error}`);
      // The upstream token is one of the secrets (the next dial uses the new one); the CA file is re-read here.
      errors.push(...upstream.reload());
      let applied: string[] = [];
      let restartRequired: string[] = [];
      if (next) {
        const diff = diffConfig(config, next);
        applied = diff.apply;
        restartRequired = diff.restartRequired;
        const before = config;
        config = mergeForReload(config, next);
        // The loops waiting on the old intervals wait by the new ones from now on (not after the old wait ends).
        if (config.liveness.interval_ms !== before.liveness.interval_ms || config.liveness.jitter !== before.liveness.jitter) liveness.reschedule();
        if (config.power_sync.interval_ms !== before.power_sync.interval_ms) engine.reschedulePowerSync();
        if (config.outbox.max_events !== before.outbox.max_events || config.outbox.max_bytes !== before.outbox.max_bytes) {
          try {
            store.setOutboxBounds({ maxEvents: config.outbox.max_events, maxBytes: config.outbox.max_bytes });
          } catch (e) {
            errors.push(`outbox: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
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

interface ChosenPinger {
  pinger: Pinger;
  engine: string;
  reason: string;
  /** Releases the engine (Pinger.close), at the agent's stop. */
  close(): Promise<void>;
}

/** The ICMP engine by `liveness.engine`: the caller's, the fake lab's, or agent/pinger/select.ts's choice. */
async function choosePinger(config: Config, injected: Pinger | undefined, fakes: Fakes | null): Promise<ChosenPinger> {
  const closeOf = (p: Pinger) => async () => p.close?.();
  if (injected) return { pinger: injected, engine: injected.engine, reason: 'injected by the caller', close: closeOf(injected) };
  const engine = config.liveness.engine;
  if (engine === 'fake') {
    const f = fakes ?? fail('liveness.engine: fake needs allow_fake_drivers: true');
    return { pinger: f.pinger, engine: 'fake', reason: 'configured: the fake lab answers (allow_fake_drivers)', close: closeOf(f.pinger) };
  }
  // Loaded only for these engines (fping's brings execa, ~14 MiB of RSS).
  const chosen = await (await import('./pinger/select.js')).openPinger({ engine, fpingPath: config.liveness.fping_path });
  return { ...chosen, close: closeOf(chosen.pinger) };
}

function fail(message: string): never {
  throw new Error(message);
}
