/**
 * BMC metrics: every command, verification and refusal a Bmc handle reports (drivers/bmc.ts `onCall`), counted by
 * driver, call and result, errors by driver and code, command durations by driver.
 *
 * The observer is on the hot path (power sync reads every node each interval, an operation polls power): it adds to
 * plain numbers in arrays indexed by the call's and code's positions in their closed lists, found once per driver
 * and call name; nothing is allocated and no string is built per call. prom-client sees the numbers at each scrape
 * (the counters are set from them, the histogram's exposition is built from its buckets), as the other mirrored
 * metrics of agent/api/metrics.ts.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { BMC_CALLS, type BmcCall, type BmcCallObserver } from '../../drivers/bmc.js';
import { BMC_ERRORS, type BmcErrorCode } from '../../drivers/errors.js';

const CODES = Object.keys(BMC_ERRORS) as BmcErrorCode[];
/** Upper bounds of the duration histogram, seconds (an IPMI command takes ~0.1-1 s, a Redfish session more). */
export const BMC_DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What is counted for one driver name. */
interface DriverCounts {
  /** By call index: successes, failures. */
  ok: Float64Array;
  failed: Float64Array;
  /** By code index. */
  errors: Float64Array;
  /** Per-bucket (not cumulative) counts, then the overflow (+Inf only). */
  buckets: Float64Array;
  sum: number;
  count: number;
}

const CALL_INDEX: ReadonlyMap<BmcCall, number> = new Map(BMC_CALLS.map((c, i) => [c, i]));
const CODE_INDEX: ReadonlyMap<BmcErrorCode, number> = new Map(CODES.map((c, i) => [c, i]));

/** The counts behind the BMC metrics; `observe` is the Bmc handles' `onCall`. */
export class BmcCallCounts {
  readonly drivers = new Map<string, DriverCounts>();

  readonly observe: BmcCallObserver = (driver, call, code, ms) => {
    let d = this.drivers.get(driver);
    if (d === undefined) {
      d = {
        ok: new Float64Array(BMC_CALLS.length),
        failed: new Float64Array(BMC_CALLS.length),
        errors: new Float64Array(CODES.length),
        buckets: new Float64Array(BMC_DURATION_BUCKETS.length + 1),
        sum: 0,
        count: 0,
      };
      this.drivers.set(driver, d);
    }
    const c = CALL_INDEX.get(call);
    if (c === undefined) return;
    if (code === null) d.ok[c]! += 1;
    else {
      d.failed[c]! += 1;
      const e = CODE_INDEX.get(code);
      if (e !== undefined) d.errors[e]! += 1;
    }
    if (ms === null) return;
    const s = ms / 1000;
    let b = 0;
    while (b < BMC_DURATION_BUCKETS.length && s > BMC_DURATION_BUCKETS[b]!) b++;
    d.buckets[b]! += 1;
    d.sum += s;
    d.count += 1;
  };
}

const BMC_DURATION = 'metald_bmc_call_duration_seconds';
export const BMC_METRICS = ['metald_bmc_calls_total', 'metald_bmc_errors_total', BMC_DURATION] as const;

/**
 * Registers the BMC metrics on `registry`, read from `counts` at each scrape. Only series that moved are shown (a
 * driver appears with its first call).
 */
export function createBmcMetrics(registry: Registry, counts: BmcCallCounts): void {
  for (const name of BMC_METRICS) if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  new Counter({
    name: 'metald_bmc_calls_total',
    help: 'BMC commands (one per driver tried), verifications of a change (power_verify, boot_verify) and calls refused before any driver (driver "bmc"), by driver, call and result (success, failure).',
    labelNames: ['driver', 'call', 'result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [driver, d] of counts.drivers) {
        BMC_CALLS.forEach((call, i) => {
          if (d.ok[i]! > 0) this.inc({ driver, call, result: 'success' }, d.ok[i]);
          if (d.failed[i]! > 0) this.inc({ driver, call, result: 'failure' }, d.failed[i]);
        });
      }
    },
  });
  new Counter({
    name: 'metald_bmc_errors_total',
    help: 'BMC errors of the calls of metald_bmc_calls_total, by driver and error code (BMC_ERR_*, docs/drivers.md).',
    labelNames: ['driver', 'code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [driver, d] of counts.drivers) {
        CODES.forEach((code, i) => {
          if (d.errors[i]! > 0) this.inc({ driver, code }, d.errors[i]);
        });
      }
    },
  });
  new MirroredHistogram(counts, registry);
}

type Exposition = Awaited<ReturnType<Histogram<'driver' | 'le'>['get']>>;

/**
 * The command-duration histogram: prom-client's own (its name, help and type), its values built from the counts'
 * buckets at each scrape; nothing is observed into prom-client's (~0.8 us a call against ~0.03 us here).
 * NOTE(prom-client 15.1.3, pinned): the registry writes the text from `getForPromString()` (not in its typings),
 * `getMetricsAsJSON()` from `get()`; both are answered here. test/agent/api/metrics-families.test.ts reads the
 * buckets back from a scrape, so an upgrade that changes this fails there.
 */
class MirroredHistogram extends Histogram<'driver' | 'le'> {
  /** The same histogram, unregistered and never observed: its exposition gives the name, help, type, aggregator. */
  private readonly template: Histogram<'driver' | 'le'>;

  constructor(
    private readonly counts: BmcCallCounts,
    registry: Registry,
  ) {
    const config = {
      name: BMC_DURATION,
      help: "Time of one BMC command with the BMC's lock held (the wait for the lock not included), by driver, seconds.",
      labelNames: ['driver' as const],
      buckets: BMC_DURATION_BUCKETS,
    };
    super({ ...config, registers: [registry] });
    this.template = new Histogram({ ...config, registers: [] });
  }

  override async get(): Promise<Exposition> {
    return this.getForPromString();
  }

  async getForPromString(): Promise<Exposition> {
    const values: Exposition['values'] = [];
    for (const [driver, d] of this.counts.drivers) {
      if (d.count === 0) continue;
      let cumulative = 0;
      BMC_DURATION_BUCKETS.forEach((le, i) => {
        cumulative += d.buckets[i]!;
        values.push({ labels: { driver, le }, value: cumulative, metricName: `${BMC_DURATION}_bucket` });
      });
      values.push({ labels: { driver, le: '+Inf' }, value: d.count, metricName: `${BMC_DURATION}_bucket` });
      values.push({ labels: { driver }, value: d.sum, metricName: `${BMC_DURATION}_sum` });
      values.push({ labels: { driver }, value: d.count, metricName: `${BMC_DURATION}_count` });
    }
    return { ...(await this.template.get()), values };
  }
}
