/**
 * Secret files: API tokens, BMC passwords, the upstream token. The configuration only names files (typically
 * systemd credentials under /run/credentials/metald.service/, see LoadCredential= in docs/config.md); their content
 * is read here, lazily, cached, and re-read on SIGHUP (`reload()`).
 *
 * Errors name the file and the reason, never the content. A file readable by every user is not refused but reported
 * in `warnings()`, for the caller to log.
 */
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from './load.js';
import type { ApiToken, Config } from './types.js';

/** Larger files are refused: a secret is a line, not a document. */
export const MAX_SECRET_BYTES = 64 * 1024;

/** Tokens shorter than this are accepted with a warning. */
export const MIN_TOKEN_LENGTH = 16;

export class SecretFileError extends Error {
  readonly file: string;
  constructor(file: string, reason: string) {
    super(`secret file ${file}: ${reason}`);
    this.name = 'SecretFileError';
    this.file = file;
  }
}

/** The operator-facing reason a secret file could not be read (never its content). */
export function reasonOf(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case undefined:
      return 'cannot be read';
    default:
      return `cannot be read (${code})`;
  }
}

export interface ReloadResult {
  /** Files whose content changed (their new value is now served). */
  changed: string[];
  /** Files that could not be re-read: the last good value is kept. */
  failed: { file: string; error: string }[];
}

export class SecretFiles {
  readonly #cache = new Map<string, string>();
  readonly #warnings = new Map<string, string>();

  /** The content of `path` without its trailing newline(s); read once, then cached until `reload()`. */
  read(path: string): string {
    const cached = this.#cache.get(path);
    if (cached !== undefined) return cached;
    const value = this.#load(path);
    this.#cache.set(path, value);
    return value;
  }

  /** Whether `path` has been read (and is cached). */
  has(path: string): boolean {
    return this.#cache.has(path);
  }

  /** Drops a file from the cache (e.g. its node left the configuration). */
  forget(path: string): void {
    this.#cache.delete(path);
    this.#warnings.delete(path);
  }

  /** Cached file names, in the order they were first read. */
  files(): string[] {
    return [...this.#cache.keys()];
  }

  /** Current warnings about the files read (world-readable, ...), one per file, naming the file. */
  warnings(): string[] {
    return [...this.#warnings.values()];
  }

  /** Re-reads every cached file (SIGHUP). A file that fails keeps its last good value and is reported. */
  reload(): ReloadResult {
    const changed: string[] = [];
    const failed: { file: string; error: string }[] = [];
    for (const [file, old] of this.#cache) {
      try {
        const value = this.#load(file);
        if (value !== old) {
          this.#cache.set(file, value);
          changed.push(file);
        }
      } catch (e) {
        failed.push({ file, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return { changed, failed };
  }

  #load(path: string): string {
    let buf: Buffer;
    try {
      const st = statSync(path);
      if (st.isDirectory()) throw new SecretFileError(path, 'is a directory');
      if (st.size > MAX_SECRET_BYTES) throw new SecretFileError(path, `is larger than ${MAX_SECRET_BYTES} bytes`);
      if ((st.mode & 0o004) !== 0) {
        this.#warnings.set(
          path,
          `${path}: secret file is readable by every user (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); ` +
            `chmod 600 it or use a systemd credential`,
        );
      } else {
        this.#warnings.delete(path);
      }
      buf = readFileSync(path);
    } catch (e) {
      if (e instanceof SecretFileError) throw e;
      throw new SecretFileError(path, reasonOf(e));
    }
    return buf.toString('utf8').replace(/[\r\n]+$/, '');
  }
}

function hasSpaceOrControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || /\s/.test(s.charAt(i))) return true;
  }
  return false;
}

/**
 * Reads every API token file and maps token value -> its entry. Every problem (missing, unreadable, empty, malformed,
 * the same token twice) is collected and thrown as one ConfigError, `api.tokens[i].token_file: ...`; token values
 * never appear in messages. Short tokens are accepted and reported through `secrets.warnings()`.
 */
export function resolveTokens(config: Config, secrets: SecretFiles): Map<string, ApiToken> {
  const out = new Map<string, ApiToken>();
  const firstIndex = new Map<string, number>();
  const errors: string[] = [];
  config.api.tokens.forEach((t, i) => {
    const path = `api.tokens[${i}].token_file`;
    let value: string;
    try {
      value = secrets.read(t.token_file);
    } catch (e) {
      errors.push(`${path}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (value.length === 0) {
      errors.push(`${path}: secret file ${t.token_file} is empty`);
      return;
    }
    if (hasSpaceOrControl(value)) {
      errors.push(`${path}: secret file ${t.token_file} holds whitespace or control characters (one token per file)`);
      return;
    }
    const prev = firstIndex.get(value);
    if (prev !== undefined) {
      errors.push(`${path}: the same token as api.tokens[${prev}] (every token must be distinct)`);
      return;
    }
    firstIndex.set(value, i);
    out.set(value, t);
  });
  if (errors.length > 0) throw new ConfigError(errors);
  return out;
}

/** Token files whose token is shorter than MIN_TOKEN_LENGTH (call after resolveTokens; never names the value). */
export function weakTokenWarnings(config: Config, secrets: SecretFiles): string[] {
  const out: string[] = [];
  config.api.tokens.forEach((t, i) => {
    if (!secrets.has(t.token_file)) return;
    const v = secrets.read(t.token_file);
    if (v.length > 0 && v.length < MIN_TOKEN_LENGTH) {
      out.push(`api.tokens[${i}].token_file: the token is shorter than ${MIN_TOKEN_LENGTH} characters: easy to guess`);
    }
  });
  return out;
}
