/**
 * HTTP metrics of the REST API, registered on the registry the caller owns (never prom-client's global one).
 * `route` is the route's template (`/v1/:project_id/instances/:id`), or `unmatched` for unknown paths, so that
 * labels stay bounded whatever clients send. The power-sync lag gauge is read from the engine at each scrape.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

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

/** The power-sync lag gauge: `lagSeconds()` read at each scrape (agent/operations/power-sync.ts lagSeconds). */
export function createPowerSyncMetrics(registry: Registry, lagSeconds: () => number): void {
  if (existing(registry, POWER_SYNC_LAG)) registry.removeSingleMetric(POWER_SYNC_LAG);
  new Gauge({
    name: POWER_SYNC_LAG,
    help: 'Age of the oldest good power read among the nodes power sync reads (not in maintenance, no operation in flight), seconds.',
    registers: [registry],
    collect() {
      this.set(lagSeconds());
    },
  });
}
