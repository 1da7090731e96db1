/**
 * A server-sent events reader for tests: a GET with headers (the token stays a header, as the status page does),
 * the body read as it arrives and cut into frames (blank-line separated; `id`, `event`, `data` fields, comments).
 */
import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';

export interface SseFrame {
  /** The block as sent, without its blank line. */
  raw: string;
  id: string | null;
  event: string;
  data: string;
  /** A comment-only block (`: heartbeat`). */
  comment: boolean;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** Error bodies (non-200) as text. */
  body: string;
  frames: SseFrame[];
  /** Every byte received so far. */
  text(): string;
  /** The first frame (from the start, or from `after` frames on) that matches; rejects after timeoutMs. */
  next(match: (f: SseFrame) => boolean, timeoutMs?: number, after?: number): Promise<SseFrame>;
  /** Resolves when the server ended the stream. */
  ended: Promise<void>;
  close(): void;
}

function parse(block: string): SseFrame {
  let id: string | null = null;
  let event = 'message';
  const data: string[] = [];
  let fields = 0;
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    fields += 1;
    const c = line.indexOf(':');
    const name = c < 0 ? line : line.slice(0, c);
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
    if (name === 'id') id = value;
    else if (name === 'event') event = value;
    else if (name === 'data') data.push(value);
  }
  return { raw: block, id, event, data: data.join('\n'), comment: fields === 0 };
}

/**
 * Opens `url` with node:http (one connection of its own, closed with the stream: fetch()'s pool opens a spare
 * connection after an abort, which an HTTP server then waits for when it closes).
 */
export async function openSse(url: string, headers: Record<string, string>): Promise<SseStream> {
  const frames: SseFrame[] = [];
  let all = '';
  let buf = '';
  const waiters = new Set<() => void>();
  let done = false;
  let markEnded: () => void = () => undefined;
  const ended = new Promise<void>((r) => (markEnded = r));
  const finish = () => {
    if (done) return;
    done = true;
    markEnded();
    for (const w of [...waiters]) w();
  };
  const req = request(url, { headers, agent: false });
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  });
  const status = res.statusCode ?? 0;
  const resHeaders = new Headers();
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) resHeaders.set(k, Array.isArray(v) ? v.join(', ') : v);
  res.setEncoding('utf8');
  if (status !== 200) {
    let body = '';
    for await (const chunk of res) body += chunk as string;
    return {
      status, headers: resHeaders, body, frames, text: () => body, ended: Promise.resolve(),
      next: () => Promise.reject(new Error(`no stream: ${status} ${body}`)), close: () => undefined,
    };
  }
  res.on('data', (chunk: string) => {
    all += chunk;
    buf += chunk;
    let at: number;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      frames.push(parse(buf.slice(0, at)));
      buf = buf.slice(at + 2);
    }
    for (const w of [...waiters]) w();
  });
  res.on('end', finish);
  res.on('close', finish);
  res.on('error', finish);
  return {
    status,
    headers: resHeaders,
    body: '',
    frames,
    text: () => all,
    ended,
    next(match, timeoutMs = 5000, after = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const f = frames.slice(after).find(match);
          if (f) {
            cleanup();
            resolve(f);
          } else if (done) {
            cleanup();
            reject(new Error(`stream ended without the frame; got:\n${all}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no matching frame in ${timeoutMs} ms; got:\n${all}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close: () => {
      req.destroy();
      finish();
    },
  };
}

/** The `data` of a journal frame, parsed. */
export function journalData(f: SseFrame): { seq: number; kind: string; instance_id: string | null; node_id: string | null; data: Record<string, unknown> } {
  return JSON.parse(f.data) as ReturnType<typeof journalData>;
}
