/**
 * Redfish virtual media: the first CD/DVD slot of the Manager's `VirtualMedia` (where sushy and most BMCs have it),
 * else of the System's (newer services). Insert uses the slot's `#VirtualMedia.InsertMedia` action, else a PATCH of
 * `Image`/`Inserted`; eject likewise. Inserting the image already there, or ejecting an empty slot, sends nothing;
 * a slot holding another image is ejected first. No slot: BMC_ERR_UNSUPPORTED, nothing sent.
 */
import { BmcError } from '../errors.js';
import type { CallOptions, MediaDriver } from '../types.js';
import type { Json } from './client.js';
import type { PowerContext } from './power.js';

interface Slot {
  path: string;
  json: Json;
  etag: string | null;
}

const CD = ['CD', 'DVD'];

export function createRedfishMedia(ctx: PowerContext): MediaDriver {
  let found: string | null = null;
  const { client } = ctx;

  async function slot(opts: CallOptions): Promise<Slot> {
    if (found) {
      const r = await client.call('GET', found, opts);
      return { path: found, json: r.json ?? {}, etag: r.etag };
    }
    const system = await ctx.readSystem(opts);
    const manager = await client.manager(system.json, opts);
    const collections: string[] = [];
    if (manager) {
      const m = await client.call('GET', manager, opts);
      const c = client.link(m.json, 'VirtualMedia');
      if (c) collections.push(c);
    }
    const own = client.link(system.json, 'VirtualMedia');
    if (own) collections.push(own);
    let first: Slot | null = null;
    for (const c of collections) {
      for (const path of await client.members(c, opts)) {
        const r = await client.call('GET', path, opts);
        const s = { path, json: r.json ?? {}, etag: r.etag };
        const types = Array.isArray(s.json['MediaTypes']) ? (s.json['MediaTypes'] as unknown[]) : [];
        if (types.some((t) => CD.includes(String(t)))) {
          found = path;
          return s;
        }
        first ??= s;
      }
    }
    if (first) {
      found = first.path;
      return first;
    }
    throw new BmcError('BMC_ERR_UNSUPPORTED', ctx.driver, 'no VirtualMedia slot under the Manager or the System; nothing was sent');
  }

  const action = (s: Slot, name: string): string | null => {
    const t = ((s.json['Actions'] as Json | undefined)?.[name] as Json | undefined)?.['target'];
    return typeof t === 'string' ? client.path(t, `${name} target`) : null;
  };
  const ifMatch = (s: Slot): Record<string, string> => (s.etag ? { 'if-match': s.etag } : {});

  async function eject(s: Slot, opts: CallOptions): Promise<void> {
    if (s.json['Inserted'] !== true && (s.json['Image'] ?? null) === null) return;
    const target = action(s, '#VirtualMedia.EjectMedia');
    if (target) await client.act('POST', target, {}, opts);
    else await client.act('PATCH', s.path, { Image: null, Inserted: false }, opts, ifMatch(s));
  }

  return {
    async insertMedia(url, opts = {}) {
      let parsed: URL | null = null;
      try {
        parsed = new URL(url);
      } catch {
        parsed = null;
      }
      if (!parsed || !['http:', 'https:'].includes(parsed.protocol)) {
        throw new BmcError('BMC_ERR_UNSUPPORTED', ctx.driver, 'virtual media insert: the image must be an http(s) URL; nothing was sent');
      }
      let s = await slot(opts);
      if (s.json['Inserted'] === true && s.json['Image'] === url) return;
      if (s.json['Inserted'] === true || (s.json['Image'] ?? null) !== null) {
        await eject(s, opts);
        s = await slot(opts);
      }
      const body = { Image: url, Inserted: true, WriteProtected: true };
      const target = action(s, '#VirtualMedia.InsertMedia');
      if (target) await client.act('POST', target, body, opts);
      else await client.act('PATCH', s.path, body, opts, ifMatch(s));
    },

    async ejectMedia(opts = {}) {
      await eject(await slot(opts), opts);
    },
  };
}
