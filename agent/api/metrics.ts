/**
 * HTTP metrics of the REST API, registered on the registry the caller owns (never prom-client's global one).
 * `route` is the route's template (`/v1/:project_id/instances/:id`), or `unmatched` for unknown paths, so that
 * labels stay bounded whatever clients send. The power-sync lag gauge is read from the engine at each scrape.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { LivenessStats, VerdictKind } from '../liveness.js';
import type { PowerSyncStats } from '../operations/power-sync.js';
import type { OutboxDepth } from '../store/types.js';

export interface HttpMetrics {
  observe(labels: { method: string; route: string; status: number }, seconds: number): void;
}

const LABELS = ['method', 'route', 'status'] as const;

function existing<T>(registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}

export function createHttpMetrics(registry: Registry): HttpMetrics {
  const requests =
    existing<Counter<(typeof LABELS)[number]>>(registry, 'metald_http_requests_total') ??
    new Counter({
      name: 'metald_http_requests_total',
      help: 'HTTP requests answered by the REST API, by route template, method and status.',
      labelNames: LABELS,
      registers: [registry],
    });
  const duration =
    existing<Histogram<(typeof LABELS)[number]>>(registry, 'metald_http_request_duration_seconds') ??
    new Histogram({
      name: 'metald_http_request_duration_seconds',
      help: 'Time from receiving a request to sending its answer, by route template, method and status.',
      labelNames: LABELS,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  return {
    observe({ method, route, status }, seconds) {
      const l = { method, route, status: String(status) };
      requests.inc(l);
      duration.observe(l, seconds);
    },
  };
}

export const POWER_SYNC_LAG = 'metald_power_sync_lag_seconds';

/**
 * Power sync's metrics, read from `stats()` at each scrape: the lag gauge (age of the oldest good read), the last
 * sweep's wall time, and the sweeps and BMC reads counted since start.
 */
export function createPowerSyncMetrics(registry: Registry, stats: () => PowerSyncStats): void {
  const names = [POWER_SYNC_LAG, 'metald_power_sync_last_sweep_seconds', 'metald_power_sync_sweeps_total', 'metald_power_sync_reads_total'];
  for (const name of names) if (existing(registry, name)) registry.removeSingleMetric(name);
  new Gauge({
    name: POWER_SYNC_LAG,
    help: 'Age of the oldest good power read among the nodes power sync reads (not in maintenance, no operation in flight), seconds.',
    registers: [registry],
    collect() {
      this.set(stats().lagSeconds);
    },
  });
  new Gauge({
    name: 'metald_power_sync_last_sweep_seconds',
    help: 'Wall time of the last power-sync sweep that ended (every node read once), seconds.',
    registers: [registry],
    collect() {
      const s = stats().lastSweepSeconds;
      if (s !== null) this.set(s);
    },
  });
  // Counters mirrored from power sync's own counts at each scrape (reset, then set to the count).
  new Counter({
    name: 'metald_power_sync_sweeps_total',
    help: 'Power-sync sweeps ended since start (the start-up sweep included).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats().sweeps);
    },
  });
  new Counter({
    name: 'metald_power_sync_reads_total',
    help: 'BMC power reads made by power sync since start, by result (ok, failed).',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      const r = stats().reads;
      this.reset();
      this.inc({ result: 'ok' }, r.ok);
      this.inc({ result: 'failed' }, r.failed);
    },
  });
}

export const LIVENESS_ENGINE = 'metald_liveness_engine';
export const LIVENESS_VERDICTS = 'metald_liveness_verdicts';
const VERDICT_KINDS = ['alive', 'dead', 'powered-off'] as const satisfies readonly VerdictKind[];

/**
 * Liveness's metrics: `metald_liveness_engine{engine="raw"} 1` (the ICMP engine that runs, chosen at start), and the
 * monitor's counts and last sweep's verdicts read from `stats()` at each scrape.
 */
export function createLivenessMetrics(registry: Registry, engine: string, stats: () => LivenessStats): void {
  const counters: [string, string, (s: LivenessStats) => number][] = [
    ['metald_liveness_sweeps_total', 'Liveness monitor sweeps ended since start (every running instance probed once).', (s) => s.sweeps],
    ['metald_liveness_probes_total', 'Addresses probed since start, by the monitor and by fresh os-fping probes.', (s) => s.probes],
    ['metald_liveness_changes_total', 'Liveness verdict changes journalled (instance.alive) since start.', (s) => s.changes],
    ['metald_liveness_late_probes_total', 'Fresh os-fping probes whose bounded wait ran out (answered from the last verdict).', (s) => s.lateProbes],
  ];
  const names = [LIVENESS_ENGINE, 'metald_liveness_last_sweep_seconds', LIVENESS_VERDICTS, ...counters.map(([n]) => n)];
  for (const name of names) if (existing(registry, name)) registry.removeSingleMetric(name);
  new Gauge({
    name: LIVENESS_ENGINE,
    help: 'The ICMP engine liveness runs (raw, fping or fake): 1 for the one running; /readyz says why it was chosen.',
    labelNames: ['engine'],
    registers: [registry],
  }).set({ engine }, 1);
  new Gauge({
    name: 'metald_liveness_last_sweep_seconds',
    help: 'Wall time of the last liveness monitor sweep that ended, seconds.',
    registers: [registry],
    collect() {
      const s = stats().lastSweepSeconds;
      if (s !== null) this.set(s);
    },
  });
  new Gauge({
    name: LIVENESS_VERDICTS,
    help: 'Instances by verdict (alive, dead, powered-off) in the last liveness monitor sweep that ended without an error; absent before one has.',
    labelNames: ['verdict'],
    registers: [registry],
    collect() {
      const v = stats().verdicts;
      if (v === null) return;
      for (const verdict of VERDICT_KINDS) this.set({ verdict }, v[verdict]);
    },
  });
  for (const [name, help, read] of counters) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read(stats()));
      },
    });
  }
}

/**
 * The outbox's depth (agent/store/outbox.ts), read from `depth()` at each scrape (O(1): counters the store keeps):
 * the journal's entries and bytes, and the entries folded away over the store's life.
 */
export function createOutboxMetrics(registry: Registry, depth: () => OutboxDepth): void {
  const names = ['metald_outbox_events', 'metald_outbox_bytes', 'metald_outbox_folded_total'];
  for (const name of names) if (existing(registry, name)) registry.removeSingleMetric(name);
  new Gauge({
    name: 'metald_outbox_events',
    help: 'Entries in the journal (the upstream outbox), fold markers included; bounded by outbox.max_events.',
    registers: [registry],
    collect() {
      this.set(depth().events);
    },
  });
  new Gauge({
    name: 'metald_outbox_bytes',
    help: "Bytes of the journal's entries (their columns plus an event envelope each); bounded by outbox.max_bytes.",
    registers: [registry],
    collect() {
      this.set(depth().bytes);
    },
  });
  new Counter({
    name: 'metald_outbox_folded_total',
    help: 'Journal entries folded into outbox.folded markers because the outbox was full, over the store\'s life.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(depth().folded_total);
    },
  });
}
