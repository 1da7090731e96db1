/**
 * The driver contract (test/drivers/contract.ts) run on the redfish driver against the scripted HTTPS BMC, through
 * drivers/bmc.ts: power with verification, boot override read-back, media, inventory, and the errors that prove
 * nothing was sent (a BMC not listening, a refused password).
 */
import { afterAll } from 'vitest';
import { runBootContract, runErrorContract, runInventoryContract, runMediaContract, runPowerContract, type MakeSubject } from '../contract.js';
import { ScriptedBmc } from './scripted-bmc.js';
import { bindTo } from './setup.js';
import { makeTestPki, type TestPki } from './tls.js';

let pki: TestPki | null = null;
afterAll(() => pki?.cleanup());

function makeRedfish(shape: (bmc: ScriptedBmc) => void = () => undefined, prime = true): MakeSubject {
  return async () => {
    pki ??= makeTestPki();
    const bmc = await ScriptedBmc.start(pki);
    shape(bmc);
    const bound = bindTo(bmc, pki);
    // What the BMC offers is known after the first read of the system, as in the daemon, which reads every node's
    // power before it takes work (design 5).
    if (prime) await bound.driver.power!.getPower();
    return {
      driver: bound.driver,
      cleanup: async () => {
        await bound.close();
        await bmc.close();
      },
    };
  };
}

const legacy = (bmc: ScriptedBmc) => void (bmc.boot['BootSourceOverrideMode'] = 'Legacy');

runPowerContract('redfish (scripted BMC)', makeRedfish());
runPowerContract('redfish without GracefulShutdown', makeRedfish((b) => void (b.resets = ['On', 'ForceOff', 'ForceRestart'])));
runBootContract('redfish (scripted BMC)', makeRedfish(legacy));
runMediaContract('redfish (scripted BMC)', makeRedfish());
runInventoryContract('redfish (scripted BMC)', makeRedfish());
runErrorContract('redfish (scripted BMC)', {
  // A BMC that stopped listening: its port refuses connections.
  unreachable: async () => {
    pki ??= makeTestPki();
    const bmc = await ScriptedBmc.start(pki);
    const bound = bindTo(bmc, pki);
    await bmc.close();
    return { driver: bound.driver, cleanup: () => bound.close() };
  },
  badAuth: makeRedfish((b) => b.on('POST', '/redfish/v1/SessionService/Sessions', () => ({ status: 401, body: {} })), false),
});
