/**
 * The upstream link's metrics, read from its status at each scrape: which state the link is in, how far the
 * controller has acknowledged, how far the journal goes, the generation held, links welcomed and failed attempts.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { UpstreamInfo } from './routes-ops.js';

export const UPSTREAM_STATES = ['disabled', 'idle', 'connecting', 'hello-sent', 'streaming', 'backing-off', 'closed'] as const;

export function createUpstreamMetrics(registry: Registry, status: () => UpstreamInfo): void {
  const gauges: [string, string, (s: UpstreamInfo) => number | null][] = [
    ['metald_upstream_last_ack_seq', 'The greatest journal seq the controller acknowledged (kept durably there) since start.', (s) => s.last_ack_seq],
    ['metald_upstream_sent_seq', 'The greatest journal seq sent on the current link.', (s) => s.sent_seq],
    ['metald_journal_last_seq', 'The last journal seq handed out (the controller lacks last_seq - last_ack_seq events).', (s) => s.last_seq],
    ['metald_upstream_generation', 'The fencing generation the agent holds (0: none seen).', (s) => s.generation],
    ['metald_upstream_attempts', 'Failed dials or links since the last welcome (the back-off exponent).', (s) => s.attempts],
    [
      'metald_upstream_last_ack_age_seconds',
      'Seconds since the last ack arrived (absent before the first).',
      (s) => (s.last_ack_at === null ? null : Math.max(0, (Date.now() - Date.parse(s.last_ack_at)) / 1000)),
    ],
  ];
  const names = ['metald_upstream_link_state', 'metald_upstream_welcomes_total', ...gauges.map(([n]) => n)];
  for (const name of names) if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  new Gauge({
    name: 'metald_upstream_link_state',
    help: 'The upstream link state: 1 for the state it is in, 0 for the others (disabled: no upstream.url).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const now = status().state;
      for (const st of UPSTREAM_STATES) this.set({ state: st }, st === now ? 1 : 0);
    },
  });
  for (const [name, help, read] of gauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        const v = read(status());
        if (v !== null) this.set(v);
      },
    });
  }
  new Counter({
    name: 'metald_upstream_welcomes_total',
    help: 'Links that reached streaming (a welcome taken) since start.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(status().welcomes);
    },
  });
}
