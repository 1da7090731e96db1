/** The ipmi driver's settings: where the BMC is, the retry policy's bounds, and the ports it needs. */
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { IPMI_SETTINGS, ipmiDriver, ipmiEndpoint } from '../../../drivers/ipmi/index.js';
import { defaultDriverPorts } from '../../../drivers/ports.js';
import { createDefaultRegistry } from '../../../drivers/registry.js';

const base = { address: '10.0.1.21', username: 'admin', password_file: '/p' };

describe('ipmi settings', () => {
  it.each([
    [{ address: '10.0.1.21' }, { host: '10.0.1.21', port: 623 }],
    [{ address: 'bmc-1.example', port: 6230 }, { host: 'bmc-1.example', port: 6230 }],
    [{ address: 'ipmi://bmc-1.example:7000' }, { host: 'bmc-1.example', port: 7000 }],
    [{ address: 'ipmi://bmc-1.example:7000', port: 6230 }, { host: 'bmc-1.example', port: 6230 }],
    [{ address: 'https://[fd00::21]/' }, { host: 'fd00::21', port: 623 }],
  ])('endpoint of %j', (s, want) => expect(ipmiEndpoint(s)).toEqual(want));

  it('takes the retry policy within bounds only', () => {
    expect(Value.Check(IPMI_SETTINGS, { ...base, cipher_suite: 17, retries: 1, retry_timeout_s: 1 })).toBe(true);
    for (const bad of [{ retries: 0 }, { retries: 11 }, { retry_timeout_s: 0 }, { retry_timeout_s: 1.5 }, { cipher_suite: 18 }]) {
      expect(Value.Check(IPMI_SETTINGS, { ...base, ...bad }), JSON.stringify(bad)).toBe(false);
    }
  });

  it('is bindable in the default registry, and refuses to bind without a process runner', () => {
    expect(createDefaultRegistry({ allowFake: false }).names()).toContain('ipmi');
    const target = { nodeId: 'n1', settings: base, secret: () => Promise.resolve('pw') };
    expect(() => ipmiDriver.create(target, defaultDriverPorts)).toThrow(/needs a process runner/);
  });
});
