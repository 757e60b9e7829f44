import { runtimeConfig } from './src/config';
import { ensureTemporalServer, stopDetachedTemporalServer } from './src/infra/temporal-server';
import { execSync } from 'node:child_process';
const log = (l: string) => console.error(`[log] ${l}`);
async function main() {
  const config = { ...runtimeConfig(), dataDir: '/tmp/tcv/data' };
  let t = Date.now();
  const a = await ensureTemporalServer({ config, port: 7311, detached: false, log });
  console.error('attached started', a.started, a.address, a.uiUrl, (Date.now() - t) / 1000, 's');
  console.error('UI:', execSync(`curl -s -o /dev/null -w '%{http_code}' ${a.uiUrl}/`).toString());
  t = Date.now();
  const b = await ensureTemporalServer({ config, port: 7311, detached: false, log });
  console.error('reuse started=', b.started, (Date.now() - t) / 1000, 's');
  await b.stop();
  t = Date.now();
  await a.stop(); await a.stop();
  console.error('stopped attached in', (Date.now() - t) / 1000, 's; port answers:', execSync(`(ss -ltn | grep -c ':7311 ') || true`).toString().trim());
  t = Date.now();
  const d = await ensureTemporalServer({ config, port: 7312, uiPort: 8412, detached: true, log });
  console.error('detached started', d.started, (Date.now() - t) / 1000, 's pidfile', execSync('cat /tmp/tcv/data/temporal.pid').toString().trim());
  console.error('UI:', execSync(`curl -s -o /dev/null -w '%{http_code}' ${d.uiUrl}/`).toString());
}
main().then(() => console.error('exit main'), (e) => { console.error('FAIL', e); process.exit(1); });
