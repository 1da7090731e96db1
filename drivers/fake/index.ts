/**
 * The in-memory `fake` driver: for tests and the demo only (registered only with `allow_fake_drivers: true`).
 * Binding it to a target creates (or reuses) the simulated server of `target.nodeId` in the lab, with the node's
 * `fake` setting as its options (see options.ts). Credentials are not checked; use the `auth` fault instead.
 */
import type { BoundDriver, DriverFactory } from '../types.js';
import { createFakeBoot } from './boot.js';
import { createFakeInventory } from './inventory.js';
import type { FakeLab } from './lab.js';
import { createFakeMedia } from './media.js';
import { createFakePower } from './power.js';
import { FAKE_CAPABILITIES, FAKE_SETTINGS, fakeOptions } from './settings.js';

export { FAKE_CAPABILITIES, FAKE_SETTINGS, fakeDriverDefinition, fakeOptions } from './settings.js';

/**
 * @param name the driver's name; another name gives a second "access path" to the same servers, so tests can fault
 *   one path (`lab.setFaults(id, faults, name)`) and watch the fall-through to the other.
 */
export function fakeDriverFactory(lab: FakeLab, name = 'fake'): DriverFactory {
  return {
    name,
    capabilities: FAKE_CAPABILITIES,
    settings: FAKE_SETTINGS,
    testOnly: true,
    create(target): BoundDriver {
      const server = lab.server(target.nodeId, fakeOptions(target.settings));
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
export type { FakeCommand, FakeFaults, FakeInstallerJob, FakeInstallJob, FakeInstallOptions, FakeServerOptions, FakeServerSnapshot } from './lab.js';
