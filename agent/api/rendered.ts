/**
 * The instance list's body, rendered once per record. The store answers a page it kept with the same deeply
 * frozen objects while the database is unchanged (agent/store/list-queries.ts PageMemo), so a frozen instance's
 * view cannot change: its JSON, and a frozen page's whole body, are kept next to the object (WeakMaps: they go with
 * it) and reused for a request with the same view environment. Anything not frozen is rendered every time.
 * The body is byte for byte (UTF-8) `JSON.stringify({ instances: list.map((i) => instanceView(i, env)) })`.
 */
import type { Instance } from '../model.js';
import { instanceView, type ViewEnv } from './views.js';

interface Kept<T> {
  /** The ViewEnv fields the rendering depended on (envKey). */
  env: string;
  json: T;
}

/** Every ViewEnv field instanceView reads (nodeName is not one). */
const envKey = (env: ViewEnv): string => JSON.stringify([env.base, env.urlProject, env.isAdmin, env.agentId]);

export class InstanceListRenderer {
  private readonly items = new WeakMap<Instance, Kept<string>>();
  private readonly bodies = new WeakMap<readonly Instance[], Kept<Buffer>>();

  /** `{"instances": [...]}` of the list's views, UTF-8 (a kept body is not encoded again). */
  body(list: readonly Instance[], env: ViewEnv): Buffer {
    const key = envKey(env);
    const frozen = Object.isFrozen(list) && list.every((i) => Object.isFrozen(i));
    if (frozen) {
      const kept = this.bodies.get(list);
      if (kept?.env === key) return kept.json;
    }
    const json = Buffer.from(`{"instances":[${list.map((i) => this.item(i, env, key)).join(',')}]}`, 'utf8');
    if (frozen) this.bodies.set(list, { env: key, json });
    return json;
  }

  private item(inst: Instance, env: ViewEnv, key: string): string {
    if (!Object.isFrozen(inst)) return JSON.stringify(instanceView(inst, env));
    const kept = this.items.get(inst);
    if (kept?.env === key) return kept.json;
    const json = JSON.stringify(instanceView(inst, env));
    this.items.set(inst, { env: key, json });
    return json;
  }
}
