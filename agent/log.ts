/**
 * pino JSON logs to stdout (journald). Secrets are never passed to the logger on purpose; redaction is the safety net
 * in two layers, proven by test/agent/log.test.ts and test/agent/secrets.e2e.test.ts:
 *
 * 1. pino's `redact` with explicit paths (no wildcards: fast-redact's compiled fast path) for the shapes that can
 *    carry a secret: a secret key at the top level or under a known holder (`bmc`, `env`, `req.headers`, `err`, ...).
 * 2. A `streamWrite` hook on the finished line for everything else, at any depth (serializers, child bindings and the
 *    error serializer included: the finished line is plain JSON, no cycles, causes already serialized). An ordinary
 *    line pays one regular-expression test; a line whose secret keys the paths already censored passes the same test
 *    (a key followed by the censor does not match); only a line with a secret key outside the known paths is parsed,
 *    censored and re-serialized.
 */
import { pino, type Logger, type DestinationStream, type Level } from 'pino';

/** Keys whose values are secrets wherever they appear, compared case-insensitively. */
export const SECRET_KEYS = [
  'password',
  'password_hash',
  'token',
  'user_data',
  'authorization',
  'x-auth-token',
  'secret',
  // The environment variables ipmitool reads the password from (`-E`).
  'IPMI_PASSWORD',
  'IPMITOOL_PASSWORD',
] as const;

/** The environment names whose `NAME=value` strings (an env written as a list) are censored too. */
const SECRET_ENV_NAMES = ['IPMI_PASSWORD', 'IPMITOOL_PASSWORD'] as const;

const CENSOR = '[REDACTED]';
const SECRET_KEY_SET = new Set<string>(SECRET_KEYS.map((k) => k.toLowerCase()));
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
/**
 * A line needs the walk when it has a secret key whose value is not already the censor (the explicit paths did not
 * cover it), or a secret env name right after a string's opening quote.
 */
const NEEDS_WALK = new RegExp(
  `"(?:${SECRET_KEYS.map(escapeRe).join('|')})"\\s*:(?!\\s*"${escapeRe(CENSOR)}")|"(?:${SECRET_ENV_NAMES.join('|')})=`,
  'i',
);

/**
 * The objects known to carry secret keys (a key's holder in a log call): their secret keys are censored by path.
 * Not `req` nor `err`: a path under a top-level key makes pino redact and restore that key on every line that has it
 * (measured: twice the cost of an error line), and errors are rare; the hook covers them.
 */
const SECRET_HOLDERS = ['bmc', 'env', 'config', 'headers', 'options', 'settings'] as const;
const pathKey = (k: string) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `.${k}` : `["${k}"]`);
/** Explicit `redact` paths: each secret key at the top level and under each known holder; no wildcard. */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS.map((k) => pathKey(k).replace(/^\./, '')),
  ...SECRET_HOLDERS.flatMap((h) => SECRET_KEYS.map((k) => `${h}${pathKey(k)}`)),
];
const ENV_ENTRY = new RegExp(`^(${SECRET_ENV_NAMES.join('|')})=`, 'i');

/** Returns a copy of a parsed JSON value with every secret key's value and every secret `NAME=value` censored. */
function censor(value: unknown): unknown {
  if (typeof value === 'string') {
    const m = ENV_ENTRY.exec(value);
    return m ? `${m[1]}=${CENSOR}` : value;
  }
  if (Array.isArray(value)) return value.map(censor);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY_SET.has(k.toLowerCase()) ? CENSOR : censor(v);
    return out;
  }
  return value;
}

/** The streamWrite hook: censors one finished log line (a JSON object and a newline). */
export function redactLine(line: string): string {
  if (!NEEDS_WALK.test(line)) return line;
  const end = line.endsWith('\n') ? '\n' : '';
  try {
    return JSON.stringify(censor(JSON.parse(line))) + end;
  } catch {
    // Not JSON (never expected from pino): drop the line rather than risk printing a secret.
    return `{"level":50,"msg":"log line dropped: it held a secret key and could not be parsed to censor it"}${end}`;
  }
}

/**
 * The most bytes of log lines held in memory waiting for stdout (journald) to take them: past it, lines are dropped
 * rather than memory growing while stdout is blocked.
 */
export const LOG_BUFFER_MAX = 8 * 1024 * 1024;

/**
 * Lines are held up to this many bytes before a write is due by size alone; below it, the lines of one event-loop
 * turn go out together in one write at the turn's end (setImmediate). Below sonic-boom's maxWrite (16 KiB).
 */
export const LOG_COALESCE_BYTES = 8192;

/** sonic-boom's state read here (its own fields: test/agent/log.test.ts fails if they change meaning). */
interface SonicState {
  _writing: boolean;
  _len: number;
  _ending: boolean;
  destroyed: boolean;
}

/**
 * The asynchronous destination of the logs (stdout by default), its buffer bounded by `maxLength` bytes. The lines
 * written in one event-loop turn leave in one `write` at its end, not one each (measured: ~0.2 ms less CPU per power
 * operation, docs/bench.md); lines written while a write is in flight leave when it ends. `flush()`/`flushSync()`
 * (pino's, and its exit handler) write whatever is held at once.
 */
export function boundedDestination(dest: number | string = 1, maxLength = LOG_BUFFER_MAX): DestinationStream {
  const d = pino.destination({ dest, sync: false, maxLength, minLength: Math.min(LOG_COALESCE_BYTES, maxLength) });
  const state = d as unknown as SonicState;
  let queued = false;
  const flushHeld = () => {
    queued = false;
    if (!state._writing && state._len > 0 && !state._ending && !state.destroyed) d.flush();
  };
  const atTurnEnd = () => {
    if (queued) return;
    queued = true;
    setImmediate(flushHeld);
  };
  const write = d.write.bind(d);
  d.write = (line: string) => {
    const ok = write(line);
    atTurnEnd();
    return ok;
  };
  // A write ended: what came meanwhile (below the size threshold, so sonic-boom keeps it) leaves now.
  d.on('write', atTurnEnd);
  return d;
}

/**
 * pino's `,"time":"<ISO 8601>"` with the string kept for the millisecond it names: formatting a Date is most of what
 * an ISO timestamp costs (measured: +1.5 us a line, half of a plain pino line), and lines come many per millisecond
 * under load. `now` is the clock (tests).
 */
export function isoTimeCached(now: () => number = Date.now): () => string {
  let ms = Number.NaN;
  let text = '';
  return () => {
    const t = now();
    if (t !== ms) {
      ms = t;
      text = `,"time":"${new Date(t).toISOString()}"`;
    }
    return text;
  };
}

export function createLogger(opts: { level?: Level; destination?: DestinationStream; name?: string } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'metald',
      level: opts.level ?? 'info',
      redact: { paths: [...REDACT_PATHS], censor: CENSOR },
      hooks: { streamWrite: redactLine },
      base: { pid: process.pid },
      timestamp: isoTimeCached(),
    },
    opts.destination ?? boundedDestination(),
  );
}
