/**
 * pino JSON logs to stdout (journald). Redaction is the safety net: secrets are never passed to the logger on
 * purpose, and this censors them if one slips through, at any depth. test/agent/log.test.ts and
 * test/agent/secrets.e2e.test.ts prove it.
 *
 * Why a `streamWrite` hook and not pino's `redact` paths: paths cannot say "at any depth", and a walk over the log
 * call's arguments would miss what serializers, child bindings and the error serializer add. The hook sees the
 * finished line (plain JSON: no cycles, errors already serialized with their causes), so one walk covers all of it.
 * Cost: an ordinary line pays one regular-expression test; only a line that holds a secret key is parsed,
 * censored and re-serialized.
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
/** A line needs the walk when it has a secret key, or a secret env name right after a string's opening quote. */
const NEEDS_WALK = new RegExp(
  `"(?:${SECRET_KEYS.map(escapeRe).join('|')})"\\s*:|"(?:${SECRET_ENV_NAMES.join('|')})=`,
  'i',
);
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

export function createLogger(opts: { level?: Level; destination?: DestinationStream; name?: string } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'metald',
      level: opts.level ?? 'info',
      hooks: { streamWrite: redactLine },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
