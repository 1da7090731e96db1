/**
 * metalctl's shared context: the process I/O it is given, exit codes, the usage error, and `Ctx`, one command's
 * view of its global options (project, token, client). The token is read from a file or the environment, never argv.
 */
import { readFile } from 'node:fs/promises';
import { MetalClient, type ApiResponse, type FetchLike } from './client.js';
import { escapeControl } from './format.js';

export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  env: Record<string, string | undefined>;
  fetch?: FetchLike | undefined;
  /** Replaces the wait loop's sleep (tests). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** What `metalctl ping -f -` reads. */
  stdin?: AsyncIterable<string | Uint8Array> | undefined;
}

export const DEFAULT_URL = 'http://127.0.0.1:6385';
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_WAIT_TIMEOUT = 3;

/** A mistake in the invocation (exit 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface GlobalOpts {
  url?: string;
  tokenFile?: string;
  project?: string;
  json?: boolean;
  timeout: number;
}

export async function readInputFile(path: string, option: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'unreadable';
    throw new UsageError(`cannot read ${option} '${path}': ${code}`);
  }
}

// ---------------------------------------------------------------- context

export class Ctx {
  private clientCache: MetalClient | undefined;

  constructor(
    readonly io: CliIo,
    readonly opts: GlobalOpts,
  ) {}

  get json(): boolean {
    return this.opts.json === true;
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  err(text: string): void {
    this.io.stderr.write(text);
  }

  /** Prints the API's JSON exactly as received (nothing for an empty body). */
  raw(res: ApiResponse<unknown>): void {
    if (res.text === '') return;
    this.out(res.text.endsWith('\n') ? res.text : res.text + '\n');
  }

  /** --project, else METALCTL_PROJECT, else undefined. */
  optionalProject(): string | undefined {
    return nonEmpty(this.opts.project ?? this.io.env.METALCTL_PROJECT);
  }

  /** The project for a project-scoped command. @throws UsageError when neither --project nor METALCTL_PROJECT. */
  project(what: string): string {
    const p = this.optionalProject();
    if (p === undefined) {
      throw new UsageError(`'${what}' needs a project: give --project ID or set METALCTL_PROJECT`);
    }
    return p;
  }

  async client(): Promise<MetalClient> {
    if (this.clientCache) return this.clientCache;
    const url = this.opts.url ?? this.io.env.METALCTL_URL ?? DEFAULT_URL;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url '${url}' is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url '${url}': only http and https`);
    if (parsed.username !== '' || parsed.password !== '') throw new UsageError('--url must not carry credentials');
    const token = await this.token();
    this.clientCache = new MetalClient({ baseUrl: url, token, timeoutMs: this.opts.timeout * 1000, fetch: this.io.fetch });
    return this.clientCache;
  }

  private async token(): Promise<string> {
    const file = this.opts.tokenFile ?? nonEmpty(this.io.env.METALCTL_TOKEN_FILE);
    let token: string;
    let from: string;
    if (file !== undefined) {
      token = (await readInputFile(file, 'token file')).trim();
      from = `token file '${file}'`;
    } else if (nonEmpty(this.io.env.METALCTL_TOKEN) !== undefined) {
      token = (this.io.env.METALCTL_TOKEN as string).trim();
      from = 'METALCTL_TOKEN';
    } else {
      throw new UsageError('no API token: use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN');
    }
    if (token === '') throw new UsageError(`${from} is empty`);
    if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError(`${from} holds characters a token cannot have`);
    return token;
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

export function accepted(ctx: Ctx, what: string, res: ApiResponse<unknown>): void {
  if (ctx.json) {
    ctx.raw(res);
    return;
  }
  const body = res.body as { request_id?: unknown } | undefined;
  const rid = typeof body?.request_id === 'string' ? body.request_id : res.requestId;
  ctx.out(`${escapeControl(what)} accepted${rid ? ` (request ${escapeControl(rid)})` : ''}\n`);
}

export type Handler = (ctx: Ctx, args: string[], opts: Record<string, unknown>) => Promise<number>;

/** Turns a Handler into a commander action (positional args, then the command's options merged with the globals). */
export type ActionOf = (fn: Handler) => (...args: unknown[]) => Promise<void>;
