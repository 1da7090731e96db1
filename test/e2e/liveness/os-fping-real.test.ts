/**
 * os-fping (seed 000, design 4.2) through the REAL daemon (dist/agent/main.js) on the REAL raw ICMP engine, against
 * real hosts in network namespaces (test/helpers/netns.ts), every verdict compared with Debian's `fping` 5.1 run on
 * the same addresses in the same namespace in the same test.
 *
 * How the test reaches the daemon: the daemon runs INSIDE the lab's probe namespace (`ip netns exec NS node main.js`,
 * Node has no setns) with `liveness.engine: raw`, and listens on the probe end of a veth pair from the test's own
 * (root) namespace into the probe namespace (`buildLivenessLab({ rootLink: true })`), so the test calls its REST API
 * over real HTTP while every probe the daemon sends leaves from the probe namespace, as fping's do.
 *
 * What the peers saw is counted on the peers: each host namespace gets an nft table whose input chain counts echo
 * requests (before the lab's own DROP/reject rules), so "no new probe" is the hosts' view, not only the daemon's
 * /metrics (metald_liveness_probes_total, also checked: it covers the unowned addresses nobody counts).
 *
 * The instances are adopted ones (config `nodes[].adopt`, fake BMCs powered on) whose fixed addresses are the lab's
 * hosts. One daemon run with `liveness.interval: 1h` (the monitor sleeps through it: every verdict comes from
 * os-fping's own fresh probes, then the cache), SIGHUP to `interval: 1s` (the waiting monitor takes it at once and
 * sweeps every second: changes are journalled by it), then a restart
 * with `interval: 3s` (the monitor's sweep's verdicts answer). The tests run in order and build on each other.
 *
 * Needs root, iproute2, nftables, fping, and `npm run build` first; where one is missing the tests FAIL saying why.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeBudgetMs } from '../../../agent/liveness.js';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_PROJECT, ADMIN_TOKEN, MEMBER_TOKEN, OTHER_PROJECT, OTHER_TOKEN, PROJECT, nodeId, writeConfig } from '../../helpers/harness.js';
import { buildLivenessLab, nftInput, type LivenessLab } from '../../helpers/netns.js';

const FPING = '/usr/bin/fping';
const MAIN = new URL('../../../dist/agent/main.js', import.meta.url).pathname;
const TIMEOUT_MS = 300;
const RETRIES = 1;
/** The liveness section of each phase (hysteresis 1: one disagreeing result flips a verdict). */
const liveness = (interval: string): string =>
  `{engine: raw, interval: ${interval}, jitter: 0, timeout: ${String(TIMEOUT_MS)}ms, retries: ${String(RETRIES)}, backoff: 1.5, hysteresis: 1}`;

const id = (n: number): string => `0e5f0000-0000-4000-8000-${String(n).padStart(12, '0')}`;

interface Inst {
  id: string;
  project: string;
  addrs: string[];
  /** What the lab makes of it (checked against fping too: a broken lab fails here, not silently). */
  expect: boolean;
}
/** h1-h3 answer, h4 and h6 DROP echo requests, h5 rejects them with host-unreachable; .50/.51 nobody owns. */
const I = {
  v4Up: { id: id(1), project: PROJECT, addrs: ['10.77.0.11'], expect: true },
  v4Drop: { id: id(2), project: PROJECT, addrs: ['10.77.0.14'], expect: false },
  v4Reject: { id: id(3), project: PROJECT, addrs: ['10.77.0.15'], expect: false },
  v4None: { id: id(4), project: PROJECT, addrs: ['10.77.0.50'], expect: false },
  v6Up: { id: id(5), project: PROJECT, addrs: ['fd77::11'], expect: true },
  v6Drop: { id: id(6), project: PROJECT, addrs: ['fd77::14'], expect: false },
  v6Reject: { id: id(7), project: PROJECT, addrs: ['fd77::15'], expect: false },
  v6None: { id: id(8), project: PROJECT, addrs: ['fd77::50'], expect: false },
  /** nova's rule: alive if ANY fixed address answers; only the last one does (the first is DROPped). */
  multi: { id: id(9), project: PROJECT, addrs: ['10.77.0.16', 'fd77::51', '10.77.0.51', '10.77.0.12'], expect: true },
  /** Toggled by an nft rule on h3 in the journal test. */
  flip: { id: id(10), project: PROJECT, addrs: ['10.77.0.13'], expect: true },
  other: { id: id(11), project: OTHER_PROJECT, addrs: ['fd77::12'], expect: true },
  otherDead: { id: id(12), project: OTHER_PROJECT, addrs: ['fd77::16'], expect: false },
} satisfies Record<string, Inst>;
const ALL: Inst[] = Object.values(I);
const MINE = ALL.filter((i) => i.project === PROJECT);
const TOKEN: Record<string, string> = { [PROJECT]: MEMBER_TOKEN, [OTHER_PROJECT]: OTHER_TOKEN };
/** The host namespaces whose echo requests are counted. */
const HOSTS = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'] as const;

