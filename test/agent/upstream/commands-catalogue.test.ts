/**
 * The catalogue commands (image/instance-type/network put and delete; agent/operations/catalogue.ts) on a real agent:
 * the entries are judged by the config loader, kept across a restart, read by the engine beside the file's (the
 * file's entries cannot be changed by a command), and an entry in use by a live instance cannot be deleted.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import { InlineWalSync } from '../../../agent/store/wal-sync.js';
import { IMAGE, NETWORK, nodeId, PROJECT, startHarness, writeConfig, type Harness } from '../../helpers/harness.js';
import { command, handlerOf, result } from './command-helpers.js';

let h: Harness | null = null;
const agents: Agent[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  await h?.close();
  h = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const NEW_IMAGE = '5fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const NEW_TYPE = '6fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const NEW_NET = '7fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const image = (over: Record<string, unknown> = {}) => ({ uuid: NEW_IMAGE, name: 'rocky-9', url: 'http://127.0.0.1:1/rocky.img', sha256: 'C'.repeat(64), os: 'linux', ...over });
const network = (over: Record<string, unknown> = {}) => ({ uuid: NEW_NET, name: 'public', cidr: '127.0.3.0/24', gateway: '127.0.3.1', pool: '127.0.3.10-127.0.3.20', ...over });

describe('catalogue commands', () => {
  it('image.put: done, resolved by the loader, kept across a restart, and an instance installs from it', async () => {
    const cfg = writeConfig({ nodes: 1 });
    dirs.push(cfg.dir);
    const boot = async (): Promise<Agent> => {
      const a = await buildAgent(loadConfigFile(cfg.configPath), { log: pino({ level: 'silent' }), walSync: new InlineWalSync() });
      agents.push(a);
      await a.start();
      return a;
    };
    let agent = await boot();
    const put = command({ op: 'image.put', image: image({ uuid: NEW_IMAGE.toUpperCase() }) });
    expect(await result(handlerOf(agent), put)).toMatchObject({ status: 'done', error: null });
    expect(agent.engine.catalogue.config().images.find((i) => i.uuid === NEW_IMAGE)).toEqual({ ...image(), sha256: 'c'.repeat(64), boot_method: 'pxe' });
    await agent.stop();
    agents.pop();
    agent = await boot();
    expect(agent.engine.catalogue.config().images.map((i) => i.uuid)).toContain(NEW_IMAGE);
    const create = command({ op: 'instance.create', project_id: PROJECT, user_id: 'u', instance: { name: 'r', image_uuid: NEW_IMAGE } });
    const r = await result(handlerOf(agent), create);
    expect(r.status).toBe('accepted');
    await agent.engine.idle();
    expect(agent.store.getInstance(r.instance_id!)).toMatchObject({ state: 'running', image_uuid: NEW_IMAGE });
    // In use: the delete is refused; the instance deleted, it is done.
    expect(await result(handlerOf(agent), command({ op: 'image.delete', uuid: NEW_IMAGE }))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_CONFLICT' } });
    await agent.engine.deleteInstance({ request_id: 'req-00000000-0000-4000-8000-00000000c0de', project_id: PROJECT, user_id: 'u', roles: ['admin'], is_admin: true }, r.instance_id!);
    await agent.engine.idle();
    expect(await result(handlerOf(agent), command({ op: 'image.delete', uuid: NEW_IMAGE }))).toMatchObject({ status: 'done' });
    expect(agent.engine.catalogue.config().images.map((i) => i.uuid)).not.toContain(NEW_IMAGE);
  });

  it('a put replaces the controller\'s entry by uuid; the file\'s entries cannot be put or deleted', async () => {
    h = await startHarness({ nodes: 1 });
    const handler = handlerOf(h.agent);
    await result(handler, command({ op: 'image.put', image: image() }));
    await result(handler, command({ op: 'image.put', image: image({ name: 'rocky-9.4' }) }));
    expect(h.agent.engine.catalogue.config().images.filter((i) => i.uuid === NEW_IMAGE).map((i) => i.name)).toEqual(['rocky-9.4']);
    const onFile = await result(handler, command({ op: 'image.put', image: image({ uuid: IMAGE }) }));
    expect(onFile).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_BAD_REQUEST' } });
    expect(onFile.error!.message).toContain('configuration file');
    expect(h.agent.engine.catalogue.config().images.find((i) => i.uuid === IMAGE)!.name).toBe('debian-12');
    expect(await result(handler, command({ op: 'network.delete', uuid: NETWORK }))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_BAD_REQUEST' } });
    expect(await result(handler, command({ op: 'instance-type.delete', uuid: NEW_TYPE }))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_NOT_FOUND' } });
  });

  it('the loader\'s rules: a gateway outside the cidr, a network name the file has', async () => {
    h = await startHarness({ nodes: 1 });
    const handler = handlerOf(h.agent);
    const bad = await result(handler, command({ op: 'network.put', network: network({ gateway: '10.0.0.1' }) }));
    expect(bad).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_BAD_REQUEST' } });
    expect(bad.error!.message).toMatch(/^network\.gateway: the gateway is outside 127\.0\.3\.0\/24/);
    const clash = await result(handler, command({ op: 'network.put', network: network({ name: 'private' }) }));
    expect(clash).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_BAD_REQUEST' } });
    expect(clash.error!.message).toMatch(/^network\.name: /);
    expect(h.agent.engine.catalogue.config().networks.map((n) => n.uuid)).toEqual([NETWORK]);
  });

  it('network.put and instance-type.put: an instance is created on them; in use, neither can be deleted', async () => {
    h = await startHarness({ nodes: 2 });
    const handler = handlerOf(h.agent);
    expect(await result(handler, command({ op: 'network.put', network: network() }))).toMatchObject({ status: 'done' });
    expect(await result(handler, command({ op: 'instance-type.put', instance_type: { uuid: NEW_TYPE, name: 'bm.small2', node_type: 'small' } }))).toMatchObject({ status: 'done' });
    const create = command({ op: 'instance.create', project_id: PROJECT, user_id: 'u', instance: { name: 'p', image_uuid: IMAGE, instance_type_uuid: NEW_TYPE, networks: [{ uuid: NEW_NET }], extra: { node_id: nodeId(2) } } });
    const r = await result(handler, create);
    expect(r.status).toBe('accepted');
    await h.agent.engine.idle();
    const inst = h.agent.store.getInstance(r.instance_id!)!;
    expect(inst).toMatchObject({ state: 'running', instance_type_uuid: NEW_TYPE });
    expect(inst.addresses.map((a) => a.addr)).toEqual(['127.0.3.10']);
    for (const body of [{ op: 'network.delete', uuid: NEW_NET }, { op: 'instance-type.delete', uuid: NEW_TYPE }] as const) {
      expect(await result(handler, command(body))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_CONFLICT' } });
    }
    expect(h.agent.engine.catalogue.config().networks.map((n) => n.uuid)).toContain(NEW_NET);
  });
});
