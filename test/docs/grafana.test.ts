/**
 * docs/grafana/metald.json: an importable dashboard (a ${DS_PROMETHEUS} input, every panel on it), whose every
 * PromQL expression (panel targets and template variable queries) names only series that a real agent exports:
 * each metric name is looked up in a scrape of /metrics of an agent that streams to the reference controller and
 * has run operations (so that the labelled series exist). Every metric family the agent exports with a metald_
 * prefix is on some panel, and every label a panel groups or filters by exists on the series it names.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { familyOf } from '../helpers/prom-text.js';
import { FAST_LIVENESS, listen, runSampleOperations, scrape, until } from '../helpers/scrape.js';
import { AGENT, TOKEN, startController, useLinkContext } from '../agent/upstream/link-helpers.js';

interface Target {
  expr?: string;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  __inputs: { name: string; type: string; pluginId: string }[];
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; query: string | { query: string }; datasource?: { uid: string } }[] };
}

const DASHBOARD = resolve(import.meta.dirname, '../../docs/grafana/metald.json');
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** PromQL's functions, aggregations and keywords: the identifiers of an expression that are not metric names. */
const PROMQL_WORDS = new Set(
  (
    'sum avg min max count stddev stdvar topk bottomk quantile count_values group limitk limit_ratio by without on ignoring ' +
    'group_left group_right and or unless bool offset rate irate increase delta idelta deriv predict_linear resets changes ' +
    'histogram_quantile histogram_count histogram_sum abs ceil floor round clamp clamp_min clamp_max exp ln log2 log10 sqrt ' +
    'label_replace label_join label_values absent absent_over_time time timestamp vector scalar sort sort_desc ' +
    'avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time quantile_over_time inf nan'
  ).split(' '),
);

/**
 * The metric names an expression uses, with the labels it matches or groups by: strings, range selectors, label
 * matchers and grouping clauses are taken out first (their words are labels, not metrics).
 */
export function metricNames(expr: string): { names: Set<string>; labels: Set<string> } {
  const labels = new Set<string>();
  let e = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  e = e.replace(/\[[^\]]*\]/g, ' ');
  e = e.replace(/\{([^}]*)\}/g, (_m, inner: string) => {
    for (const m of inner.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) labels.add(m[1]!);
    return ' ';
  });
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, _k: string, inner: string) => {
    for (const l of inner.split(',').map((s) => s.trim()).filter(Boolean)) labels.add(l);
    return ' ';
  });
  // label_values(metric, label): the second argument is a label.
  e = e.replace(/\blabel_values\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g, (_m, metric: string, label: string) => {
    labels.add(label);
    return ` ${metric} `;
  });
  e = e.replace(/\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?/g, ' ');
  const names = new Set<string>();
  for (const m of e.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) if (!PROMQL_WORDS.has(m[1]!)) names.add(m[1]!);
  return { names, labels };
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(dashboard.panels)) for (const t of p.targets ?? []) if (t.expr) out.push({ where: p.title, expr: t.expr });
  for (const v of dashboard.templating.list) out.push({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query });
  return out;
}

describe('metricNames (the extraction the dashboard check relies on)', () => {
  it('finds metric names, not functions, labels, strings or variables', () => {
    const r = metricNames('histogram_quantile(0.95, sum by (le, kind) (rate(metald_x_bucket{result="fail",instance=~"$instance"}[$__rate_interval]))) / on(kind) metald_y');
    expect([...r.names]).toEqual(['metald_x_bucket', 'metald_y']);
    expect([...r.labels].sort()).toEqual(['instance', 'kind', 'le', 'result']);
    expect([...metricNames('label_values(metald_z, instance)').names]).toEqual(['metald_z']);
    expect([...metricNames('max(metald_a) - max(metald_b) > 0').names]).toEqual(['metald_a', 'metald_b']);
  });
});

describe('docs/grafana/metald.json', () => {
  const ctx = useLinkContext();
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  it('is an importable dashboard: one Prometheus input, every panel and variable on it', () => {
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toBe('metald');
    for (const p of allPanels(dashboard.panels).filter((x) => x.type !== 'row')) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
    }
    for (const v of dashboard.templating.list) expect(v.datasource?.uid).toBe('${DS_PROMETHEUS}');
  });

  it('names only series a running agent exports, with labels they have; every metald_ family is on a panel', async () => {
    const c = await startController(ctx);
    const tokenFile = join(ctx.dir, 'upstream.token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    h = await startHarness({
      nodes: 2,
      liveness: FAST_LIVENESS,
      extra: `upstream: {url: "${c.url}", token_file: ${tokenFile}}`,
      editConfig: (y) => y.replace('agent_id: test-agent', `agent_id: ${AGENT}`),
    });
    await listen(h.agent);
    const x = h;
    await until(() => x.agent.upstream.status().last_ack_seq !== null, 'the first ack');
    await runSampleOperations(h);
    const scraped = await scrape(h.agent);
    // A Prometheus server adds the target's labels (job, instance) to every series it stores.
    const labelsOf = new Map<string, Set<string>>();
    for (const s of scraped.samples) {
      const set = labelsOf.get(s.name) ?? new Set(['job', 'instance']);
      for (const l of Object.keys(s.labels)) set.add(l);
      labelsOf.set(s.name, set);
    }

    const used = new Set<string>();
    const problems: string[] = [];
    for (const { where, expr } of expressions()) {
      const { names, labels } = metricNames(expr);
      expect(names.size, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) {
        used.add(familyOf(scraped, n));
        const has = labelsOf.get(n);
        if (!has) {
          problems.push(`${where}: ${n} is not in /metrics`);
          continue;
        }
        // A label the expression uses must be on at least one of the series it names.
        for (const l of labels) if (![...names].some((m) => labelsOf.get(m)?.has(l))) problems.push(`${where}: no series of ${[...names].join(', ')} has the label ${l}`);
      }
    }
    expect(problems).toEqual([]);
    const families = new Set(scraped.samples.map((s) => familyOf(scraped, s.name)).filter((n) => n.startsWith('metald_')));
    const missing = [...families].filter((f) => !used.has(f) && !ON_NO_PANEL.has(f));
    expect(missing, 'metald_ families on no panel').toEqual([]);
  });
});

/** Families shown by no panel, on purpose: informational (the engine chosen, seqs behind the unacknowledged sum). */
const ON_NO_PANEL = new Set([
  'metald_liveness_engine',
  'metald_liveness_probes_total',
  'metald_liveness_changes_total',
  'metald_liveness_late_probes_total',
  'metald_power_sync_sweeps_total',
  'metald_upstream_sent_seq',
  'metald_upstream_generation',
  'metald_upstream_last_ack_age_seconds',
  'metald_upstream_welcomes_total',
]);
