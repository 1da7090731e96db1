/**
 * The demo (`npm run demo`): an emulated rack of 8 servers on loopback (scripts/demo/rack.ts: 4 behind ipmi_sim
 * BMCs, 4 behind the Redfish emulator, a node emulator behind each; the reference controller; metald), on embedded
 * defaults. It powers the rack on, sweeps liveness, installs an OS on two servers (one IPMI, one Redfish) with a live
 * progress bar per install (plain lines when stdout is not a terminal), prints a status table, then leaves metald,
 * its API, its status page and the rack running with their URLs and an example metalctl command until Ctrl-C (SIGINT or SIGTERM),
 * which stops everything it started and removes every file it made (scripts/demo/leftovers.ts finds the rest).
 *
 *   npm run demo              # the whole demo, then wait for Ctrl-C
 *   npm run demo -- --exit    # the whole demo, then stop at once (scripted use)
 */
import { mkdtempSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from '../agent/cli/metalctl.js';
import { ADMIN_PROJECT, IMAGE2, MEMBER_TOKEN, PROJECT, nodeId } from '../test/helpers/harness.js';
import { call } from './bench/daemon.js';
import { killLeftovers } from './demo/leftovers.js';
import { ProgressBoard, type OperationView } from './demo/progress.js';
import { ADOPTED, NODES, startRack, type Rack } from './demo/rack.js';

const out = process.stdout;
const say = (s: string) => out.write(`\n== ${s}\n`);
const note = (s: string) => out.write(`   ${s}\n`);

/** One metalctl command, shown as typed, its output as printed (`quiet`: neither; its progress on stderr kept for an error). */
async function metalctl(env: Record<string, string>, args: string[], quiet = false): Promise<string> {
  if (!quiet) out.write(`\n$ metalctl ${args.join(' ')}\n`);
  let text = '';
  let errors = '';
  const stderr = quiet ? { write: (s: string) => ((errors += s), true) } : process.stderr;
  const code = await run(args, { stdout: { write: (s: string) => ((text += s), quiet || out.write(s)) }, stderr, env: { ...process.env, ...env } });
  if (code !== 0) throw new Error(`metalctl ${args.join(' ')} exited ${code}: ${errors.trim().split('\n').slice(-3).join(' | ')}`);
  return text;
}

interface Install {
  label: string;
  id: string;
  requestId: string;
}

async function watchInstalls(rack: Rack, installs: Install[]): Promise<void> {
  const board = new ProgressBoard(out);
  const deadline = Date.now() + 240_000;
  for (;;) {
    const views: OperationView[] = await Promise.all(
      installs.map(async (i) => {
        const server = (await call(rack.url, 'GET', `/v2/${PROJECT}/servers/${i.id}`, MEMBER_TOKEN)).body as { server: { progress: number | null } };
        const action = (await call(rack.url, 'GET', `/v2/${PROJECT}/servers/${i.id}/os-instance-actions/${i.requestId}`, MEMBER_TOKEN)).body as { instanceAction: { events: { event: string; result: string | null }[] } };
        const status = (await call(rack.url, 'GET', `/v1/${PROJECT}/instances/${i.id}/status`, MEMBER_TOKEN)).body as { operation_state: string | null };
        const events = action.instanceAction.events.filter((e) => e.event !== 'schedule');
        const failed = status.operation_state === 'install-failed';
        const done = status.operation_state === 'install-succeed' || failed;
        return { label: i.label, step: events.at(-1)?.event ?? 'scheduled', progress: server.server.progress, done, failed };
      }),
    );
    board.render(views);
    if (views.every((v) => v.done)) {
      const failed = views.filter((v) => v.failed);
      if (failed.length > 0) throw new Error(`install failed on ${failed.map((v) => v.label).join(', ')}: see the log`);
      return;
    }
    if (Date.now() > deadline) throw new Error('the installs did not end in 240 s');
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main(): Promise<void> {
  const exitAtEnd = process.argv.includes('--exit');
  // Every file of the demo, and every child's temp files, under one folder: Ctrl-C removes it whole.
  const root = mkdtempSync(join(tmpdir(), 'metald-demo-'));
  process.env['TMPDIR'] = root;
  const logFile = join(root, 'metald.log');
  const log = createWriteStream(logFile);
  let rack: Rack | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (why: string) =>
    (stopping ??= (async () => {
      out.write(`\n== ${why}: stopping metald, the controller, the BMC emulators and the node emulators\n`);
      await rack?.stop().catch((e: unknown) => out.write(`   stop: ${(e as Error).message}\n`));
      const left = killLeftovers(root);
      if (left.length > 0) note(`killed ${left.length} process(es) that outlived their parent: ${left.map((l) => l.cmd.slice(0, 80)).join('; ')}`);
      log.end();
      rmSync(root, { recursive: true, force: true });
      note(`removed ${root}; nothing is left running`);
    })());
  process.once('SIGINT', () => void stop('Ctrl-C').then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop('SIGTERM').then(() => process.exit(0)));

  try {
    say('Starting an emulated rack of 8 servers on loopback');
    rack = await startRack(root, note, {}, (l) => log.write(`${l}\n`));
    note(`metald is ready at ${rack.url} (its log: ${logFile})`);
    const cfg = dirname(rack.configPath);
    const admin = { METALCTL_URL: rack.url, METALCTL_TOKEN_FILE: join(cfg, 'admin.token'), METALCTL_PROJECT: ADMIN_PROJECT };
    const member = { METALCTL_URL: rack.url, METALCTL_TOKEN_FILE: join(cfg, 'member.token'), METALCTL_PROJECT: PROJECT };
    await metalctl(admin, ['node', 'list']);

    say(`Powering the rack on (servers ${ADOPTED.join(' and ')} already run a tenant's OS); each change read back from its BMC`);
    const free = Array.from({ length: NODES }, (_, k) => k + 1).filter((i) => !(ADOPTED as readonly number[]).includes(i));
    note(`$ metalctl node power <id> on --wait    (for each of node-0${free.join(', node-0')}, at once)`);
    await Promise.all(
      free.map(async (i) => {
        await metalctl(admin, ['node', 'power', nodeId(i), 'on', '--wait'], true);
        note(`node-0${i}: power on, read back from its ${i <= NODES / 2 ? 'IPMI' : 'Redfish'} BMC`);
      }),
    );
    await metalctl(admin, ['node', 'list']);

    say('Liveness: an ICMP sweep of every instance address (the tenants on servers 1 and 5)');
    await metalctl(member, ['instance', 'ping-all']);

    say('Installing an OS on two servers at once: node-02 (IPMI, network boot) and node-06 (Redfish, network boot)');
    const installs: Install[] = [];
    for (const i of [2, 6]) {
      const r = await fetch(`${rack.url}/v1/${PROJECT}/instances`, {
        method: 'POST',
        headers: { 'X-Auth-Token': MEMBER_TOKEN, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: `web-${i}`, image_uuid: IMAGE2, extra: { node_id: nodeId(i) } }),
      });
      const body = (await r.json()) as { uuid?: string };
      if (r.status !== 201 || !body.uuid) throw new Error(`create on node-0${i}: ${r.status} ${JSON.stringify(body)}`);
      installs.push({ label: `web-${i} on node-0${i}`, id: body.uuid, requestId: r.headers.get('x-compute-request-id') ?? '' });
    }
    await watchInstalls(rack, installs);

    say('Status');
    await metalctl(admin, ['node', 'list']);
    await metalctl(member, ['instance', 'list']);
    const events = rack.ctl.of('event').length;
    note(`the reference controller received ${events} events from metald over its WebSocket link`);

    say('Ready: metald and the rack keep running');
    note(`API:          ${rack.url}   (OpenAPI: ${rack.url}/openapi.json, metrics: ${rack.url}/metrics)`);
    note(`status page:  ${rack.url}/status   (live; paste the admin token from ${admin.METALCTL_TOKEN_FILE})`);
    note(`boot server:  ${rack.bootUrl}`);
    note(`controller:   ws://127.0.0.1:${rack.ctl.port}/v1/agents`);
    note(`log:          ${logFile}`);
    note('try:');
    note(`  METALCTL_URL=${rack.url} METALCTL_TOKEN_FILE=${member.METALCTL_TOKEN_FILE} METALCTL_PROJECT=${PROJECT} node dist/agent/cli/metalctl.js instance list`);
    writeFileSync(join(root, 'ready'), rack.url);
    if (exitAtEnd) return await stop('--exit');
    note('Ctrl-C stops everything.');
    await new Promise(() => undefined);
  } catch (e) {
    out.write(`\ndemo failed: ${(e as Error).message}\n`);
    await stop('failure');
    process.exitCode = 1;
  }
}

void main();
