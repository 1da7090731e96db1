/**
 * nova's `limit` and `marker` on every list route, over the real engine and store (buildAgent with the fake lab,
 * fastify inject); api.page_size {default: 10, max: 20} from the config file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../../agent/model.js';
import type { Pinger } from '../../../agent/ports.js';
import {
  ADMIN_PROJECT,
  ADMIN_TOKEN,
  MEMBER_TOKEN,
  OTHER_PROJECT,
  PROJECT,
  nodeId,
  startHarness,
  type Harness,
} from '../../helpers/harness.js';
import { action, instance } from '../store/fixtures.js';

let h: Harness;
/** Every address list the liveness pinger was asked to probe. */
let pinged: string[][];

const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const reqId = (i: number) => `req-00000000-0000-4000-9000-${String(i).padStart(12, '0')}`;

/** 25 instances of PROJECT (two of them terminated) and 5 of OTHER_PROJECT, created a second apart, interleaved. */
function seedInstances(): Instance[] {
  const all: Instance[] = [];
  for (let i = 1; i <= 30; i++) {
    const inst = instance({
      id: uuid(i),
      project_id: i % 6 === 0 ? OTHER_PROJECT : PROJECT,
      node_id: nodeId(1),
      state: i === 4 || i === 17 ? 'terminated' : 'running',
      created_at: new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(),
      addresses: [{ addr: `127.0.3.${i}`, mac: 'fa:16:3e:00:00:01', version: 4, type: 'fixed', network: 'private' }],
    });
    h.agent.store.putInstance(inst);
    all.push(inst);
  }
  return all;
}

const get = (url: string, token = MEMBER_TOKEN) => h.agent.api.inject({ method: 'GET', url, headers: { 'x-auth-token': token } });

/** Follows `marker` from page to page; returns the pages' ids. */
async function walk(url: (marker: string | null) => string, key: string, idOf: (o: Record<string, unknown>) => string, token?: string): Promise<string[][]> {
  const pages: string[][] = [];
  let marker: string | null = null;
  for (let i = 0; i < 20; i++) {
    const res = await get(url(marker), token);
    expect(res.statusCode, res.body).toBe(200);
    const items = res.json()[key] as Record<string, unknown>[];
    if (items.length === 0) return pages;
    pages.push(items.map(idOf));
    marker = pages.at(-1)!.at(-1)!;
  }
  throw new Error('paging does not end');
}

beforeEach(async () => {
  pinged = [];
  const pinger: Pinger = {
    engine: 'test',
    async ping(addrs) {
      pinged.push([...addrs]);
      return addrs.map((addr) => ({ addr, alive: true, rtt_ms: 1 }));
    },
  };
  h = await startHarness({
    nodes: 5,
    pinger,
    editConfig: (yaml) => yaml.replace('api:\n', 'api:\n  page_size: {default: 10, max: 20}\n'),
  });
});

afterEach(async () => {
  await h.close();
});

describe('GET /v1/{p}/instances', () => {
  it('limit 10 walks the 25 instances of the project exactly once, oldest first; no other project appears', async () => {
    const all = seedInstances();
    const pages = await walk((m) => `/v1/${PROJECT}/instances?limit=10${m ? `&marker=${m}` : ''}`, 'instances', (o) => String(o['uuid']));
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(all.filter((i) => i.project_id === PROJECT).map((i) => i.id));
  });

  it("admins see every project's; without limit the page is api.page_size.default", async () => {
    const all = seedInstances();
    const first = await get(`/v1/${ADMIN_PROJECT}/instances`, ADMIN_TOKEN);
    expect(first.json().instances.map((i: { uuid: string }) => i.uuid)).toEqual(all.slice(0, 10).map((i) => i.id));
    const pages = await walk((m) => `/v1/${ADMIN_PROJECT}/instances?limit=20${m ? `&marker=${m}` : ''}`, 'instances', (o) => String(o['uuid']), ADMIN_TOKEN);
    expect(pages.flat()).toEqual(all.map((i) => i.id));
  });

  it.each([
    ['unknown', uuid(99)],
    ["another project's (a member must not learn it exists)", uuid(6)],
    ['not an id', 'abc'],
  ])('marker %s: 400 "marker [X] not found"', async (_what, marker) => {
    seedInstances();
    const res = await get(`/v1/${PROJECT}/instances?marker=${marker}`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error_code: 'AGENT_ERR_BAD_REQUEST', error_msg: `marker [${marker}] not found` });
  });

  it.each(['0', '21', 'abc', '1.5', '-1', '', '1e1', '99999999999'])('limit=%s: 400 naming the parameter and the range', async (limit) => {
    const res = await get(`/v1/${PROJECT}/instances?limit=${limit}`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error_code: 'AGENT_ERR_BAD_REQUEST',
      error_msg: `Invalid input: querystring.limit: '${limit}' is not a whole number from 1 to 20`,
    });
  });

  it('a change to an instance shows in the next list (the page and its rendered JSON are kept until a write)', async () => {
    const all = seedInstances();
    const url = `/v1/${PROJECT}/instances?limit=3`;
    const first = await get(url);
    expect((await get(url)).body).toBe(first.body);
    expect(first.json().instances[0]).toMatchObject({ uuid: all[0]!.id, name: all[0]!.name, status: 'running' });
    h.agent.store.putInstance({ ...all[0]!, name: 'renamed', state: 'stopped', power_state: 'off' });
    const next = await get(url);
    expect(next.json().instances[0]).toMatchObject({ uuid: all[0]!.id, name: 'renamed', status: 'stopped', power_state: 'power off' });
    expect(next.json().instances.slice(1)).toEqual(first.json().instances.slice(1));
  });

  it('the body is JSON.stringify of the views, byte for byte, typed as fastify types JSON', async () => {
    seedInstances();
    for (let i = 0; i < 2; i++) {
      const res = await get(`/v1/${PROJECT}/instances?limit=4`);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.body).toBe(JSON.stringify(res.json()));
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
    }
  });

  it('limit at the maximum is taken', async () => {
    seedInstances();
    const res = await get(`/v1/${PROJECT}/instances?limit=20`);
    expect(res.statusCode).toBe(200);
    expect(res.json().instances).toHaveLength(20);
  });
});

