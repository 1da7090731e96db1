/**
 * The demo: runs metald on the embedded demo configuration (examples/demo.yaml: four fake nodes, one of them already
 * running a tenant's OS) and walks an operator's day through metalctl: nodes, create with progress, power, reboot,
 * reinstall, an injected BMC failure and its retry, actions, liveness, delete. Nothing leaves this host.
 *
 *   npm run demo
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../agent/cli/metalctl.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const examples = join(root, 'examples');
const MAIN = join(root, 'dist/agent/main.js');

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'metald-demo-'));
  // The demo config as shipped, with its own state_dir, a free port and absolute secret paths.
  const yaml = readFileSync(join(examples, 'demo.yaml'), 'utf8')
    .replace(/^state_dir: .*$/m, `state_dir: ${join(work, 'state')}`)
    .replace(/listen: 127\.0\.0\.1:6385/, 'listen: 127.0.0.1:0')
    .replace(/token_file: demo-secrets\//g, `token_file: ${join(examples, 'demo-secrets')}/`);
  const configPath = join(work, 'demo.yaml');
  writeFileSync(configPath, yaml);

  const daemon = spawn(process.execPath, [MAIN, '--config', configPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  let log = '';
  const url = await new Promise<string>((res, rej) => {
    daemon.stdout.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /"url":"(http:\/\/[^"]+)".*"msg":"api listening"/.exec(log);
      if (m?.[1]) res(m[1]);
    });
    daemon.on('exit', (code) => rej(new Error(`metald exited (${code}):\n${log}`)));
  });
  const cleanup = () => {
    daemon.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });

  const admin = { METALCTL_URL: url, METALCTL_TOKEN_FILE: join(examples, 'demo-secrets/admin.token'), METALCTL_PROJECT: '5d8b99310e6c49eaa5413aa659170deb' };
  const member = { METALCTL_URL: url, METALCTL_TOKEN_FILE: join(examples, 'demo-secrets/member.token'), METALCTL_PROJECT: 'demo-project' };
  let out = '';
  const ctl = async (env: Record<string, string>, args: string[], quiet = false): Promise<number> => {
    process.stdout.write(`\n$ metalctl ${args.join(' ')}\n`);
    out = '';
    const code = await run(args, {
      stdout: { write: (s: string) => ((out += s), quiet ? true : process.stdout.write(s)) },
      stderr: process.stderr,
      env: { ...process.env, ...env },
    });
    if (code !== 0) process.stdout.write(`(exit ${code})\n`);
    return code;
  };
  const say = (s: string) => process.stdout.write(`\n# ${s}\n`);

  try {
    process.stdout.write(`metald is running at ${url} (state in ${work})\n`);
    await new Promise((r) => setTimeout(r, 500));
    say('The rack: four fake nodes; demo-04 was adopted (it already ran a tenant OS)');
    await ctl(admin, ['node', 'list']);
    await ctl(member, ['instance', 'list']);

    say('A tenant creates a server on a small node and waits for the install');
    await ctl(member, ['instance', 'create', '--name', 'web-1', '--image', '0c245da1-303d-4312-a6f7-c53358871f31', '--type', 'b185e5d1-c233-4c52-aa01-d60e93b95363', '--json', '--wait'], true);
    const id = (JSON.parse(out) as { uuid: string }).uuid;
    process.stdout.write(`created ${id}\n`);
    await ctl(member, ['instance', 'status', id]);
    await ctl(member, ['instance', 'show', id]);
    await ctl(member, ['instance', 'ping', id]);

    say('Power: off, on, reboot (seed 004 words, verified by reading the BMC back)');
    await ctl(member, ['instance', 'power', id, 'off', '--wait']);
    await ctl(member, ['instance', 'power', id, 'on', '--wait']);
    await ctl(member, ['instance', 'power', id, 'reboot', '--wait']);

    say('The BMC fails the installer once: the reinstall fails cleanly (node powered off), then retry');
    await ctl(admin, ['node', 'list', '--json'], true);
    const node = (JSON.parse(out) as { nodes: { uuid: string; instance_uuid: string | null }[] }).nodes.find((n) => n.instance_uuid === id)!;
    await fetch(`${url}/v1/nodes/${node.uuid}/fake-faults`, {
      method: 'PUT',
      headers: { 'X-Auth-Token': readFileSync(admin.METALCTL_TOKEN_FILE, 'utf8').trim(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ fail_install: 1 }),
    });
    await ctl(member, ['instance', 'reinstall', id, '--wait']);
    await ctl(member, ['instance', 'status', id]);
    await ctl(member, ['instance', 'retry', id, '--wait']);
    await ctl(member, ['instance', 'actions', id]);

    say('Delete: powered off, wiped, node released');
    await ctl(member, ['instance', 'delete', id, '--wait']);
    await ctl(admin, ['node', 'list']);
    say('Done. The same calls work against a real daemon: see README.md and docs/.');
  } finally {
    cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
