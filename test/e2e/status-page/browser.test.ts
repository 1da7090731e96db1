/**
 * The status page in a real browser (Debian's headless `chromium`, driven over the DevTools protocol) against the
 * real daemon (dist/agent/main.js) on fake nodes: the page asks for a token and shows nothing before; with the admin
 * token it shows the nodes and instances; a power change made through the REST API appears on the page without a
 * reload (the same document: its load marker and navigation count unchanged); with a member token it shows only the
 * member's instance and no node table. Without chromium this test fails and says how to install it.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, Chromium } from '../../../scripts/status/chromium.js';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_TOKEN, ADOPTED_ID, MEMBER_TOKEN, PROJECT, nodeId, writeConfig } from '../../helpers/harness.js';
import { missingPeers } from '../../helpers/peers.js';

const missing = missingPeers(null, [CHROMIUM], 'chromium');
const ADOPTED_NODE = nodeId(3);

let d: Daemon | null = null;
let b: Chromium | null = null;
let dir = '';

/** The text of a cell (class `cls`) of the row `id` in table `table`; null when the row is not there. */
const cellText = (table: string, id: string, cls: string) =>
  `(() => { const td = document.querySelector('#${table} tr[data-id="${id}"] td.${cls}'); return td ? td.textContent : null; })()`;
/** What says the document is the one first loaded. */
const sameDocument = `({ loadedAt: window.__loadedAt, navigations: performance.getEntriesByType('navigation').length, type: performance.getEntriesByType('navigation')[0].type })`;

async function enterToken(page: Chromium, token: string): Promise<void> {
  await page.waitFor<boolean>(`!document.getElementById('login').classList.contains('hidden')`, 10_000, 'the token form');
  await page.evaluate(`document.getElementById('token').focus()`);
  await page.type(token);
  await page.evaluate(`document.getElementById('login').requestSubmit()`);
}

beforeAll(async () => {
  if (missing) return;
  const cfg = writeConfig({ nodes: 2, adopt: true, fake: '{power_delay: 50ms, install: 30ms}' });
  dir = cfg.dir;
  d = await startDaemon(cfg.configPath);
  await waitFor(async () => ((await d!.call('GET', `/v1/${PROJECT}/instances/${ADOPTED_ID}/status`, MEMBER_TOKEN)).body as { state?: string } | null)?.state === 'running', 20_000, 'the adopted instance running');
  b = await Chromium.launch({ width: 1280, height: 900 });
}, 60_000);

afterAll(async () => {
  await b?.close();
  if (d) {
    const t0 = Date.now();
    await d.kill('SIGTERM');
    expect(Date.now() - t0, 'the daemon stops with a page streaming').toBeLessThan(15_000);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('the status page in headless chromium', () => {
  it('shows a power change without a reload (admin), and a member sees only its instance', async () => {
    if (missing) throw new Error(`the status page browser test needs Debian's chromium: ${missing}`);
    const page = b!;
    await page.navigate(`${d!.url}/status`);
    const first = await page.evaluate<{ loadedAt: number; navigations: number; type: string }>(sameDocument);
    expect(first.navigations).toBe(1);

    // Before a token: the form, no data anywhere in the document.
    await enterToken(page, 'not-a-token');
    await page.waitFor<string>(`document.getElementById('login-msg').textContent`, 10_000, 'the refusal');
    expect(await page.evaluate<string>(`document.getElementById('login-msg').textContent`)).toContain('401');
    expect(await page.evaluate<string>('document.body.innerText')).not.toContain('node-01');

    await enterToken(page, ADMIN_TOKEN);
    await page.waitFor<boolean>(`document.querySelectorAll('#nodes tbody tr').length === 3`, 10_000, 'three node rows');
    await page.waitFor<boolean>(`document.getElementById('conn').textContent === 'live'`, 10_000, 'the stream to be live');
    expect(await page.evaluate<boolean>(`sessionStorage.getItem('metald.status.token') !== null`)).toBe(true);
    expect(await page.evaluate(cellText('instances', ADOPTED_ID, 'name'))).toBe('Testvm1');
    expect(await page.evaluate(cellText('instances', ADOPTED_ID, 'power'))).toBe('on');
    expect(await page.evaluate(cellText('nodes', ADOPTED_NODE, 'power'))).toBe('on');
    expect(await page.evaluate(cellText('nodes', ADOPTED_NODE, 'instance'))).toBe('Testvm1');

    // The power change, through the REST API: the page shows it from the event stream.
    const events = await page.evaluate<number>(`document.querySelectorAll('#events tbody tr').length`);
    expect((await d!.call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, ADMIN_TOKEN, { target: 'power off' })).status).toBe(202);
    await page.waitFor<boolean>(`${cellText('instances', ADOPTED_ID, 'power')} === 'off'`, 10_000, 'the instance power to show off');
    await page.waitFor<boolean>(`${cellText('nodes', ADOPTED_NODE, 'power')} === 'off'`, 10_000, 'the node power to show off');
    await page.waitFor<boolean>(`${cellText('instances', ADOPTED_ID, 'state')} === 'stopped'`, 10_000, 'the state to show stopped');
    await page.waitFor<boolean>(`[...document.querySelectorAll('#events tbody td.kind')].some((td) => td.textContent === 'action.finished')`, 10_000, 'the action in the events');
    expect(await page.evaluate<number>(`document.querySelectorAll('#events tbody tr').length`)).toBeGreaterThan(events);
    // A free node's power too (node.power events).
    expect((await d!.call('PUT', `/v1/nodes/${nodeId(2)}/states/power`, ADMIN_TOKEN, { target: 'power on' })).status).toBe(202);
    await page.waitFor<boolean>(`${cellText('nodes', nodeId(2), 'power')} === 'on'`, 10_000, 'the free node power to show on');
    expect(await page.evaluate(sameDocument)).toEqual(first);

    // A member: its instance only, no node table; its own power change shows too.
    await page.evaluate(`document.getElementById('logout').click()`);
    await enterToken(page, MEMBER_TOKEN);
    await page.waitFor<boolean>(`document.getElementById('role').textContent.startsWith('member')`, 10_000, 'the member view');
    await page.waitFor<boolean>(`document.getElementById('conn').textContent === 'live'`, 10_000, 'the member stream to be live');
    expect(await page.evaluate<boolean>(`document.getElementById('nodes-section').classList.contains('hidden')`)).toBe(true);
    expect(await page.evaluate<number>(`document.querySelectorAll('#nodes tbody tr').length`)).toBe(0);
    expect(await page.evaluate<string[]>(`[...document.querySelectorAll('#instances tbody tr')].map((tr) => tr.dataset.id)`)).toEqual([ADOPTED_ID]);
    expect((await d!.call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, MEMBER_TOKEN, { target: 'power on' })).status).toBe(202);
    await page.waitFor<boolean>(`${cellText('instances', ADOPTED_ID, 'power')} === 'on'`, 10_000, 'the member to see power on');
    expect(await page.evaluate<string>('document.body.innerText')).not.toContain('node-0');

    expect(await page.evaluate(sameDocument)).toEqual(first);
    expect(page.events.filter((e) => e.method === 'Page.frameNavigated')).toHaveLength(1);
    expect(page.events.filter((e) => e.method === 'Runtime.exceptionThrown')).toEqual([]);
  });
});
