/**
 * The logger's redaction is the safety net under "secrets are never logged": a secret that slips into a log call,
 * at any depth, under any secret key (the ipmitool environment names included), inside an error or a child logger's
 * bindings, is censored; everything else is kept.
 */
import { pbkdf2 } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { boundedDestination, createLogger, isoTimeCached, LOG_BUFFER_MAX, LOG_COALESCE_BYTES, redactLine, REDACT_PATHS, SECRET_KEYS } from '../../agent/log.js';

function capture() {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) });
  const log = createLogger({ destination: sink, level: 'info' });
  return { log, out: () => (log.flush(), lines.join('')), lines };
}

describe('createLogger redaction', () => {
  it('censors secret keys at the first levels, and request headers', () => {
    const { log, out } = capture();
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
    const text = out();
    for (const secret of ['PW-top', 'PW-nested', 'TOK-deep', 'TOK-header', '$6$HASH', 'USERDATA', 'TOK-req', 'TOK-auth', 'PW-env']) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('[REDACTED]');
    expect(text).toContain('"username":"admin"');
  });

  it('censors a secret five (and more) levels deep, inside arrays too', () => {
    const { log, out } = capture();
    log.info({ l1: { l2: { l3: { l4: { l5: { password: 'PW-five', keep: 'visible-five' } } } } } }, 'deep');
    log.info({ a: [{ b: [{ c: { d: { e: { f: { g: { token: 'TOK-seven' } } } } } }] }] }, 'deeper');
    const text = out();
    expect(text).not.toContain('PW-five');
    expect(text).not.toContain('TOK-seven');
    expect(text).toContain('visible-five');
    expect(JSON.parse(text.split('\n')[0]!).l1.l2.l3.l4.l5.password).toBe('[REDACTED]');
  });

  it('censors the environment names ipmitool reads, as keys and as NAME=value entries', () => {
    const { log, out } = capture();
    for (const name of ['IPMI_PASSWORD', 'IPMITOOL_PASSWORD']) {
      log.info({ x: { y: { z: { w: { env: { [name]: `PW-${name}`, PATH: '/usr/bin' } } } } } }, 'env object');
      log.info({ env: [`${name}=PW-LIST-${name}`, 'LANG=C'] }, 'env list');
      log.info({ [name.toLowerCase()]: `PW-lower-${name}` }, 'lower case');
    }
    const text = out();
    for (const name of ['IPMI_PASSWORD', 'IPMITOOL_PASSWORD']) {
      expect(text).not.toContain(`PW-${name}`);
      expect(text).not.toContain(`PW-LIST-${name}`);
      expect(text).not.toContain(`PW-lower-${name}`);
    }
    expect(text).toContain('/usr/bin');
    expect(text).toContain('LANG=C');
  });

  it('censors secrets inside a logged error (own fields, nested, and its cause) and keeps the message', () => {
    const { log, out } = capture();
    const cause = Object.assign(new Error('cause text'), { detail: { a: { b: { c: { d: { password: 'PW-cause' } } } } } });
    const err = Object.assign(new Error('ipmitool failed', { cause }), {
      env: { IPMITOOL_PASSWORD: 'PW-err-env' },
      request: { l2: { l3: { l4: { l5: { token: 'TOK-err-deep' } } } } },
    });
    log.error({ err }, 'driver error');
    log.error(err);
    const text = out();
    for (const s of ['PW-cause', 'PW-err-env', 'TOK-err-deep']) expect(text).not.toContain(s);
    expect(text).toContain('ipmitool failed');
    expect(text).toContain('"type":"Error"');
  });

  it('censors secrets in a child logger\'s bindings and survives a cyclic object', () => {
    const { log, out } = capture();
    log.child({ ctx: { a: { b: { c: { d: { password: 'PW-binding' } } } } } }).info('from a child');
    const cyclic: Record<string, unknown> = { a: { b: { c: { d: { secret: 'SEC-cycle' } } } } };
    cyclic.self = cyclic;
    log.info({ cyclic }, 'cycle');
    const text = out();
    expect(text).not.toContain('PW-binding');
    expect(text).not.toContain('SEC-cycle');
    expect(text).toContain('from a child');
    expect(text).toContain('cycle');
  });

  it('leaves an ordinary line untouched', () => {
    const { log, lines } = capture();
    log.info({ instance_id: 'i-1', node: { name: 'node-01', power: 'on' } }, 'plain');
    log.flush();
    const j = JSON.parse(lines[0]!);
    expect(j).toMatchObject({ instance_id: 'i-1', node: { name: 'node-01', power: 'on' }, msg: 'plain' });
  });
});

