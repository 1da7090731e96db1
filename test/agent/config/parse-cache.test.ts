/**
 * agent/config/parse-cache.ts: the YAML parse of the configuration file, cached in state_dir by the file's content.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigWithWarnings } from '../../../agent/config/load.js';
import { PARSE_CACHE_FILE, parseWithCache, stateDirNamed } from '../../../agent/config/parse-cache.js';
import { requireBuild } from '../../helpers/daemon.js';
import { writeConfig } from '../../helpers/harness.js';

let dir: string | null = null;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/** A harness config whose state_dir exists (the store creates it before the daemon saves the parse). */
function config(): { configPath: string; stateDir: string } {
  const cfg = writeConfig({ adopt: true });
  dir = cfg.dir;
  const stateDir = join(cfg.dir, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  return { configPath: cfg.configPath, stateDir };
}

describe('the parse cache', () => {
  it('a second load of the same file takes its parse from state_dir, with the same config; a change is a miss', () => {
    const { configPath, stateDir } = config();
    const first = loadConfigWithWarnings(configPath, { parseCache: true });
    expect(first.parse?.hit).toBe(false);
    first.parse!.save(first.config.state_dir);
    expect(statSync(join(stateDir, PARSE_CACHE_FILE)).mode & 0o777).toBe(0o600);

    const second = loadConfigWithWarnings(configPath, { parseCache: true });
    expect(second.parse?.hit).toBe(true);
    expect(second.config).toStrictEqual(first.config);
    expect(second.warnings).toStrictEqual(first.warnings);

    appendFileSync(configPath, '# one more line\n');
    expect(loadConfigWithWarnings(configPath, { parseCache: true }).parse?.hit).toBe(false);
  });

  it('a hit is validated like a parse: a cache entry the schema refuses is refused', () => {
    const { configPath, stateDir } = config();
    const text = readFileSync(configPath, 'utf8');
    parseWithCache(text, stateDir).save(stateDir);
    // The cache is the parse only: what the cache file says is checked like the file itself.
    const file = join(stateDir, PARSE_CACHE_FILE);
    const entry = JSON.parse(readFileSync(file, 'utf8')) as { raw: Record<string, unknown> };
    entry.raw['log_level'] = 'loud';
    writeFileSync(file, JSON.stringify(entry));
    expect(() => loadConfigWithWarnings(configPath, { parseCache: true })).toThrow(/log_level/);
  });

  it('a corrupt cache file, or one saved for another file, is a miss and not an error', () => {
    const { configPath, stateDir } = config();
    const file = join(stateDir, PARSE_CACHE_FILE);
    writeFileSync(file, '{"format": "metald-config-parse/1", "key": ');
    const loaded = loadConfigWithWarnings(configPath, { parseCache: true });
    expect(loaded.parse?.hit).toBe(false);
    expect(loaded.config.nodes).toHaveLength(4);
    parseWithCache('agent_id: other\n', stateDir).save(stateDir);
    expect(loadConfigWithWarnings(configPath, { parseCache: true }).parse?.hit).toBe(false);
  });

  it('a hit does not load the yaml package; a miss does (the built daemon, in a process of its own)', () => {
    requireBuild();
    const { configPath, stateDir } = config();
    const load = resolve(import.meta.dirname, '../../../dist/agent/config/load.js');
    const script = `
      import { createRequire } from 'node:module';
      const { loadConfigWithWarnings } = await import(${JSON.stringify(load)});
      const r = loadConfigWithWarnings(${JSON.stringify(configPath)}, { parseCache: true });
      r.parse.save(${JSON.stringify(stateDir)});
      const yaml = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/yaml/dist/'));
      console.log(JSON.stringify({ hit: r.parse.hit, yaml }));`;
    const run = () => JSON.parse(spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).stdout) as unknown;
    expect(run()).toEqual({ hit: false, yaml: true });
    expect(run()).toEqual({ hit: true, yaml: false });
  });

  it('saves nothing for a parse JSON cannot hold', () => {
    const { stateDir } = config();
    parseWithCache(`state_dir: ${stateDir}\nx: .inf\n`, stateDir).save(stateDir);
    expect(() => statSync(join(stateDir, PARSE_CACHE_FILE))).toThrow(/ENOENT/);
  });

  it('finds state_dir on its top-level line: plain, quoted, relative, with a comment; else the default', () => {
    expect(stateDirNamed('state_dir: /var/lib/x\n', '/etc/metald')).toBe('/var/lib/x');
    expect(stateDirNamed('a: 1\nstate_dir: "rel/dir"   # here\n', '/etc/metald')).toBe('/etc/metald/rel/dir');
    expect(stateDirNamed("state_dir: '/q'\n", '/etc')).toBe('/q');
    expect(stateDirNamed('agent_id: a\n', '/etc')).toBe('/var/lib/metald');
    expect(stateDirNamed('state_dir: *anchor\n', '/etc')).toBe('/var/lib/metald');
    expect(stateDirNamed('state_dir: ""\n', '/etc')).toBeNull();
  });
});
