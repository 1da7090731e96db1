import { describe, expect, it } from 'vitest';
import { BmcError } from '../../drivers/errors.js';
import { fakeDriverFactory } from '../../drivers/fake/index.js';
import { FakeLab } from '../../drivers/fake/lab.js';
import { redfishDriver } from '../../drivers/redfish/index.js';
import { createDefaultRegistry, DriverRegistry } from '../../drivers/registry.js';
import { target } from './helpers.js';

describe('DriverRegistry', () => {
  it('registers, lists and binds in the given order', () => {
    const lab = new FakeLab();
    const r = new DriverRegistry().register(fakeDriverFactory(lab, 'b')).register(fakeDriverFactory(lab, 'a'));
    expect(r.names()).toEqual(['b', 'a']);
    expect(r.has('a')).toBe(true);
    expect(r.has('ipmi')).toBe(false);
    const bound = r.bindAll(['a', 'b'], target('n1'));
    expect(bound.map((d) => d.name)).toEqual(['a', 'b']);
    expect(bound[0]!.capabilities).toEqual(['power', 'boot', 'media', 'inventory']);
    expect(lab.has('n1')).toBe(true);
  });

  it('refuses a second driver of the same name', () => {
    const lab = new FakeLab();
    const r = new DriverRegistry().register(fakeDriverFactory(lab));
    expect(() => r.register(fakeDriverFactory(lab))).toThrow(/already registered/);
  });

  it('an unknown name is BMC_ERR_UNSUPPORTED naming what exists', () => {
    const r = new DriverRegistry().register(fakeDriverFactory(new FakeLab()));
    let err: unknown;
    try {
      r.bindAll(['fake', 'ilo'], target('n2'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BmcError);
    expect(err).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', driver: 'ilo', message: 'unknown BMC driver "ilo" for node n2 (available: fake)' });
    expect(() => r.bindAll([], target('n2'))).toThrow(/names no BMC driver/);
    expect(() => r.bindAll(['fake', 'fake'], target('n2'))).toThrow(/twice/);
  });
});

describe('DriverRegistry.settingsSchema', () => {
  it('is built once per list of known drivers, whatever unknown or repeated names come with it', () => {
    const r = createDefaultRegistry({ allowFake: true });
    const fake = r.settingsSchema(['fake']);
    expect(r.settingsSchema(['fake'])).toBe(fake);
    expect(r.settingsSchema(['fake', 'warp', 'fake'])).toBe(fake);
    expect(r.settingsSchema(['redfish', 'fake'])).not.toBe(fake);
    expect(r.settingsSchema(['redfish', 'fake']).schema.properties).toHaveProperty('system_id');
  });

  it('a driver declared after a schema was built is in the next one (its keys foreign to the others)', () => {
    const r = new DriverRegistry().register(fakeDriverFactory(new FakeLab()));
    expect(r.settingsSchema(['fake']).foreign.size).toBe(0);
    r.declare(redfishDriver, 'not implemented yet');
    expect(r.settingsSchema(['fake']).foreign.get('system_id')).toBe('redfish');
  });
});

describe('createDefaultRegistry', () => {
  it('has no fake driver unless allowed, and says why', () => {
    const r = createDefaultRegistry({ allowFake: false });
    expect(r.has('fake')).toBe(false);
    expect(() => r.bindAll(['fake'], target('n3'))).toThrow(/fake driver is for tests and the demo only \(set allow_fake_drivers: true\)/);
  });

  it('binds the fake into the lab it was given', async () => {
    const lab = new FakeLab();
    const r = createDefaultRegistry({ allowFake: true, bindable: [fakeDriverFactory(lab)] });
    expect(r.names()).toEqual(['ipmi', 'redfish', 'fake']);
    const [d] = r.bindAll(['fake'], target('n4', { initial_power: 'on' }));
    expect(await d!.power!.getPower()).toBe('on');
    expect(lab.snapshot('n4').power).toBe('on');
  });

  it('allowed but not supplied (no lab wired in this process): the fake is known, refused at binding, saying why', () => {
    const r = createDefaultRegistry({ allowFake: true });
    expect(r.has('fake')).toBe(false);
    expect(r.knownNames()).toContain('fake');
    expect(() => r.bindAll(['fake'], target('n6'))).toThrow(/fake driver is not wired in this process/);
  });

  it('passes bad fake options up as a clear error', () => {
    const r = createDefaultRegistry({ allowFake: true, bindable: [fakeDriverFactory(new FakeLab())] });
    expect(() => r.bindAll(['fake'], target('n5', { power_delay: 'later' }))).toThrow(/fake driver options of node n5: power_delay/);
  });

  it('knows every built-in driver; ipmi and redfish are bindable', () => {
    const r = createDefaultRegistry({ allowFake: false });
    expect(r.knownNames()).toEqual(['ipmi', 'redfish', 'fake']);
    expect(r.names()).toEqual(['ipmi', 'redfish']);
    expect(Object.keys(r.definition('ipmi')!.settings.properties)).toEqual(
      expect.arrayContaining(['address', 'port', 'username', 'password_file', 'cipher_suite']),
    );
    expect(Object.keys(r.definition('redfish')!.settings.properties)).toEqual(
      expect.arrayContaining(['address', 'system_id', 'username', 'password_file', 'ca_file', 'insecure']),
    );
  });
});
