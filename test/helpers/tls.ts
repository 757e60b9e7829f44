import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`The TLS tests need the openssl command (Debian package openssl) to make certificates: ${String(err)}`);
  }
}

/** A self-signed certificate for localhost, made by openssl on the spot (no fixture key in the repo). */
export function selfSignedCertificate(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'tcrawl-tls-'));
  try {
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    openssl(['req', '-x509', ...ecKey, '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
    return { key: readFileSync(key), cert: readFileSync(cert) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** PEM files of a certificate and its key. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

/** A certificate authority made by openssl in `dir`, which signs certificates for servers (localhost, 127.0.0.1) and clients. */
export interface TestCertificateAuthority {
  /** The CA's certificate (PEM file). */
  caFile: string;
  /** A certificate for `localhost` and `127.0.0.1`, for a server; `name` names its files. */
  server(name: string): CertificateFiles;
  /** A certificate for a client identified as `name`. */
  client(name: string): CertificateFiles;
}

export function testCertificateAuthority(dir: string, caName = 'tcrawl test CA'): TestCertificateAuthority {
  const slug = caName.replace(/\W+/g, '-');
  const caFile = join(dir, `${slug}.pem`);
  const caKey = join(dir, `${slug}.key`);
  openssl(['req', '-x509', ...ecKey, '-keyout', caKey, '-out', caFile, '-days', '1', '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const sign = (name: string, extensions: string[]): CertificateFiles => {
    const files = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    const request = join(dir, `${name}.csr`);
    const extFile = join(dir, `${name}.ext`);
    openssl(['req', ...ecKey, '-keyout', files.key, '-out', request, '-subj', `/CN=${name}`]);
    writeFileSync(extFile, `${extensions.join('\n')}\n`);
    openssl(['x509', '-req', '-in', request, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', files.cert, '-days', '1', '-extfile', extFile]);
    return files;
  };
  return {
    caFile,
    server: (name) => sign(name, ['subjectAltName=DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage=serverAuth,clientAuth']),
    client: (name) => sign(name, ['extendedKeyUsage=clientAuth']),
  };
}