let lab: LivenessLab;
let daemon: Daemon | null = null;
let dir: string;
let configPath: string;

type J = Record<string, unknown>;
const obj = (x: unknown): J => x as J;

function nodesYaml(): string {
  return ALL.map((inst, k) => {
    const i = k + 1;
    const hex = i.toString(16).padStart(2, '0');
    const addrs = inst.addrs
      .map((a, j) => `{addr: "${a}", mac: "fa:16:3e:01:${hex}:${j.toString(16).padStart(2, '0')}", version: ${a.includes(':') ? 6 : 4}, type: fixed, network: ${a.includes(':') ? 'lab6' : 'lab4'}}`)
      .join(', ');
    return `  - id: ${nodeId(i)}
    name: node-${String(i).padStart(2, '0')}
    type: small
    macs: [{mac: "fa:16:3e:00:00:${hex}", pxe: true}]
    bmc: {driver: fake, address: "fake://node-${String(i)}", fake: {power_delay: 5ms, install: 30ms, initial_power: "on", os_installed: debian-12}}
    adopt:
      instance_id: ${inst.id}
      project_id: ${inst.project}
      user_id: u${String(i)}
      name: srv-${String(i)}
      addresses: [${addrs}]`;
  }).join('\n');
}

/** The daemon's config for one phase: the lab's networks and instances, the API on the root link. */
function configFor(interval: string, stateDir?: string): string {
  const { dir: d, configPath: p } = writeConfig({
    nodes: 0,
    liveness: liveness(interval),
    ...(stateDir ? { stateDir } : {}),
    editConfig: (yaml) =>
      yaml
        .replace('listen: 127.0.0.1:0', `listen: ${lab.rootLink!.probe}:0`)
        .replace(
          'networks:\n',
          `networks:
  - {uuid: 6a5b0000-0000-4000-8000-000000000004, name: lab4, cidr: 10.77.0.0/24, gateway: null, pool: null}
  - {uuid: 6a5b0000-0000-4000-8000-000000000006, name: lab6, cidr: "fd77::/64", gateway: null, pool: null}
`,
        )
        .replace(/\nnodes:\n+$/, `\nnodes:\n${nodesYaml()}\n`),
  });
  dir ??= d;
  return p;
}

async function start(path: string): Promise<Daemon> {
  return startDaemon(path, {}, MAIN, ['ip', 'netns', 'exec', lab.probe]);
}

/** Debian's fping on `addrs` inside the probe namespace, same timeout and retries as the daemon: addr -> alive. */
async function fping(addrs: readonly string[]): Promise<Map<string, boolean>> {
  const r = await lab.run(FPING, ['-t', String(TIMEOUT_MS), '-r', String(RETRIES), '-B', '1.5', ...addrs], 30_000);
  if (r.code !== 0 && r.code !== 1) throw new Error(`fping exited ${String(r.code)}: ${r.stderr}`);
  const out = new Map<string, boolean>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+) is (alive|unreachable)$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2] === 'alive');
  }
  for (const a of addrs) if (!out.has(a)) throw new Error(`fping said nothing about ${a}: ${r.stdout} ${r.stderr}`);
  return out;
}

/** fping's verdict per instance, by nova's rule (any address alive). */
async function fpingVerdicts(insts: readonly Inst[]): Promise<Map<string, boolean>> {
  const byAddr = await fping(insts.flatMap((i) => i.addrs));
  return new Map(insts.map((i) => [i.id, i.addrs.some((a) => byAddr.get(a) === true)]));
}

