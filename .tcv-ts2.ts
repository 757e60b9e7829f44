import { runtimeConfig } from './src/config';
import { ensureTemporalServer, stopDetachedTemporalServer } from './src/infra/temporal-server';
import * as net from 'node:net';
const log = (l: string) => console.error(`[log] ${l}`);
async function main() {
  const config = { ...runtimeConfig(), dataDir: '/tmp/tcv/data' };
  const d = await ensureTemporalServer({ config, port: 7312, uiPort: 8412, detached: true, log }); console.error('pid', require('fs').readFileSync('/tmp/tcv/data/temporal.pid','utf8'));
  console.error('reuse detached: started=', d.started);
  let t = Date.now();
  console.error('stopDetached:', await stopDetachedTemporalServer(config), (Date.now() - t) / 1000, 's');
  console.error('stopDetached again:', await stopDetachedTemporalServer(config));
  // port taken by a non-Temporal
  const srv = net.createServer((s) => { s.on('error', () => {}); s.end('hello\n'); }).listen(7313, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  try { await ensureTemporalServer({ config, port: 7313, detached: false, log }); } catch (e: any) { console.error('EXPECTED', e.code, e.message); }
  srv.close();
  // early exit: db file is a directory
  try { await ensureTemporalServer({ config, port: 7314, dbFile: '/tmp/tcv', detached: false, log }); } catch (e: any) { console.error('EXPECTED', e.code, e.message); }
  // timeout
  t = Date.now();
  try { await ensureTemporalServer({ config, port: 7315, detached: false, log, startTimeoutMs: 100 }); } catch (e: any) { console.error('EXPECTED', e.code, e.message.split('\n')[0], (Date.now() - t) / 1000, 's'); }
}
main().then(() => console.error('exit main'), (e) => { console.error('FAIL', e); process.exit(1); });
