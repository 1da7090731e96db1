/**
 * A throw-away PKI for the emulator's HTTPS, made with /usr/bin/openssl: a CA and a server certificate signed by it
 * for 127.0.0.1, ::1 and localhost. Tests point the client at `caFile`; a second call in another folder gives a CA
 * that does NOT match (the wrong-certificate fault).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** PEM contents, for startRedfishEmulator({ tls }). */
  key: string;
  cert: string;
  ca: string;
}

const OPENSSL = '/usr/bin/openssl';

/** Creates (or, when `dir` already holds one, reuses) the CA and server certificate. @throws when openssl fails. */
export function makeTestPki(dir: string, commonName = 'metald redfish emulator'): TestPki {
  mkdirSync(dir, { recursive: true });
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server.key');
  if (!existsSync(certFile) || !existsSync(keyFile) || !existsSync(caFile)) {
    if (!existsSync(OPENSSL)) throw new Error(`${OPENSSL} is missing: install Debian's openssl (scripts/setup.sh does) to make the emulator's test CA`);
    const run = (args: string[]): void => {
      execFileSync(OPENSSL, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    };
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${commonName} test CA`, '-keyout', caKey, '-out', caFile, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    const csr = join(dir, 'server.csr');
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${commonName}`, '-keyout', keyFile, '-out', csr]);
    const ext = join(dir, 'server.ext');
    writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
    run(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', certFile]);
  }
  return { dir, caFile, certFile, keyFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), ca: readFileSync(caFile, 'utf8') };
}
