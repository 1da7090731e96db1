/**
 * Test certificates made by the real openssl: a CA, a server certificate it signs (SAN 127.0.0.1 and localhost),
 * and a second CA that vouches for nothing here. Made once per test file in a temporary folder.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** The CA that signed the server certificate. */
  caFile: string;
  /** A CA that did not. */
  otherCaFile: string;
  cert: string;
  key: string;
  cleanup(): void;
}

const OPENSSL = '/usr/bin/openssl';
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'metald-pki-'));
  const f = (n: string) => join(dir, n);
  const run = (args: string[]) => {
    try {
      execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new Error(`the TLS tests need ${OPENSSL} (Debian openssl) to make their certificates: ${(e as Error).message}`);
    }
  };
  run(['req', '-x509', ...EC, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=metald test CA']);
  run(['req', '-x509', ...EC, '-keyout', f('other.key'), '-out', f('other.pem'), '-days', '2', '-subj', '/CN=metald other CA']);
  run(['req', ...EC, '-keyout', f('srv.key'), '-out', f('srv.csr'), '-subj', '/CN=localhost']);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('srv.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  return {
    dir,
    caFile: f('ca.pem'),
    otherCaFile: f('other.pem'),
    cert: readFileSync(f('srv.pem'), 'utf8'),
    key: readFileSync(f('srv.key'), 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
