/**
 * wss:// to the reference controller with certificates made by openssl here: verified against the given CA (the
 * right one streams; another fails the TLS handshake, says so in last_error, and nothing is streamed).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT, append, makeLink, startController, useLinkContext, waitUntil } from './link-helpers.js';

const ctx = useLinkContext();

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA. */
function makeCerts(dir: string): { ca: Buffer; otherCa: Buffer; cert: Buffer; key: Buffer } {
  const ca = (name: string) => openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`], dir);
  ca('ca');
  ca('other-ca');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf'], dir);
  const r = (f: string) => readFileSync(join(dir, f));
  return { ca: r('ca.pem'), otherCa: r('other-ca.pem'), cert: r('server.pem'), key: r('server.key') };
}

describe('wss', () => {
  it('the right CA: the link streams over TLS', async () => {
    const certs = makeCerts(ctx.dir);
    append(ctx.store, 5);
    const c = await startController(ctx, { tls: { cert: certs.cert, key: certs.key } });
    expect(c.url).toMatch(/^wss:/);
    const link = makeLink(ctx, c.url, { ca: certs.ca });
    const s = link.whenStreaming();
    link.start();
    await s;
    await waitUntil(() => c.store.seqs(AGENT).length === 5);
    expect(link.status().last_error).toBeNull();
  });

  it('another CA: the TLS handshake fails, last_error says the certificate is not trusted, the link retries, nothing is streamed', async () => {
    const certs = makeCerts(ctx.dir);
    append(ctx.store, 5);
    const c = await startController(ctx, { tls: { cert: certs.cert, key: certs.key } });
    const link = makeLink(ctx, c.url, { ca: certs.otherCa });
    link.start();
    await waitUntil(() => link.status().attempts >= 2, 5000, 'two failed dials');
    const s = link.status();
    expect(s.last_error).toMatch(/^TLS: certificate not trusted by upstream\.ca_file \([A-Z_]+\)$/);
    expect(s.welcomes).toBe(0);
    expect(c.lines.filter((l) => l.what === 'hello')).toEqual([]);
    expect(c.store.seqs(AGENT)).toEqual([]);
  });
});
