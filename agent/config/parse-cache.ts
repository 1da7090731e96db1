/**
 * The YAML parse of the configuration file, cached in state_dir by the file's content: a restart with the same file
 * skips the YAML parse (~0.5 s and ~40 MiB of short-lived objects for 1,000 nodes), never the validation.
 *
 * The cache holds what `parseYaml` returned for exactly this text: its key is the SHA-256 of the text together with
 * this cache's format and the yaml package's version, so any change to the file (or to the parser) is a miss. Only
 * a valid configuration is saved (agent/main.ts saves once the agent is built), and only when its parse is plain
 * JSON (a value JSON cannot hold, such as `.inf`, is never cached). The file names no secret: a configuration with a
 * `password:`/`token:` key is invalid. Where the cache is: state_dir is only known once the file is parsed, so the
 * lookup reads the top-level `state_dir:` line itself; a line it cannot read, a missing, unreadable, corrupt or
 * stale cache, all mean a parse, as without a cache.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { RawConfigSchema } from './schema.js';
import { parseYaml } from './yaml.js';

export const PARSE_CACHE_FILE = 'config-parse-cache.json';
const FORMAT = 'metald-config-parse/1';
const YAML_VERSION = (createRequire(import.meta.url)('yaml/package.json') as { version: string }).version;

export interface CachedParse {
  /** `parseYaml(text)`: the cache's copy on a hit. Changed by the caller (defaults are applied in place). */
  raw: unknown;
  hit: boolean;
  /**
   * Writes the cache into `stateDir` (0600, replaced atomically). A no-op on a hit or for a parse JSON cannot hold.
   * @throws Error when the file cannot be written (the caller logs it; nothing else depends on it).
   */
  save(stateDir: string): void;
}

/** The `state_dir` the text names at the top level (plain or simply quoted), else the schema's default. */
export function stateDirNamed(text: string, baseDir: string): string | null {
  const m = /^state_dir:[ \t]*(?:"([^"\\\n]*)"|'([^'\n]*)'|([^\s#'"&*!|>{[][^\n#]*?))[ \t]*(?:#.*)?$/m.exec(text);
  const named = m ? (m[1] ?? m[2] ?? m[3]) : undefined;
  if (m && !named) return null;
  const dir = named ?? (RawConfigSchema.properties.state_dir.default as string);
  return isAbsolute(dir) ? dir : resolve(baseDir, dir);
}

const keyOf = (text: string): string => createHash('sha256').update(`${FORMAT}\n${YAML_VERSION}\n`).update(text).digest('hex');

function lookup(file: string, key: string): unknown {
  try {
    const entry = JSON.parse(readFileSync(file, 'utf8')) as { format?: unknown; key?: unknown; raw?: unknown };
    return entry.format === FORMAT && entry.key === key ? entry.raw : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `parseYaml(text)` through the cache in the state_dir the text names.
 * @throws ConfigError as parseYaml does, on a miss.
 */
export function parseWithCache(text: string, baseDir: string): CachedParse {
  const key = keyOf(text);
  const dir = stateDirNamed(text, baseDir);
  const cached = dir === null ? undefined : lookup(join(dir, PARSE_CACHE_FILE), key);
  if (cached !== undefined) return { raw: cached, hit: true, save: () => undefined };
  const raw = parseYaml(text);
  let json: string | null = JSON.stringify(raw);
  const plain = isDeepStrictEqual(JSON.parse(json), raw);
  return {
    raw,
    hit: false,
    save(stateDir) {
      if (!plain || json === null) return;
      const file = join(stateDir, PARSE_CACHE_FILE);
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, `{"format":${JSON.stringify(FORMAT)},"key":"${key}","raw":${json}}\n`, { mode: 0o600 });
      renameSync(tmp, file);
      // Saved once: the daemon keeps its loaded config for its lifetime, not this copy of it (0.6 MB at 1,000 nodes).
      json = null;
    },
  };
}
