/**
 * The in-memory `fake` driver: for tests and the demo only (registered only with `allow_fake_drivers: true`).
 * Binding it to a target creates (or reuses) the simulated server of `target.nodeId` in the lab, with
 * `target.options` as its options (see lab.ts). Credentials are not checked; use the `auth` fault instead.
 */
import type { BoundDriver, Capability, DriverFactory } from '../types.js';
import { createFakeBoot } from './boot.js';
import { createFakeInventory } from './inventory.js';
import type { FakeLab } from './lab.js';
import { createFakeMedia } from './media.js';
import { createFakePower } from './power.js';

export const FAKE_CAPABILITIES: readonly Capability[] = ['power', 'boot', 'media', 'inventory'];

/**
 * @param name the driver's name; another name gives a second "access path" to the same servers, so tests can fault
 *   one path (`lab.setFaults(id, faults, name)`) and watch the fall-through to the other.
 */
export function fakeDriverFactory(lab: FakeLab, name = 'fake'): DriverFactory {
  return {
    name,
    capabilities: FAKE_CAPABILITIES,
    create(target): BoundDriver {
      const server = lab.server(target.nodeId, target.options);
      return {
        name,
        capabilities: FAKE_CAPABILITIES,
        power: createFakePower(server, name),
        boot: createFakeBoot(server, name),
        media: createFakeMedia(server, name),
        inventory: createFakeInventory(server, name),
        close: () => Promise.resolve(),
      };
    },
  };
}

export { FakeLab, FakeServer, parseDuration, parseFakeFaults, parseFakeOptions } from './lab.js';
export type { FakeCommand, FakeFaults, FakeInstallJob, FakeInstallOptions, FakeServerOptions, FakeServerSnapshot } from './lab.js';
