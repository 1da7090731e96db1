/**
 * A BMC that reverts a boot override AFTER the driver's own read-back (the Redfish emulator's revertBootAfterMs, the
 * real redfish driver on undici, the drivers/bmc.ts chain): the chain's read-back then finds the override gone
 * (`BootSourceOverrideEnabled: Disabled`, not a setting metald can set). That is the BMC not keeping the override,
 * BMC_ERR_BOOT_FLAGS_IGNORED, not a failed read (BMC_ERR_VERIFY_FAILED). Seen first as a flaky fault e2e
 * (test/e2e/faults/redfish-faults.e2e.test.ts, revertBootAfterMs: 0): which read saw the revert was a race; here
 * the driver's setBoot is held until the revert happened, so the chain's read always sees it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBmc } from '../../../drivers/bmc.js';
import { BmcLock } from '../../../drivers/bmc-lock.js';
import { UndiciHttpClient } from '../../../drivers/http.js';
import { defaultDriverPorts } from '../../../drivers/ports.js';
import { redfishDriver } from '../../../drivers/redfish/index.js';
import type { BoundDriver } from '../../../drivers/types.js';
import { startRedfishEmulator, type RedfishEmulator } from '../../emulators/redfish/server.js';

const PASSWORD = 'revert-pw-1';
let emu: RedfishEmulator | undefined;
let http: UndiciHttpClient | undefined;
let driver: BoundDriver | undefined;

afterEach(async () => {
  await driver?.close?.();
  await http?.close();
  await emu?.close();
});

describe('a boot override reverted after the driver read it back', () => {
  it('is BMC_ERR_BOOT_FLAGS_IGNORED from the chain, and the emulator logged the revert', async () => {
    emu = await startRedfishEmulator({ systems: 1, password: PASSWORD, power: 'Off', faults: { revertBootAfterMs: 300 } });
    http = new UndiciHttpClient();
    driver = redfishDriver.create(
      {
        nodeId: 'revert-node',
        settings: { address: emu.url, insecure: true, username: 'admin', password_file: '/unused' },
        secret: (k) => Promise.resolve(k === 'password_file' ? PASSWORD : null),
      },
      { ...defaultDriverPorts, http },
    );
    const real = driver.boot!;
    // The driver's own read-back runs at once (well inside 300 ms); the chain reads after the revert (600 ms).
    const held: BoundDriver = {
      ...driver,
      boot: { ...real, setBoot: async (s, o) => { await real.setBoot(s, o); await new Promise((r) => setTimeout(r, 600)); } },
    };
    const bmc = createBmc('revert-node', [held], { lock: new BmcLock(), minGapMs: 0, callTimeoutMs: 2_000, wait: { delaysMs: [20], deadlineMs: 500 } });
    await expect(bmc.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' })).rejects.toMatchObject({
      code: 'BMC_ERR_BOOT_FLAGS_IGNORED',
      driver: 'redfish',
      message: expect.stringMatching(/not kept via redfish: the BMC holds no boot override/),
    });
    const kinds = emu.model.dump(emu.model.systems.get('sys-1')!).commands.map((c) => c.kind);
    expect(kinds).toEqual(['boot-override', 'boot-revert']);
  });
});
