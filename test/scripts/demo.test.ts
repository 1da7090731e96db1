/**
 * The demo (`npm run demo` is `npm run build` and then this program: dist/scripts/demo.js) run as a user runs it, its
 * output not a terminal: it must bring up the emulated rack, power it on, sweep liveness, install on two servers with
 * progress, print the status and the example command, and keep running; the example command it printed must work
 * and the status page it names must answer with the rack;
 * then Ctrl-C (SIGINT) must stop everything: no process, no file and no network namespace left behind.
 *
 * The demo runs with TMPDIR set to a folder of this test, so every file it and its children make is under it, and
 * every child inherits that TMPDIR: scripts/demo/leftovers.ts finds any process left by that mark.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findLeftovers, killLeftovers } from '../../scripts/demo/leftovers.js';
import { missingPeers } from '../helpers/peers.js';

const DEMO = resolve(import.meta.dirname, '../../dist/scripts/demo.js');
const why = missingPeers('the demo rack', ['ipmi_sim', 'ipmitool', 'busybox', 'fping', 'ip'], 'openipmi ipmitool busybox-static fping iproute2');
const netns = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

let tmp = '';
let child: ChildProcess | undefined;
let output = '';

afterAll(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  if (tmp) {
    killLeftovers(tmp);
    rmSync(tmp, { recursive: true, force: true });
  }
});

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (child?.exitCode !== null && child?.exitCode !== undefined) throw new Error(`the demo exited (${child.exitCode}) before ${what}:\n${output}`);
    if (Date.now() > end) throw new Error(`no ${what} in ${ms} ms:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('npm run demo', () => {
  it('runs the rack through its day, leaves it running, and Ctrl-C leaves nothing behind', async () => {
    if (why) expect.fail(why);
    if (!existsSync(DEMO)) expect.fail(`${DEMO} is missing: run \`npm run build\` first (npm test does)`);
    tmp = mkdtempSync(join(tmpdir(), 'metald-demo-test-'));
    const namespacesBefore = netns();
    child = spawn(process.execPath, [DEMO], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    await until(() => output.includes('Ctrl-C stops everything.'), 240_000, 'ready line');

    // The day, as printed: 8 nodes powered on (each read back), the two tenants alive, two installs to 100%.
    const nodeLists = output.split('$ metalctl node list\n').slice(1);
    expect(nodeLists.length).toBeGreaterThanOrEqual(3);
    const rows = (block: string) => block.split('\n').filter((l) => /^1b8c5f0e-/.test(l));
    expect(rows(nodeLists[1]!)).toHaveLength(8);
    expect(rows(nodeLists[1]!).every((l) => l.includes('power on')), nodeLists[1]).toBe(true);
    expect(output.match(/^ {3}node-0\d: power on, read back from its (IPMI|Redfish) BMC$/gm)).toHaveLength(6);
    const pings = output.split('$ metalctl instance ping-all\n')[1]!.split('\n==')[0]!;
    expect(pings.split('\n').filter((l) => /^cbce6087-.* yes$/.test(l.trim()))).toHaveLength(2);
    for (const web of ['web-2 on node-02', 'web-6 on node-06']) {
      const lines = output.split('\n').filter((l) => l.startsWith(web));
      expect(lines.length, web).toBeGreaterThanOrEqual(3);
      expect(lines.at(-1), web).toMatch(/\[#{30}\] 100% {2}done$/);
      expect(lines.some((l) => /\] +[1-9]\d?% {2}deploy$/.test(l)), `${web}: progress shown while deploying`).toBe(true);
    }
    const instances = output.split('$ metalctl instance list\n').at(-1)!.split('\n');
    expect(instances.filter((l) => / web-[26] +running +power on +127\.0\.2\.\d+ /.test(l))).toHaveLength(2);
    const events = Number(/the reference controller received (\d+) events/.exec(output)?.[1]);
    expect(events, 'events the controller received').toBeGreaterThan(20);

    // The example it printed works as printed.
    const example = /^ {5}METALCTL_URL=(\S+) METALCTL_TOKEN_FILE=(\S+) METALCTL_PROJECT=(\S+) node (\S+) (.+)$/m.exec(output);
    expect(example, 'an example metalctl command').not.toBeNull();
    const [, url, tokenFile, project, cli, args] = example!;
    const listed = execFileSync(process.execPath, [resolve(import.meta.dirname, '../..', cli!), ...args!.split(' ')], {
      encoding: 'utf8',
      env: { ...process.env, METALCTL_URL: url, METALCTL_TOKEN_FILE: tokenFile, METALCTL_PROJECT: project },
    });
    expect(listed).toMatch(/web-2 +running/);
    expect(listed).toMatch(/web-6 +running/);

    // The status page it points at answers, and its snapshot shows the rack with the token it names.
    const status = /^ {3}status page: +(\S+) +\(live; paste the admin token from (\S+)\)$/m.exec(output);
    expect(status, 'the status page line').not.toBeNull();
    expect((await fetch(status![1]!)).status).toBe(200);
    const token = readFileSync(status![2]!, 'utf8').trim();
    const snapshot = (await (await fetch(`${url}/v1/status/snapshot`, { headers: { 'X-Auth-Token': token } })).json()) as { nodes: unknown[]; instances: unknown[] };
    expect([snapshot.nodes.length, snapshot.instances.length]).toEqual([8, 4]);

    const root = dirname(/^ {3}log: +(\S+)$/m.exec(output)![1]!);
    expect(root.startsWith(tmp), `${root} under the demo's TMPDIR`).toBe(true);
    expect(findLeftovers(tmp).length, 'the rack is running').toBeGreaterThan(5);

    // Ctrl-C.
    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000))]);
    expect(code, output.slice(-2000)).toBe(0);
    expect(output).toContain('nothing is left running');
    expect(findLeftovers(tmp).map((l) => l.cmd), 'processes left').toEqual([]);
    expect(readdirSync(tmp), 'files left').toEqual([]);
    expect(netns(), 'network namespaces').toBe(namespacesBefore);
    await expect(fetch(url!).then((r) => r.status)).rejects.toThrow();
  }, 360_000);
});
