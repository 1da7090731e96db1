/**
 * The logger's redaction is the safety net under "secrets are never logged": a secret that slips into a log call,
 * at the top or nested, is censored.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../agent/log.js';

describe('createLogger redaction', () => {
  it('censors secret keys at any of the first levels, and request headers', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) });
    const log = createLogger({ destination: sink, level: 'info' });
    log.info(
      {
        password: 'PW-top',
        bmc: { password: 'PW-nested', username: 'admin' },
        a: { b: { token: 'TOK-deep', 'x-auth-token': 'TOK-header' } },
        extra: { password_hash: '$6$HASH', user_data: 'USERDATA' },
        req: { headers: { 'x-auth-token': 'TOK-req', authorization: 'Bearer TOK-auth' } },
        env: { IPMI_PASSWORD: 'PW-env' },
      },
      'a log line',
    );
    log.flush();
    const out = lines.join('');
    for (const secret of ['PW-top', 'PW-nested', 'TOK-deep', 'TOK-header', '$6$HASH', 'USERDATA', 'TOK-req', 'TOK-auth', 'PW-env']) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain('[REDACTED]');
    expect(out).toContain('"username":"admin"');
  });
});
