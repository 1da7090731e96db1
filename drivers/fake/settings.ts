/**
 * What the registry knows of the `fake` driver without loading it: its name, capabilities and settings schema, so a
 * config naming it is validated (and refused without `allow_fake_drivers`) while production never loads the fake
 * itself. The bindable driver (drivers/fake/index.ts) is registered by agent/fakes.ts, only with the flag on.
 */
import { Type } from '@sinclair/typebox';
import { driverSettings, type DriverSettings } from '../settings.js';
import type { Capability, DriverDefinition } from '../types.js';

export const FAKE_CAPABILITIES: readonly Capability[] = ['power', 'boot', 'media', 'inventory'];

/** The fake driver's settings: the common ones and `fake`, its free-form options (checked by options.ts at binding). */
export const FAKE_SETTINGS = driverSettings({
  fake: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { errorMessage: 'expected a mapping' })),
});

/** The simulated server's options in a node's settings (its `fake` mapping), if any. */
export function fakeOptions(settings: DriverSettings | undefined): Record<string, unknown> | undefined {
  const o = settings?.['fake'];
  return typeof o === 'object' && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : undefined;
}

/** The fake driver's settings only (no `create`): what drivers/registry.ts lists among the built-in drivers. */
export const fakeDriverDefinition: DriverDefinition = { name: 'fake', capabilities: FAKE_CAPABILITIES, settings: FAKE_SETTINGS, testOnly: true };
