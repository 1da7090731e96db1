/**
 * pino JSON logs to stdout (journald). Redaction is the safety net: secrets are never passed to the logger on
 * purpose, and these paths censor them if one slips through. test/agent/secrets.test.ts proves it end to end.
 */
import { pino, type Logger, type DestinationStream, type Level } from 'pino';

/** Keys whose values are secrets wherever they appear (up to three levels deep). */
export const SECRET_KEYS = [
  'password',
  'password_hash',
  'token',
  'user_data',
  'authorization',
  'x-auth-token',
  'IPMI_PASSWORD',
  'secret',
] as const;

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of SECRET_KEYS) {
    const key = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : `["${k}"]`;
    const dot = key.startsWith('[') ? '' : '.';
    paths.push(key, `*${dot}${key}`, `*.*${dot}${key}`, `*.*.*${dot}${key}`);
  }
  paths.push('req.headers["x-auth-token"]', 'req.headers.authorization', 'env.IPMI_PASSWORD');
  return [...new Set(paths)];
}

export function createLogger(opts: { level?: Level; destination?: DestinationStream; name?: string } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'metald',
      level: opts.level ?? 'info',
      redact: { paths: redactPaths(), censor: '[REDACTED]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
