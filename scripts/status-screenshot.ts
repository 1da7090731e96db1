/**
 * Remakes docs/status-page.png: an agent on a small fake fleet (7 fake nodes in-process, loopback only, a temp
 * state dir), the status page opened in Debian's headless chromium with the admin token, a few changes made through
 * the REST API while it is open (they arrive over the event stream), then a screenshot of the whole page.
 *
 *   npm run build && node dist/scripts/status-screenshot.js [--out docs/status-page.png]
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ADMIN_TOKEN, ADOPTED_ID, IMAGE, IMAGE2, MEMBER_TOKEN, OTHER_TOKEN, ctx, nodeId, startHarness } from '../test/helpers/harness.js';
import { Chromium } from './status/chromium.js';

const args = process.argv.slice(2);
const outIdx = args.indexOf('--out');
if (args.some((a, i) => a !== '--out' && i !== outIdx + 1) || (outIdx >= 0 && args[outIdx + 1] === undefined)) {
  console.error('usage: status-screenshot [--out FILE.png]');
  process.exit(2);
}
const out = resolve(outIdx >= 0 ? args[outIdx + 1]! : 'docs/status-page.png');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  // node-04 installs slowly (the screenshot catches it mid-way); node-07 runs a tenant's OS (adopted).
  const h = await startHarness({
    nodes: 6,
    adopt: true,
    fake: '{power_delay: 20ms, install: 100ms}',
    fakeFor: (i) => (i === 4 ? '{power_delay: 20ms, install: 25s}' : undefined),
    deploy: '5m',
    // Liveness sweeps every second (the fake lab answers for the servers that are on): the Alive column fills.
    liveness: '{engine: fake, interval: 1s, timeout: 100ms, retries: 0}',
  });
  let browser: Chromium | null = null;
  try {
    await h.agent.api.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(h.agent.api.server.address() as { port: number }).port}`;
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(url + path, {
        method,
        headers: { 'X-Auth-Token': token, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    };
    const e = h.agent.engine;
    await e.createInstance(ctx('member'), { name: 'web-01', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
    await e.createInstance(ctx('other'), { name: 'db-01', image_uuid: IMAGE2, extra: { node_id: nodeId(2) } });
    await e.createInstance(ctx('admin'), { name: 'ci-runner', image_uuid: IMAGE, extra: { node_id: nodeId(3) } });
    await e.idle();
    await e.createInstance(ctx('member'), { name: 'web-02', image_uuid: IMAGE, extra: { node_id: nodeId(4) } });
    await call('PUT', `/v1/nodes/${nodeId(5)}/maintenance`, ADMIN_TOKEN, { maintenance: true, reason: 'disk swap' });
    await call('PUT', `/v1/nodes/${nodeId(6)}/states/power`, ADMIN_TOKEN, { target: 'power on' });
    await sleep(300);

    browser = await Chromium.launch({ width: 1360, height: 900 });
    await browser.navigate(`${url}/status`);
    await browser.waitFor<boolean>(`!document.getElementById('login').classList.contains('hidden')`, 10_000, 'the token form');
    await browser.evaluate(`document.getElementById('token').focus()`);
    await browser.type(ADMIN_TOKEN);
    await browser.evaluate(`document.getElementById('login').requestSubmit()`);
    await browser.waitFor<boolean>(`document.getElementById('conn').textContent === 'live'`, 10_000, 'the stream');

    // Changes while the page is open: they arrive as events.
    await call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, MEMBER_TOKEN, { target: 'power off' });
    await call('PUT', `/v1/nodes/${nodeId(6)}/states/power`, ADMIN_TOKEN, { target: 'power off' });
    await sleep(500);
    const db = h.agent.store.listInstances().find((i) => i.name === 'db-01')!;
    await call('PUT', `/v1/instances/${db.id}/states/power`, OTHER_TOKEN, { target: 'rebooting' });
    await browser.waitFor<boolean>(
      `[...document.querySelectorAll('#instances td.power')].some((td) => td.textContent === 'off') && document.querySelectorAll('#events tbody tr').length > 20`,
      10_000,
      'the changes on the page',
    );
    // The progress of the slow install is read every 5 s: wait for a reading.
    await browser.waitFor<boolean>(
      `[...document.querySelectorAll('#instances td.progress')].some((td) => /^[1-9][0-9]?%$/.test(td.textContent))`,
      15_000,
      'a progress reading',
    );
    await sleep(1300); // the row highlight fades
    const png = await browser.screenshot();
    writeFileSync(out, png);
    console.log(`wrote ${out} (${png.length} bytes); instances on the page: ${await browser.evaluate<number>(`document.querySelectorAll('#instances tbody tr').length`)}`);
  } finally {
    await browser?.close();
    await h.close().catch(() => undefined);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack : String(err));
    process.exit(1);
  },
);