describe('explicit redaction paths (the fast layer) and the hook that covers the rest', () => {
  it('censors each secret key at the top level and under each known holder with the paths alone, no wildcard', () => {
    expect(REDACT_PATHS.some((p) => p.includes('*'))).toBe(false);
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) });
    // pino with the paths only (no streamWrite hook): what the paths censor without the walk.
    const log = pino({ redact: { paths: [...REDACT_PATHS], censor: '[REDACTED]' } }, sink);
    for (const key of SECRET_KEYS) {
      const value = `S-${key}`;
      log.info({ [key]: value, bmc: { [key]: value }, env: { [key]: value }, config: { [key]: value }, headers: { [key]: value } }, 'shape');
    }
    log.flush();
    const text = lines.join('');
    for (const key of SECRET_KEYS) expect(text).not.toContain(`S-${key}`);
    expect(lines).toHaveLength(SECRET_KEYS.length);
  });

  it('the hook leaves a line the paths censored as it is, and walks one with a secret key the paths did not cover', () => {
    const censored = '{"msg":"x", "bmc": {"password": "[REDACTED]"}}\n';
    expect(redactLine(censored)).toBe(censored);
    const leaking = '{"msg":"x", "deep": {"password": "[REDACTED]-not-quite"}}\n';
    expect(redactLine(leaking)).toBe('{"msg":"x","deep":{"password":"[REDACTED]"}}\n');
  });
});

describe('the log destination', () => {
  it('holds at most maxLength bytes waiting for the fd, dropping lines past it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metald-log-'));
    try {
      const file = join(dir, 'out.log');
      // Written before the file is even open (as when stdout is blocked): everything waits in the buffer.
      const dest = boundedDestination(file, 1_000) as unknown as NodeJS.EventEmitter & { write(s: string): boolean; end(): void };
      let dropped = 0;
      dest.on('drop', () => (dropped += 1));
      const line = `${'x'.repeat(99)}\n`;
      for (let i = 0; i < 100; i++) dest.write(line);
      expect(dropped).toBe(90); // 10 lines of 100 bytes fill the 1,000 bytes
      await new Promise((resolve) => (dest.once('close', resolve), dest.end()));
      expect(readFileSync(file, 'utf8')).toBe(line.repeat(10));
      expect(LOG_BUFFER_MAX).toBe(8 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the log destination coalesces writes', () => {
  type Dest = NodeJS.EventEmitter & { write(s: string): boolean; end(): void };
  const turn = () => new Promise((r) => setImmediate(r));
  async function withFile(fn: (dest: Dest, file: string, writes: number[]) => Promise<void>) {
    const dir = mkdtempSync(join(tmpdir(), 'metald-log-'));
    try {
      const file = join(dir, 'out.log');
      const dest = boundedDestination(file) as unknown as Dest;
      await new Promise((r) => dest.once('ready', r));
      const writes: number[] = [];
      dest.on('write', (n: number) => writes.push(n));
      await fn(dest, file, writes);
      await new Promise((resolve) => (dest.once('close', resolve), dest.end()));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const settle = async (file: string, want: string) => {
    for (let i = 0; i < 100 && readFileSync(file, 'utf8') !== want; i++) await new Promise((r) => setTimeout(r, 5));
    return readFileSync(file, 'utf8');
  };

  it('the lines of one event-loop turn leave in one write', async () => {
    await withFile(async (dest, file, writes) => {
      const line = `{"msg":"${'x'.repeat(40)}"}\n`;
      for (let i = 0; i < 50; i++) dest.write(line);
      expect(await settle(file, line.repeat(50))).toBe(line.repeat(50));
      expect(writes).toEqual([line.length * 50]);
      expect(LOG_COALESCE_BYTES).toBeLessThan(16 * 1024);
    });
  });

  it('flushSync (pino\'s exit handler) writes the held lines at once', async () => {
    await withFile(async (dest, file) => {
      dest.write('{"msg":"last words"}\n');
      (dest as unknown as { flushSync(): void }).flushSync();
      expect(readFileSync(file, 'utf8')).toBe('{"msg":"last words"}\n');
    });
  });

  it('a line written while a write is in flight is not held back once it ends', async () => {
    await withFile(async (dest, file) => {
      // libuv's pool (4 threads, where the writes run) kept busy, so that the first write stays in flight for turns.
      const busy = Array.from({ length: 4 }, () => new Promise((r) => pbkdf2('p', 's', 20_000, 32, 'sha256', r)));
      dest.write('{"msg":"a"}\n');
      await turn(); // the turn's write is in flight (queued on the pool)
      dest.write('{"msg":"b"}\n');
      await turn(); // its turn ended with the write still in flight: b is held
      dest.write('{"msg":"c"}\n');
      await turn();
      await Promise.all(busy);
      // Nothing else is logged: every line still reaches the file.
      expect(await settle(file, '{"msg":"a"}\n{"msg":"b"}\n{"msg":"c"}\n')).toBe('{"msg":"a"}\n{"msg":"b"}\n{"msg":"c"}\n');
    });
  });
});

describe('isoTimeCached', () => {
  it("gives pino's ISO time field, formatted once per millisecond", () => {
    let now = Date.parse('2026-12-02T03:00:00.123Z');
    const time = isoTimeCached(() => now);
    expect(time()).toBe(',"time":"2026-12-02T03:00:00.123Z"');
    const first = time();
    expect(time()).toBe(first);
    now += 1;
    expect(time()).toBe(',"time":"2026-12-02T03:00:00.124Z"');
    now += 60_000;
    expect(time()).toBe(',"time":"2026-12-02T03:01:00.124Z"');
  });
});
