/** Fake inventory: the `inventory` option of the server, over defaults (metald / fake-server / FAKE-<node id>). */
import type { InventoryDriver } from '../types.js';
import type { FakeServer } from './lab.js';

export function createFakeInventory(server: FakeServer, via: string): InventoryDriver {
  return {
    getInventory: (opts) => server.getInventory(via, opts?.signal),
  };
}
