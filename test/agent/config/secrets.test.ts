import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../agent/config/load.js';
import { SecretFileError, SecretFiles, reasonOf, resolveTokens, weakTokenWarnings } from '../../../agent/config/secrets.js';
import type { Config } from '../../../agent/config/types.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'metald-secrets-'));
});

function secret(name: string, content: string, mode = 0o600): string {
  const f = join(dir, name);
  writeFileSync(f, content, { mode });
  chmodSync(f, mode);
  return f;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('SecretFiles', () => {
  it('reads a file without its trailing newline, and caches it', () => {
    const f = secret('pw', 's3cr3t-value\n');
    const s = new SecretFiles();
    expect(s.read(f)).toBe('s3cr3t-value');
    writeFileSync(f, 'changed\n');
    expect(s.read(f)).toBe('s3cr3t-value');
    expect(s.has(f)).toBe(true);
    expect(s.files()).toEqual([f]);
  });

  it('strips CRLF and several trailing newlines but keeps other whitespace', () => {
    const s = new SecretFiles();
    expect(s.read(secret('a', 'abc\r\n\n'))).toBe('abc');
    expect(s.read(secret('b', ' pass word '))).toBe(' pass word ');
  });

  it('errors name the file and never the content', () => {
    const s = new SecretFiles();
    const missing = join(dir, 'missing');
    expect(() => s.read(missing)).toThrow(SecretFileError);
    expect(() => s.read(missing)).toThrow(`secret file ${missing}: no such file`);
    expect(() => s.read(dir)).toThrow(/is a directory/);
    const big = secret('big', 'x'.repeat(70_000));
    expect(() => s.read(big)).toThrow(/larger than/);
    try {
      s.read(big);
    } catch (e) {
      expect((e as Error).message).not.toContain('xxxx');
    }
  });

  it('an unreadable file is reported as such, without its content', () => {
    // root reads a 0000 file anyway (CI is root), so the errno mapping is checked directly as well.
    expect(reasonOf(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('permission denied');
    expect(reasonOf(Object.assign(new Error('x'), { code: 'EPERM' }))).toBe('permission denied');
    const f = secret('locked', 'top-secret', 0o000);
    if (!isRoot) expect(() => new SecretFiles().read(f)).toThrow(/permission denied/);
    else expect(new SecretFiles().read(f)).toBe('top-secret');
  });

  it('warns (does not refuse) about world-readable files; the warning names the file only', () => {
    const f = secret('open', 'world-visible-secret\n', 0o644);
    const g = secret('closed', 'private\n', 0o600);
    const s = new SecretFiles();
    expect(s.read(f)).toBe('world-visible-secret');
    s.read(g);
    const w = s.warnings();
    expect(w).toHaveLength(1);
    expect(w[0]).toContain(f);
    expect(w[0]).toContain('0644');
    expect(w.join()).not.toContain('world-visible-secret');
    chmodSync(f, 0o600);
    s.reload();
    expect(s.warnings()).toEqual([]);
  });

  it('reload re-reads every cached file: changed files, failed files keep their last good value', () => {
    const a = secret('a', 'one\n');
    const b = secret('b', 'two\n');
    const c = secret('c', 'three\n');
    const s = new SecretFiles();
    s.read(a);
    s.read(b);
    s.read(c);
    writeFileSync(a, 'one-new\n');
    rmSync(c);
    const r = s.reload();
    expect(r.changed).toEqual([a]);
    expect(r.failed).toEqual([{ file: c, error: `secret file ${c}: no such file` }]);
    expect(JSON.stringify(r)).not.toContain('three');
    expect(s.read(a)).toBe('one-new');
    expect(s.read(b)).toBe('two');
    expect(s.read(c)).toBe('three');
    expect(s.reload()).toEqual({ changed: [], failed: [{ file: c, error: `secret file ${c}: no such file` }] });
  });

  it('forget drops a file from the cache', () => {
    const a = secret('a', 'one');
    const s = new SecretFiles();
    s.read(a);
    s.forget(a);
    expect(s.has(a)).toBe(false);
    expect(s.reload()).toEqual({ changed: [], failed: [] });
  });
});

describe('resolveTokens', () => {
  const TOKEN_A = '0277fe24d4d0be8928555d3ebc2e7cc8';
  const TOKEN_B = '5de0a1a6f7b36f43915a75066e3010d8';

  function configWith(files: string[]): Config {
    const tokens = files.map((f, i) => `{token_file: "${f}", project_id: p${i}, user_id: u${i}, roles: [member]}`);
    return parseConfig(`api: {tokens: [${tokens.join(', ')}]}\n`);
  }

  it('maps token values to their entries', () => {
    const a = secret('a.token', `${TOKEN_A}\n`);
    const b = secret('b.token', TOKEN_B);
    const m = resolveTokens(configWith([a, b]), new SecretFiles());
    expect([...m.keys()]).toEqual([TOKEN_A, TOKEN_B]);
    expect(m.get(TOKEN_A)).toEqual({ token_file: a, project_id: 'p0', user_id: 'u0', roles: ['member'] });
  });

  it('lists every missing, empty, malformed and duplicate token file, never a token value', () => {
    const ok = secret('ok.token', TOKEN_A);
    const missing = join(dir, 'missing.token');
    const empty = secret('empty.token', '\n');
    const dup = secret('dup.token', `${TOKEN_A}\n`);
    const two = secret('two.token', `${TOKEN_B}\n${TOKEN_A}\n`);
    try {
      resolveTokens(configWith([ok, missing, empty, dup, two]), new SecretFiles());
      expect.fail('should throw');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const err = e as ConfigError;
      expect(err.errors).toEqual([
        `api.tokens[1].token_file: secret file ${missing}: no such file`,
        `api.tokens[2].token_file: secret file ${empty} is empty`,
        'api.tokens[3].token_file: the same token as api.tokens[0] (every token must be distinct)',
        `api.tokens[4].token_file: secret file ${two} holds whitespace or control characters (one token per file)`,
      ]);
      expect(err.message).not.toContain(TOKEN_A);
      expect(err.message).not.toContain(TOKEN_B);
    }
  });

  it('short tokens are accepted with a warning', () => {
    const a = secret('short.token', 'abc');
    const config = configWith([a]);
    const s = new SecretFiles();
    expect(resolveTokens(config, s).size).toBe(1);
    const w = weakTokenWarnings(config, s);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^api\.tokens\[0\]\.token_file: /);
    expect(w[0]).not.toContain('abc');
  });

  it('the demo token files resolve', async () => {
    const { loadConfigFile } = await import('../../../agent/config/load.js');
    const config = loadConfigFile(join(import.meta.dirname, '../../../examples/demo.yaml'));
    const s = new SecretFiles();
    const m = resolveTokens(config, s);
    expect(m.size).toBe(2);
    for (const k of m.keys()) expect(k).toMatch(/^[0-9a-f]{32}$/);
    expect([...m.values()].map((t) => t.roles[0])).toEqual(['admin', 'member']);
  });

  it('nested directories work', () => {
    mkdirSync(join(dir, 'run', 'credentials'), { recursive: true });
    const f = secret('run/credentials/api', TOKEN_B);
    expect(resolveTokens(configWith([f]), new SecretFiles()).has(TOKEN_B)).toBe(true);
  });
});