describe('GET /v2.1/{p}/os-fping', () => {
  it('pages newest first without the terminated; only the page is probed', async () => {
    const all = seedInstances();
    const want = all.filter((i) => i.project_id === PROJECT && i.state !== 'terminated').map((i) => i.id).reverse();
    const pages = await walk((m) => `/v2.1/${PROJECT}/os-fping?limit=10${m ? `&marker=${m}` : ''}`, 'servers', (o) => String(o['id']));
    expect(pages.map((p) => p.length)).toEqual([10, 10, 3]);
    expect(pages.flat()).toEqual(want);
    // One probe per page, of that page's addresses only.
    expect(pinged.map((a) => a.length)).toEqual([10, 10, 3]);
    const addrOf = new Map(all.map((i) => [i.id, i.addresses[0]!.addr]));
    expect(pinged[0]).toEqual(pages[0]!.map((id) => addrOf.get(id)));
  });

  it('all_tenants pages every project; include/exclude apply before the page is cut', async () => {
    const all = seedInstances();
    const live = all.filter((i) => i.state !== 'terminated').map((i) => i.id).reverse();
    const pages = await walk((m) => `/v2.1/${ADMIN_PROJECT}/os-fping?all_tenants=1&limit=20${m ? `&marker=${m}` : ''}`, 'servers', (o) => String(o['id']), ADMIN_TOKEN);
    expect(pages.flat()).toEqual(live);
    const exc = await get(`/v2.1/${PROJECT}/os-fping?limit=2&exclude=${uuid(29)},${uuid(28)}`);
    expect(exc.json().servers.map((s: { id: string }) => s.id)).toEqual([uuid(27), uuid(26)]);
    const inc = await get(`/v2.1/${PROJECT}/os-fping?limit=1&include=${uuid(2)},${uuid(3)}&marker=${uuid(3)}`);
    expect(inc.json().servers.map((s: { id: string }) => s.id)).toEqual([uuid(2)]);
  });

  it('a bad limit or an unknown marker is a nova badRequest', async () => {
    seedInstances();
    const bad = await get(`/v2.1/${PROJECT}/os-fping?limit=0`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ badRequest: { code: 400, message: "Invalid input: querystring.limit: '0' is not a whole number from 1 to 20" } });
    const unknown = await get(`/v2.1/${PROJECT}/os-fping?marker=${uuid(98)}`);
    expect(unknown.json()).toEqual({ badRequest: { code: 400, message: `marker [${uuid(98)}] not found` } });
    expect(pinged).toEqual([]);
  });
});

describe('GET /v2/{p}/servers/{id}/os-instance-actions', () => {
  it('pages newest first by request id; an unknown marker or another instance\'s is a badRequest', async () => {
    const [inst, other] = seedInstances();
    for (let i = 1; i <= 12; i++) {
      h.agent.store.insertAction(action({
        request_id: reqId(i),
        instance_id: inst!.id,
        project_id: PROJECT,
        start_time: new Date(Date.UTC(2024, 1, 1, 0, 0, i === 8 ? 7 : i)).toISOString(),
        events: [],
      }));
    }
    h.agent.store.insertAction(action({ request_id: reqId(50), instance_id: other!.id, project_id: PROJECT, events: [] }));
    const base = `/v2/${PROJECT}/servers/${inst!.id}/os-instance-actions?limit=5`;
    const pages = await walk((m) => `${base}${m ? `&marker=${m}` : ''}`, 'instanceActions', (o) => String(o['request_id']));
    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect(pages.flat()).toEqual(Array.from({ length: 12 }, (_, i) => reqId(12 - i))); // reqId(8) shares 7's time: later first
    for (const marker of [reqId(50), reqId(99), 'nope']) {
      const res = await get(`${base}&marker=${marker}`);
      expect(res.json()).toEqual({ badRequest: { code: 400, message: `marker [${marker}] not found` } });
    }
  });
});

describe('GET /v1/nodes', () => {
  it('pages by name; limit over the maximum and an unknown marker are 400s', async () => {
    const pages = await walk((m) => `/v1/nodes?limit=2${m ? `&marker=${m}` : ''}`, 'nodes', (o) => String(o['uuid']), ADMIN_TOKEN);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat()).toEqual([1, 2, 3, 4, 5].map(nodeId));
    const over = await get('/v1/nodes?limit=21', ADMIN_TOKEN);
    expect(over.json()).toEqual({ error_code: 'AGENT_ERR_BAD_REQUEST', error_msg: "Invalid input: querystring.limit: '21' is not a whole number from 1 to 20" });
    const unknown = await get(`/v1/nodes?marker=${uuid(1)}`, ADMIN_TOKEN);
    expect(unknown.json()).toEqual({ error_code: 'AGENT_ERR_BAD_REQUEST', error_msg: `marker [${uuid(1)}] not found` });
  });
});
