/**
 * The upstream link on real parts: the built daemon (dist/agent/main.js, a child process) dials the reference
 * controller (dist/scripts/controller/main.js, another child process). What is checked is what the controller holds
 * in its own SQLite file and printed, not what metald says about itself.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startController, type Ctl } from '../../helpers/controller.js';
import { METALCTL, startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_TOKEN, IMAGE, MEMBER_TOKEN, PROJECT, nodeId, writeConfig } from '../../helpers/harness.js';

const AGENT = 'test-agent';
const TOKEN = 'upstream-token-0123456789abcdef';

interface Upstream {
  state: string;
  last_error: string | null;
  last_ack_seq: number | null;
  last_seq: number;
  sent_seq: number | null;
  welcomes: number;
}

let daemon: Daemon | null = null;
let ctls: Ctl[] = [];
let dirs: string[] = [];

afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = null;
  for (const c of ctls) await c.kill();
  ctls = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A config with an upstream to 127.0.0.1:port and the token file; `extra` more top-level YAML. */
function config(port: number, nodes: number, extra = ''): { dir: string; configPath: string; tokenFile: string } {
  const tdir = mkdtempSync(join(tmpdir(), 'metald-up-'));
  dirs.push(tdir);
  const tokenFile = join(tdir, 'upstream.token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const cfg = writeConfig({ nodes, extra: `upstream: {url: "ws://127.0.0.1:${port}/v1/agents", token_file: ${tokenFile}}\n${extra}` });
  dirs.push(cfg.dir);
  return { ...cfg, tokenFile };
}

function ctlDir(): { db: string; tokenFile: string } {
  const d = mkdtempSync(join(tmpdir(), 'ctl-'));
  dirs.push(d);
  const tokenFile = join(d, 'tokens');
  writeFileSync(tokenFile, `${TOKEN} ${AGENT}\n`);
  return { db: join(d, 'ctl.db'), tokenFile };
}

async function controller(c: { db: string; tokenFile: string }, port?: number, extra: string[] = []): Promise<Ctl> {
  const ctl = await startController({ ...c, extra, ...(port !== undefined ? { listen: `127.0.0.1:${port}` } : {}) });
  ctls.push(ctl);
  return ctl;
}

async function upstream(d: Daemon): Promise<Upstream> {
  const r = await d.call('GET', '/readyz', null);
  return (r.body as { upstream: Upstream }).upstream;
}

/** What the controller's file holds for the agent: its seqs in order, the kinds, the place. */
function held(db: string): { seqs: number[]; kinds: Map<number, string>; bodies: Map<number, Record<string, unknown>>; place: number | null } {
  const d = new Database(db, { readonly: true });
  try {
    const rows = d.prepare('SELECT seq, kind, body FROM events WHERE agent_id = ? ORDER BY seq').all(AGENT) as { seq: number; kind: string; body: string }[];
    const place = (d.prepare('SELECT place FROM agents WHERE agent_id = ?').get(AGENT) as { place: number } | undefined)?.place ?? null;
    return {
      seqs: rows.map((r) => r.seq),
      kinds: new Map(rows.map((r) => [r.seq, r.kind])),
      bodies: new Map(rows.map((r) => [r.seq, JSON.parse(r.body) as Record<string, unknown>])),
      place,
    };
  } finally {
    d.close();
  }
}

function metalctl(d: Daemon, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [METALCTL, ...args], { env: { ...process.env, METALCTL_URL: d.url, METALCTL_TOKEN: ADMIN_TOKEN }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** Creates one instance per node and waits until every one runs. */
async function createInstances(d: Daemon, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 1; i <= n; i++) {
    const r = await d.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: `vm-${i}`, image_uuid: IMAGE, extra: { node_id: nodeId(i) } });
    expect(r.status, r.text).toBe(201);
    ids.push((r.body as { uuid: string }).uuid);
  }
  await waitFor(async () => {
    for (const id of ids) {
      const r = await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN);
      if ((r.body as { state?: string } | null)?.state !== 'running') return false;
    }
    return true;
  }, 30_000, 'every instance running');
  return ids;
}

/**
 * Keeps rebooting the instances (each a few journal entries) until the journal reaches `until` or `stop()` says
 * so; a locked instance (its previous reboot still running) is tried again a moment later. Errors of a daemon that
 * is being killed are expected: the loop goes on against `current()`.
 */
