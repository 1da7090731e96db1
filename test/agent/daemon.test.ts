/**
 * The daemon process itself: an invalid config stops it with every error as `path: message`; SIGHUP re-reads secret
 * files (a rotated API token takes effect, the old one stops working); SIGTERM stops it cleanly.
 */
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyV8Flags } from '../../agent/main.js';
import { MAIN, requireBuild, startDaemon, waitFor, type Daemon } from '../helpers/daemon.js';
import { ADMIN_TOKEN, writeConfig } from '../helpers/harness.js';

let daemon: Daemon | null = null;
let dir: string | null = null;
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe('metald process', () => {
  it('refuses to start on an invalid config and lists every error as path: message', () => {
    requireBuild();
    const cfg = writeConfig();
    dir = cfg.dir;
    const bad = join(cfg.dir, 'bad.yaml');
    writeFileSync(
      bad,
      `state_dir: ${join(cfg.dir, 'state')}
api: {listen: "nowhere", tokens: [{token_file: ${join(cfg.dir, 'admin.token')}, project_id: "not valid!", user_id: u, roles: [admin]}]}
nodes:
  - {id: not-a-uuid, name: n1, bmc: {driver: fake, address: x}}
  - {id: 1b8c5f0e-0000-4000-8000-000000000001, name: n1, bmc: {driver: warp, address: y}, color: blue}
`,
    );
    const r = spawnSync(process.execPath, [MAIN, '--config', bad], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    const lines = r.stderr.split('\n').map((l) => l.trim());
    for (const path of ['api.listen:', 'api.tokens[0].project_id:', 'nodes[0].id:', 'nodes[0].bmc.driver:', 'nodes[1].name:', 'nodes[1].bmc.driver:', 'nodes[1]']) {
      expect(lines.some((l) => l.startsWith(path)), `an error for ${path} in:\n${r.stderr}`).toBe(true);
    }
    expect(r.stdout).not.toContain('api listening');
  });

  it('re-reads secret files on SIGHUP: a rotated token takes effect, the old one is refused', async () => {
    const cfg = writeConfig();
    dir = cfg.dir;
    daemon = await startDaemon(cfg.configPath);
    expect((await daemon.call('GET', '/v1/nodes', ADMIN_TOKEN)).status).toBe(200);
    const rotated = 'd'.repeat(40);
    writeFileSync(join(cfg.dir, 'admin.token'), `${rotated}\n`);
    expect((await daemon.call('GET', '/v1/nodes', ADMIN_TOKEN)).status).toBe(200); // not before SIGHUP
    daemon.child.kill('SIGHUP');
    await waitFor(() => daemon!.stdout().includes('SIGHUP: reloaded'), 10_000, 'the reload log line');
    expect((await daemon.call('GET', '/v1/nodes', rotated)).status).toBe(200);
    expect((await daemon.call('GET', '/v1/nodes', ADMIN_TOKEN)).status).toBe(401);
    expect(daemon.stdout()).not.toContain(rotated);
  });

  it('stops cleanly on SIGTERM', async () => {
    const cfg = writeConfig();
    dir = cfg.dir;
    daemon = await startDaemon(cfg.configPath);
    const code = await daemon.kill('SIGTERM');
    expect(code).toBe(0);
    expect(daemon.stdout()).toContain('"msg":"stopped"');
  });

  it('keeps V8\'s young generation at its initial 2 MiB when started as node dist/agent/main.js', async () => {
    const cfg = writeConfig();
    dir = cfg.dir;
    daemon = await startDaemon(cfg.configPath);
    // Start-up alone grows it to 32 MiB (two 16 MiB semi-spaces) with V8's default growth factor; some requests too.
    for (let i = 0; i < 20; i++) expect((await daemon.call('GET', '/v1/nodes', ADMIN_TOKEN)).status).toBe(200);
    const metrics = (await daemon.call('GET', '/metrics', null)).text;
    const m = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(metrics);
    expect(m, metrics.slice(0, 2000)).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  it('a restart with the same config file takes its YAML parse from state_dir (the first start saved it)', async () => {
    const cfg = writeConfig();
    dir = cfg.dir;
    daemon = await startDaemon(cfg.configPath);
    expect(daemon.stdout()).toContain('"parse":"yaml","msg":"configuration loaded"');
    expect(await daemon.kill('SIGTERM')).toBe(0);
    daemon = await startDaemon(cfg.configPath);
    expect(daemon.stdout()).toContain('"parse":"cached","msg":"configuration loaded"');
    expect((await daemon.call('GET', '/v1/nodes', ADMIN_TOKEN)).status).toBe(200);
  });

  it('applies both V8 settings when the operator gives neither (in a process of its own)', () => {
    requireBuild();
    const script = `const { applyV8Flags } = await import(${JSON.stringify(MAIN)}); console.log(JSON.stringify(applyV8Flags([], undefined)));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(r.stdout)).toEqual(['--semi-space-growth-factor=1', '--optimize-for-size']);
  });

  it('leaves each V8 setting to an operator who gives it on the command line or in NODE_OPTIONS', () => {
    expect(applyV8Flags(['--max-semi-space-size=8', '--no-optimize-for-size'], undefined)).toEqual([]);
    expect(applyV8Flags([], '--max-old-space-size=200 --max-semi-space-size=8 --optimize_for_size')).toEqual([]);
  });
});

describe('the built daemon', () => {
  it('is one bundle (scripts/bundle.mjs): no module of ours is loaded from dist/ at start, better-sqlite3 stays external', async () => {
    requireBuild();
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(MAIN, 'utf8');
    // An unbundled main.js imports its modules by relative path; the bundle holds them.
    expect(text).not.toMatch(/\bfrom\s*["']\.\.?\/[\w./-]*\.js["']/);
    expect(text).not.toMatch(/\bimport\(\s*["']\.\/(build-agent|config\/load)\.js["']\)/);
    expect(text).toMatch(/require\(["']better-sqlite3["']\)|from\s*["']better-sqlite3["']/);
    // Minified, names kept (errors and logs name their functions).
    expect(text).toContain('"runMetald"');
  });
});