/** Echo requests each host namespace has received so far (the nft counter of beforeAll's `cnt` table). */
function peerCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const h of HOSTS) {
    const text = lab.netns.exec(`${lab.netns.prefix}-${h}`, 'nft', ['list', 'counter', 'inet', 'cnt', 'req']);
    const m = /packets (\d+)/.exec(text);
    if (!m) throw new Error(`no counter in ${h}: ${text}`);
    out[h] = Number(m[1]);
  }
  return out;
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(a).map((k) => [k, b[k]! - a[k]!]));
}

async function metric(name: string): Promise<number> {
  const r = await daemon!.call('GET', '/metrics', null);
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.text);
  if (!m) throw new Error(`/metrics has no ${name}`);
  return Number(m[1]);
}

async function one(inst: Inst, token = TOKEN[inst.project]!): Promise<{ status: number; body: J; ms: number }> {
  const t0 = performance.now();
  const r = await daemon!.call('GET', `/v2.1/${inst.project}/os-fping/${inst.id}`, token);
  return { status: r.status, body: obj(r.body), ms: performance.now() - t0 };
}

async function list(project: string, token: string, query = ''): Promise<{ status: number; body: J; servers: J[] }> {
  const r = await daemon!.call('GET', `/v2.1/${project}/os-fping${query}`, token);
  const body = obj(r.body);
  return { status: r.status, body, servers: (body['servers'] as J[] | undefined) ?? [] };
}

const verdictsOf = (servers: J[]): Map<string, boolean> => new Map(servers.map((s) => [String(s['id']), s['alive'] as boolean]));

/** The journal's instance.alive entries, read from the store's file read-only (the daemon keeps it in WAL mode). */
function aliveJournal(): { seq: number; instance_id: string; alive: boolean; cause: string }[] {
  const db = new Database(join(dir, 'state', 'metald.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare("SELECT seq, instance_id, cause, data FROM journal WHERE kind = 'instance.alive' ORDER BY seq")
      .all() as { seq: number; instance_id: string; cause: string; data: string }[];
    return rows.map((r) => ({ seq: r.seq, instance_id: r.instance_id, cause: r.cause, alive: (JSON.parse(r.data) as { alive: boolean }).alive }));
  } finally {
    db.close();
  }
}


/** Rewrites the running config's liveness interval and SIGHUPs the daemon; resolves once it says it reloaded. */
async function reloadInterval(interval: string): Promise<void> {
  const before = daemon!.stdout().split('SIGHUP: reloaded').length;
  writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/^liveness: .*$/m, `liveness: ${liveness(interval)}`));
  daemon!.child.kill('SIGHUP');
  await waitFor(() => daemon!.stdout().split('SIGHUP: reloaded').length > before, 10_000, 'SIGHUP: reloaded');
}

beforeAll(async () => {
  if (!existsSync(FPING)) throw new Error(`${FPING} is missing: apt-get install fping`);
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` before this test (it runs the built daemon)`);
  lab = buildLivenessLab({ far: 0, rootLink: true });
  const h6 = lab.attachHost('h6', ['10.77.0.16'], ['fd77::16']);
  lab.netns.nft(h6, nftInput(['icmp type echo-request drop', 'icmpv6 type echo-request drop']));
  const count = ['table inet cnt {', '  counter req { }', '  chain in {', '    type filter hook input priority -10;', '    icmp type echo-request counter name req', '    icmpv6 type echo-request counter name req', '  }', '}', ''].join('\n');
  for (const h of HOSTS) lab.netns.nft(`${lab.netns.prefix}-${h}`, count);
  configPath = configFor('1h');
  daemon = await start(configPath);
  // Every adopted instance is running before the first question (adoption completes at start-up's power reads); asked
  // on v1's status, not os-fping, so that nothing is probed before the first test.
  await waitFor(
    async () => {
      const states = await Promise.all(ALL.map(async (i) => obj((await daemon!.call('GET', `/v1/${i.project}/instances/${i.id}/status`, TOKEN[i.project]!)).body)['state']));
      return states.every((s) => s === 'running');
    },
    20_000,
    'every instance adopted and running',
  );
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  lab?.destroy();
});