function churn(current: () => Daemon | null, ids: string[]): { stop: () => Promise<void>; sent: () => number } {
  let running = true;
  let sent = 0;
  const worker = async (id: string) => {
    while (running) {
      const d = current();
      if (d === null) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      try {
        const r = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'rebooting' });
        if (r.status === 202) sent += 1;
        else await new Promise((res) => setTimeout(res, 5));
      } catch {
        await new Promise((res) => setTimeout(res, 20));
      }
    }
  };
  const all = Promise.all(ids.map(worker));
  return {
    stop: async () => {
      running = false;
      await all;
    },
    sent: () => sent,
  };
}

describe('upstream link, metald and the reference controller as processes', () => {
  it('10,000 events across 3 controller restarts and an agent SIGKILL: the controller holds every seq once, in order, no gap', async () => {
    const cd = ctlDir();
    let ctl = await controller(cd);
    const port = ctl.port;
    const cfg = config(port, 16);
    daemon = await startDaemon(cfg.configPath);
    await waitFor(async () => (await upstream(daemon!)).state === 'streaming', 10_000, 'the link streaming');
    const ids = await createInstances(daemon, 16);
    let live: Daemon | null = daemon;
    const load = churn(() => live, ids);
    const seqNow = async () => (live ? (await upstream(live)).last_seq : 0);
    const reach = (n: number, what: string) => waitFor(async () => (await seqNow().catch(() => 0)) >= n, 120_000, what);

    try {
      // Three controller outages while events keep coming: SIGTERM (it commits and acks what it has), then two SIGKILLs.
      for (const [i, signal] of (['SIGTERM', 'SIGKILL', 'SIGKILL'] as const).entries()) {
        await reach(1500 * (i + 1), `journal at ${1500 * (i + 1)}`);
        await ctl.kill(signal);
        await reach(1500 * (i + 1) + 700, 'events written while the controller is away');
        ctl = await controller(cd, port);
        await ctl.waitFor('welcome');
      }
      // The agent SIGKILLed mid-stream, then started again on the same state dir.
      await reach(6000, 'journal at 6,000');
      const killed = live!;
      live = null;
      await killed.kill('SIGKILL');
      daemon = await startDaemon(cfg.configPath);
      live = daemon;
      await reach(10_000, 'journal at 10,000');
    } finally {
      await load.stop();
    }
    const d = daemon;
    await waitFor(async () => {
      const u = await upstream(d);
      return u.last_ack_seq !== null && u.last_ack_seq === u.last_seq && held(cd.db).place === u.last_seq;
    }, 30_000, 'the controller acking the last seq');
    const last = (await upstream(d)).last_seq;
    expect(last).toBeGreaterThanOrEqual(10_000);

    const h = held(cd.db);
    // Every seq once (the file's key is (agent, store, seq); the count rules out anything else), no gap.
    expect(h.seqs).toEqual(range(1, last));
    expect(h.place).toBe(last);
    // In order: every controller run printed the events it kept (once on disk) in consecutive seq order, each run
    // after the one before; a run killed between a commit and its sync leaves its last ones unprinted (but kept).
    const kept = ctls.map((c) => c.of('event').map((l) => l.seq as number));
    for (const run of kept) expect(run).toEqual(range(run[0] ?? 1, (run[0] ?? 1) + run.length - 1));
    const all = kept.flat();
    for (let i = 1; i < all.length; i++) expect(all[i]!).toBeGreaterThan(all[i - 1]!);
    // Each restarted controller resumed from its own durable place (not from 1), and the agent's restart was a new link.
    expect(ctls).toHaveLength(4);
    for (const c of ctls.slice(1)) expect(c.of('welcome')[0]!.resume_from as number).toBeGreaterThan(1500);
    expect(ctls[3]!.of('welcome').length).toBeGreaterThanOrEqual(2);
    // The content is the agent's: the last instance.power of every instance is what the API says now.
    for (const id of ids) {
      const powers = [...h.bodies.values()].filter((b) => b.kind === 'instance.power' && b.instance_id === id);
      const st = await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN);
      const want = (st.body as { power_state: string }).power_state === 'power on' ? 'on' : 'off';
      expect((powers.at(-1)?.data as { power_state?: string } | undefined)?.power_state).toBe(want);
    }
    expect(load.sent()).toBeGreaterThan(300);
  }, 300_000);

  it('a controller away long enough to fill the outbox gets the fold markers, resyncs, and loses nothing else', async () => {
    const cd = ctlDir();
    let ctl = await controller(cd);
    const port = ctl.port;
    const cfg = config(port, 8, 'outbox: {max_events: 1000, max_bytes: 4194304}');
    daemon = await startDaemon(cfg.configPath);
    const d = daemon;
    const ids = await createInstances(d, 8);
    await waitFor(async () => {
      const u = await upstream(d);
      return u.last_ack_seq === u.last_seq;
    }, 20_000, 'the creates acked');
    await ctl.kill('SIGTERM');
    const before = (await upstream(d)).last_seq;
    // Far more than the outbox holds while the controller is away.
    const load = churn(() => d, ids);
    try {
      await waitFor(async () => (await upstream(d)).last_seq >= before + 3000, 120_000, '3,000 events while away');
    } finally {
      await load.stop();
    }
    const depth = await d.call('GET', '/metrics', null);
    const events = Number(/^metald_outbox_events (\d+)/m.exec(depth.text)?.[1]);
    expect(events).toBeLessThanOrEqual(1000);
    expect(Number(/^metald_outbox_folded_total (\d+)/m.exec(depth.text)?.[1])).toBeGreaterThan(0);
    ctl = await controller(cd, port);
    const last = (await upstream(d)).last_seq;
    await waitFor(() => held(cd.db).place === last, 30_000, 'the controller at the last seq');
    // It asked for a resync (a gap or a marker) and took the snapshot as covering what was folded.
    expect(ctl.of('resync').length).toBeGreaterThan(0);
    const covered = ctl.of('covered').map((l) => [l.from_seq as number, l.to_seq as number] as const);
    const h = held(cd.db);
    const markers = [...h.bodies.values()].filter((b) => b.kind === 'outbox.folded');
    const accounted = new Set(h.seqs);
    for (const [from, to] of covered) for (let q = from; q <= to; q++) accounted.add(q);
    for (const m of markers) for (let q = (m.data as { from_seq: number }).from_seq; q <= (m.seq as number); q++) accounted.add(q);
    const unaccounted = range(1, last).filter((q) => !accounted.has(q));
    if (unaccounted.length > 0) console.log('UNACC', unaccounted[0], unaccounted.at(-1), 'covered', JSON.stringify(covered), 'markers', markers.length, JSON.stringify(ctl.lines.filter((l) => ['gap', 'covered', 'resync', 'welcome', 'hello'].includes(l.what)).slice(0, 12)));
    expect(unaccounted).toEqual([]);
    // The snapshot it took is the agent's state: every instance's power as the API says.
    const snap = JSON.parse((new Database(cd.db, { readonly: true }).prepare('SELECT snapshot FROM agents WHERE agent_id = ?').get(AGENT) as { snapshot: string }).snapshot) as {
      instances: { id: string; power_state: string }[];
    };
    expect(snap.instances.map((i) => i.id).sort()).toEqual([...ids].sort());
    // Nothing after the resync is missing: the events since the last covered seq are all held.
    const lastCovered = Math.max(...covered.map(([, to]) => to));
    expect(h.seqs.filter((q) => q > lastCovered)).toEqual(range(lastCovered + 1, last));
  }, 240_000);

  it('a wrong token is refused at the upgrade and shown; the right one after SIGHUP streams', async () => {
    const cd = ctlDir();
    const ctl = await controller(cd);
    const cfg = config(ctl.port, 1);
    writeFileSync(cfg.tokenFile, 'not-the-token-at-all-0000\n', { mode: 0o600 });
    daemon = await startDaemon(cfg.configPath);
    const d = daemon;
    await waitFor(async () => /401/.test((await upstream(d)).last_error ?? ''), 10_000, 'the 401 in the link status');
    expect((await upstream(d)).state).not.toBe('streaming');
    await ctl.waitFor('refused');
    // metalctl shows it: ready (the controller is not waited for), the link's error.
    const st = metalctl(d, ['agent', 'status']);
    expect(st.status, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/^ready\s+yes$/m);
    expect(st.stdout).toMatch(/^last error\s+.*401/m);
    // Readiness never waits for the controller.
    expect((await d.call('GET', '/readyz', null)).status).toBe(200);
    writeFileSync(cfg.tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    d.child.kill('SIGHUP');
    await waitFor(async () => (await upstream(d)).state === 'streaming', 70_000, 'the link streaming with the new token');
    await ctl.waitFor('welcome');
    expect(metalctl(d, ['agent', 'status']).stdout).toMatch(/^link state\s+streaming since /m);
    expect(d.stdout()).not.toContain(TOKEN);
    expect(d.stdout()).not.toContain('not-the-token-at-all');
  }, 120_000);

  it('a controller restarted from an older place gets what it lacked', async () => {
    const cd = ctlDir();
    let ctl = await controller(cd);
    const port = ctl.port;
    const cfg = config(port, 2);
    daemon = await startDaemon(cfg.configPath);
    const d = daemon;
    const ids = await createInstances(d, 2);
    for (let i = 0; i < 5; i++) {
      for (const id of ids) {
        await waitFor(async () => (await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'rebooting' })).status === 202, 10_000, 'a reboot accepted');
      }
    }
    await waitFor(async () => {
      const u = await upstream(d);
      return u.last_ack_seq === u.last_seq && held(cd.db).place === u.last_seq;
    }, 20_000, 'everything acked');
    const last = (await upstream(d)).last_seq;
    await ctl.kill('SIGTERM');
    const rewindTo = Math.max(1, last - 20);
    ctl = await controller(cd, port, ['--rewind-to', String(rewindTo)]);
    await ctl.waitFor('welcome', (l) => l.resume_from === rewindTo);
    // Back at the agent's last seq (which may have grown meanwhile: a liveness verdict, a power read).
    await waitFor(async () => {
      const place = held(cd.db).place ?? 0;
      return place >= last && place === (await upstream(d)).last_seq;
    }, 20_000, 'the rewound controller back at the last seq');
    const now = held(cd.db).place!;
    await ctl.waitFor('event', (l) => l.seq === now);
    expect(held(cd.db).seqs).toEqual(range(1, now));
    // What it lacked came from the agent's journal (kept acked entries), not a snapshot.
    expect(ctl.of('event').map((l) => l.seq)).toEqual(range(rewindTo, now));
    expect(ctl.of('covered')).toEqual([]);
  }, 120_000);

  it('commands from the controller run once: repeated after a reconnect and after an agent restart', async () => {
    const cd = ctlDir();
    let ctl = await controller(cd);
    const port = ctl.port;
    const cfg = config(port, 1);
    daemon = await startDaemon(cfg.configPath);
    const [id] = await createInstances(daemon, 1);
    await ctl.waitFor('welcome');
    ctl.input(`command ${AGENT} instance.power {"instance_id":"${id}","target":"reboot"}`);
    const commandId = (await ctl.waitFor('command-sent')).command_id as string;
    await ctl.waitFor('command-result', (l) => l.command_id === commandId && l.status === 'accepted' && l.repeat === false);
    const actions = async (d: Daemon) =>
      ((await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions`, MEMBER_TOKEN)).body as { instanceActions: { request_id: string }[] }).instanceActions.filter(
        (a) => a.request_id === commandId,
      );
    expect(await actions(daemon)).toHaveLength(1);
    // The same command_id again on a new link (the controller restarted), then after the agent restarts (the results
    // are in its store): the first result each time, marked as a repeat, and nothing run.
    await ctl.kill('SIGKILL');
    ctl = await controller(cd, port);
    await ctl.waitFor('welcome');
    ctl.input(`resend ${AGENT} ${commandId}`);
    await ctl.waitFor('command-result', (l) => l.command_id === commandId && l.status === 'accepted' && l.repeat === true);
    await daemon.kill('SIGKILL');
    daemon = await startDaemon(cfg.configPath);
    await waitFor(() => ctl.of('welcome').length >= 2, 20_000, 'the restarted agent welcomed');
    ctl.input(`resend ${AGENT} ${commandId}`);
    await waitFor(() => ctl.of('command-result').filter((l) => l.command_id === commandId && l.repeat === true).length >= 2, 20_000, 'the second repeat answered');
    expect(await actions(daemon)).toHaveLength(1);
    await waitFor(async () => {
      const u = await upstream(daemon!);
      return u.last_ack_seq === u.last_seq;
    }, 20_000, 'everything acked');
    const started = [...held(cd.db).bodies.values()].filter((b) => b.kind === 'action.started' && (b.data as { request_id?: string }).request_id === commandId);
    expect(started).toHaveLength(1);
  }, 120_000);
});
