/**
 * A notification socket of the test's own, as a service manager's would be: an AF_UNIX datagram socket bound to a
 * path (through `unix-dgram`, the package the daemon sends with), or to an abstract `@name` (through python3, whose
 * socket module binds the exact name; `unix-dgram` cannot). Every datagram is kept with its arrival time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';

export interface Datagram {
  /** performance.now() at arrival. */
  at: number;
  /** The message's `KEY=value` lines. */
  lines: string[];
}

export interface NotifySocket {
  /** What NOTIFY_SOCKET must say. */
  address: string;
  messages: Datagram[];
  /** Resolves with the first message (from index `from`) that has `line`, or fails after `timeoutMs`. */
  next(line: string, timeoutMs: number, from?: number): Promise<Datagram>;
  /** Called at each arrival (after it is kept). */
  onMessage(f: (d: Datagram) => void): void;
  close(): void;
}

interface DgramSocket {
  on(event: 'message', f: (buf: Buffer) => void): unknown;
  on(event: 'error', f: (e: Error) => void): unknown;
  bind(path: string): void;
  close(): void;
}

function socketOf(address: string, close: () => void, messages: Datagram[], listeners: ((d: Datagram) => void)[]): NotifySocket {
  return {
    address,
    messages,
    onMessage: (f) => listeners.push(f),
    next(line, timeoutMs, from = 0) {
      return new Promise<Datagram>((resolve, reject) => {
        const found = messages.slice(from).find((m) => m.lines.includes(line));
        if (found) return resolve(found);
        const timer = setTimeout(() => reject(new Error(`no ${line} on ${address} within ${timeoutMs} ms; got ${JSON.stringify(messages.map((m) => m.lines))}`)), timeoutMs);
        listeners.push((d) => {
          if (d.lines.includes(line)) {
            clearTimeout(timer);
            resolve(d);
          }
        });
      });
    },
    close,
  };
}

function keeper(messages: Datagram[], listeners: ((d: Datagram) => void)[]): (text: string) => void {
  return (text) => {
    const d = { at: performance.now(), lines: text.split('\n') };
    messages.push(d);
    for (const f of [...listeners]) f(d);
  };
}

/** A datagram socket bound at `path` (a file the test owns). */
export function bindNotifyPath(path: string): NotifySocket {
  const unix = createRequire(import.meta.url)('unix-dgram') as { createSocket(t: 'unix_dgram'): DgramSocket };
  const s = unix.createSocket('unix_dgram');
  const messages: Datagram[] = [];
  const listeners: ((d: Datagram) => void)[] = [];
  const keep = keeper(messages, listeners);
  s.on('message', (buf) => keep(buf.toString('utf8')));
  s.on('error', (e) => {
    throw e;
  });
  s.bind(path);
  return socketOf(path, () => s.close(), messages, listeners);
}

const PY_RECEIVER = `
import socket, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    print(json.dumps({"text": s.recv(65536).decode("utf8")}), flush=True)
`;

/** A datagram socket bound to the abstract name `@name`, held by a python3 child. */
export async function bindNotifyAbstract(name: string): Promise<NotifySocket> {
  const child: ChildProcess = spawn('python3', ['-c', PY_RECEIVER, name], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: Datagram[] = [];
  const listeners: ((d: Datagram) => void)[] = [];
  const keep = keeper(messages, listeners);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`python3 receiver exited with ${code}: ${err}`)));
    child.on('error', reject);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = JSON.parse(out.slice(0, nl)) as { bound?: boolean; text?: string };
        out = out.slice(nl + 1);
        if (line.bound) resolve();
        if (line.text !== undefined) keep(line.text);
      }
    });
  });
  return socketOf(`@${name}`, () => child.kill('SIGKILL'), messages, listeners);
}