describe('os-fping on the real daemon and raw engine, checked against fping', () => {
  let expected: Map<string, boolean>;

  it('single form: each alive equals fping\'s (fresh probes: nothing held yet), v4 and v6, nova\'s any-answers rule', async () => {
    expected = await fpingVerdicts(ALL);
    // The lab itself, as fping sees it (a broken lab fails here): and MULTI has exactly one answering address.
    expect(Object.fromEntries(ALL.map((i) => [i.id, expected.get(i.id)]))).toEqual(Object.fromEntries(ALL.map((i) => [i.id, i.expect])));
    const multiAddrs = await fping(I.multi.addrs);
    expect(I.multi.addrs.filter((a) => multiAddrs.get(a))).toEqual(['10.77.0.12']);

    const c0 = peerCounts();
    const p0 = await metric('metald_liveness_probes_total');
    const answers = await Promise.all(ALL.map((i) => one(i)));
    for (const [k, inst] of ALL.entries()) {
      expect(answers[k]!.status).toBe(200);
      expect(answers[k]!.body).toEqual({ server: { alive: expected.get(inst.id), id: inst.id, project_id: inst.project } });
    }
    // Each was a real probe: every address probed once (p), every host saw echo requests.
    expect((await metric('metald_liveness_probes_total')) - p0).toBe(ALL.reduce((n, i) => n + i.addrs.length, 0));
    const seen = diff(c0, peerCounts());
    for (const h of HOSTS) expect(seen[h], `echo requests at ${h}`).toBeGreaterThan(0);
    expect(await metric('metald_liveness_late_probes_total')).toBe(0);
    // The DROP instance's fresh probe was answered by the engine's own timeouts (first try and its retry), not by
    // the bound: no sooner than the two timeouts, no later than the budget.
    const drop = answers[ALL.indexOf(I.v4Drop)]!;
    const budget = probeBudgetMs({ interval_ms: 3_600_000, timeout_ms: TIMEOUT_MS, retries: RETRIES, batch: 128, backoff: 1.5 }, ALL.length);
    expect(drop.ms).toBeGreaterThanOrEqual(TIMEOUT_MS + TIMEOUT_MS * 1.5 - 20);
    expect(drop.ms).toBeLessThan(budget);
  });

  it('list form, verdicts younger than the interval: every instance of the project, equal to fping, and no new probe', async () => {
    const c0 = peerCounts();
    const p0 = await metric('metald_liveness_probes_total');
    const r = await list(PROJECT, MEMBER_TOKEN);
    expect(r.status).toBe(200);
    expect(Object.keys(r.body)).toEqual(['servers']);
    for (const s of r.servers) expect(Object.keys(s).sort()).toEqual(['alive', 'id', 'project_id']);
    expect(r.servers.every((s) => s['project_id'] === PROJECT)).toBe(true);
    expect([...verdictsOf(r.servers).keys()].sort()).toEqual(MINE.map((i) => i.id).sort());
    expect(verdictsOf(r.servers)).toEqual(new Map(MINE.map((i) => [i.id, expected.get(i.id)])));
    expect(diff(c0, peerCounts())).toEqual(Object.fromEntries(HOSTS.map((h) => [h, 0])));
    expect(await metric('metald_liveness_probes_total')).toBe(p0);
    // And fping, now, still agrees with the cached answers.
    expect(verdictsOf(r.servers)).toEqual(await fpingVerdicts(MINE));
  });

  it('all_tenants: the admin sees every project\'s instances; a member gets 403 (nova fault); all_tenants=0 is the own list', async () => {
    const a = await list(ADMIN_PROJECT, ADMIN_TOKEN, '?all_tenants=1');
    expect(a.status).toBe(200);
    expect(verdictsOf(a.servers)).toEqual(new Map(ALL.map((i) => [i.id, expected.get(i.id)])));
    expect(new Map(a.servers.map((s) => [s['id'], s['project_id']]))).toEqual(new Map(ALL.map((i) => [i.id, i.project])));
    // Without all_tenants the admin's own project (which has none).
    expect((await list(ADMIN_PROJECT, ADMIN_TOKEN)).servers).toEqual([]);
    const m = await list(PROJECT, MEMBER_TOKEN, '?all_tenants=1');
    expect(m.status).toBe(403);
    expect(m.body).toEqual({ forbidden: { message: 'Policy does not allow all_tenants: admin only.', code: 403 } });
    const z = await list(PROJECT, MEMBER_TOKEN, '?all_tenants=0');
    expect(z.status).toBe(200);
    expect([...verdictsOf(z.servers).keys()].sort()).toEqual(MINE.map((i) => i.id).sort());
    // The other project's member sees its own two.
    expect([...verdictsOf((await list(OTHER_PROJECT, OTHER_TOKEN)).servers).keys()].sort()).toEqual([I.other.id, I.otherDead.id].sort());
  });

  it('include and exclude (comma-separated ids); a bad id or both at once: 400 badRequest', async () => {
    const inc = await list(PROJECT, MEMBER_TOKEN, `?include=${I.v4Up.id},${I.v6Drop.id},${I.multi.id}`);
    expect(inc.status).toBe(200);
    expect(verdictsOf(inc.servers)).toEqual(new Map([I.v4Up, I.v6Drop, I.multi].map((i) => [i.id, expected.get(i.id)])));
    // Another project's id in include: not the member's to see.
    expect((await list(PROJECT, MEMBER_TOKEN, `?include=${I.other.id}`)).servers).toEqual([]);
    const exc = await list(PROJECT, MEMBER_TOKEN, `?exclude=${I.v4Up.id},${I.v6Drop.id}`);
    expect(exc.status).toBe(200);
    expect([...verdictsOf(exc.servers).keys()].sort()).toEqual(MINE.filter((i) => i !== I.v4Up && i !== I.v6Drop).map((i) => i.id).sort());
    const adm = await list(ADMIN_PROJECT, ADMIN_TOKEN, `?all_tenants=1&include=${I.other.id},${I.v4Up.id}`);
    expect([...verdictsOf(adm.servers).keys()].sort()).toEqual([I.other.id, I.v4Up.id].sort());
    const bad = await list(PROJECT, MEMBER_TOKEN, `?include=${I.v4Up.id},nope`);
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ badRequest: { message: "Invalid input: querystring.include: 'nope' is not an instance UUID", code: 400 } });
    const badEx = await list(PROJECT, MEMBER_TOKEN, '?exclude=12');
    expect(badEx.body).toEqual({ badRequest: { message: "Invalid input: querystring.exclude: '12' is not an instance UUID", code: 400 } });
    const both = await list(PROJECT, MEMBER_TOKEN, `?include=${I.v4Up.id}&exclude=${I.v6Up.id}`);
    expect(both.body).toEqual({ badRequest: { message: 'Invalid input: querystring: give include or exclude, not both', code: 400 } });
  });

  it('journal: each instance\'s first verdict is one instance.alive event with its id and verdict', () => {
    const j = aliveJournal();
    expect(new Map(j.map((e) => [e.instance_id, e.alive]))).toEqual(new Map(ALL.map((i) => [i.id, expected.get(i.id)])));
    expect(j.length).toBe(ALL.length);
  });

  it('SIGHUP to a 1 s interval reaches the monitor waiting out 1 h: it sweeps within seconds (the hosts see it); same verdicts, no event', async () => {
    const j0 = aliveJournal().length;
    const sweeps0 = await metric('metald_liveness_sweeps_total');
    const c0 = peerCounts();
    await reloadInterval('1s');
    await waitFor(async () => (await metric('metald_liveness_sweeps_total')) >= sweeps0 + 2, 10_000, 'two monitor sweeps after the SIGHUP');
    // The peers' own view: every host got echo requests from the sweeps.
    const seen = diff(c0, peerCounts());
    for (const h of HOSTS) expect(seen[h], `echo requests at ${h}`).toBeGreaterThanOrEqual(2);
    // Whether cached or probed afresh, each answer is fping's, in time: a DROP host answers false within the bound.
    const budget = probeBudgetMs({ interval_ms: 1000, timeout_ms: TIMEOUT_MS, retries: RETRIES, batch: 128, backoff: 1.5 }, 1);
    const drop = await one(I.v4Drop);
    expect(drop.body).toEqual({ server: { alive: false, id: I.v4Drop.id, project_id: PROJECT } });
    expect(drop.ms).toBeLessThan(budget);
    const r = await list(ADMIN_PROJECT, ADMIN_TOKEN, '?all_tenants=1');
    expect(verdictsOf(r.servers)).toEqual(await fpingVerdicts(ALL));
    expect(await metric('metald_liveness_late_probes_total')).toBe(0);
    // The same verdicts: no change, no event.
    expect(aliveJournal().length).toBe(j0);
  });

  it('each alive change is one journal event (id, new verdict), equal to fping; no change, no event', async () => {
    const h3 = `${lab.netns.prefix}-h3`;
    const aliveNow = async () => (obj((await one(I.flip)).body['server'] as J)['alive'] as boolean);
    const j0 = aliveJournal();
    lab.netns.nft(h3, 'table inet flip {\n  chain in {\n    type filter hook input priority 0;\n    icmp type echo-request drop\n  }\n}\n');
    // The monitor (1 s interval, hysteresis 1) or a fresh probe sees it within a few sweeps.
    await waitFor(async () => !(await aliveNow()), 10_000, 'os-fping saying the silenced host is not alive');
    const down = await list(PROJECT, MEMBER_TOKEN);
    const fDown = await fpingVerdicts(MINE);
    expect(fDown.get(I.flip.id)).toBe(false);
    expect(verdictsOf(down.servers)).toEqual(fDown);
    const j1 = aliveJournal();
    expect(j1.slice(j0.length).map((e) => ({ instance_id: e.instance_id, alive: e.alive }))).toEqual([{ instance_id: I.flip.id, alive: false }]);

    lab.netns.exec(h3, 'nft', ['delete', 'table', 'inet', 'flip']);
    await waitFor(aliveNow, 10_000, 'os-fping saying the host is alive again');
    expect((await fping(I.flip.addrs)).get('10.77.0.13')).toBe(true);
    const j2 = aliveJournal();
    expect(j2.slice(j1.length).map((e) => ({ instance_id: e.instance_id, alive: e.alive }))).toEqual([{ instance_id: I.flip.id, alive: true }]);

    // Two more sweeps over everything: nothing changed, nothing journalled.
    const sweeps = await metric('metald_liveness_sweeps_total');
    await waitFor(async () => (await metric('metald_liveness_sweeps_total')) >= sweeps + 2, 10_000, 'two more sweeps');
    const again = await list(ADMIN_PROJECT, ADMIN_TOKEN, '?all_tenants=1');
    expect(verdictsOf(again.servers)).toEqual(new Map(ALL.map((i) => [i.id, expected.get(i.id)])));
    expect(aliveJournal().length).toBe(j2.length);
  });

  it('after a restart: the monitor\'s sweep verdicts answer while younger than the interval (no probe), equal to fping; nothing journalled', async () => {
    const j0 = aliveJournal().length;
    expect(await daemon!.kill('SIGTERM')).toBe(0);
    daemon = null;
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/^liveness: .*$/m, `liveness: ${liveness('3s')}`));
    daemon = await start(configPath);
    await waitFor(async () => (await metric('metald_liveness_sweeps_total')) >= 1, 15_000, "the monitor's first sweep");
    const swept = await metric('metald_liveness_probes_total');
    expect(swept).toBe(ALL.reduce((n, i) => n + i.addrs.length, 0));
    const c0 = peerCounts();
    const r = await list(ADMIN_PROJECT, ADMIN_TOKEN, '?all_tenants=1');
    const c1 = peerCounts();
    const sweeps = await metric('metald_liveness_sweeps_total');
    if (sweeps !== 1) throw new Error(`inconclusive: a second sweep (${String(sweeps)}) ran during the question`);
    expect(diff(c0, c1)).toEqual(Object.fromEntries(HOSTS.map((h) => [h, 0])));
    expect(await metric('metald_liveness_probes_total')).toBe(swept);
    expect(verdictsOf(r.servers)).toEqual(await fpingVerdicts(ALL));
    // The restart and the sweep changed no verdict: no event.
    expect(aliveJournal().length).toBe(j0);
  });
});
