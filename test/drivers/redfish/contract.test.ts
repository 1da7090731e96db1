/**
 * The driver contract (test/drivers/contract.ts) run on the redfish driver against the scripted HTTPS BMC, through
 * drivers/bmc.ts: power with verification, boot override read-back, media, inventory, and the errors that prove
 * nothing was sent (a BMC not listening, a refused password).
 */
import { afterAll } from 'vitest';
import {
  REDFISH_BOOT_DEVICE,
  REDFISH_RESET_COMMAND,
  runBootContract,
  runErrorContract,
  runInventoryContract,
  runMediaContract,
  runPowerContract,
  type ContractPeer,
  type MakeSubject,
} from '../contract.js';
import { ScriptedBmc } from './scripted-bmc.js';
import { bindTo } from './setup.js';
import { makeTestPki, type TestPki } from './tls.js';

let pki: TestPki | null = null;
afterAll(() => pki?.cleanup());

const RESET = '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset';

/** The scripted BMC's own state and request log, in the contract's words. */
function scriptedPeer(bmc: ScriptedBmc): ContractPeer {
  return {
    power: () => Promise.resolve(bmc.power === 'On' ? 'on' : 'off'),
    powerLog: () =>
      Promise.resolve(
        bmc.seen
          .filter((s) => s.method === 'POST' && s.path === RESET)
          .map((s) => (JSON.parse(s.body) as { ResetType: string }).ResetType)
          .filter((t) => bmc.resets === null || bmc.resets.includes(t))
          .map((t) => REDFISH_RESET_COMMAND[t] ?? 'other'),
      ),
    boot: () =>
      Promise.resolve(
        bmc.boot['BootSourceOverrideEnabled'] === 'Disabled'
          ? null
          : {
              device: REDFISH_BOOT_DEVICE[String(bmc.boot['BootSourceOverrideTarget'])],
              persistent: bmc.boot['BootSourceOverrideEnabled'] === 'Continuous',
              mode: bmc.boot['BootSourceOverrideMode'] === 'UEFI' ? 'uefi' : 'legacy',
            },
      ),
    media: () => Promise.resolve(bmc.media.Inserted ? bmc.media.Image : null),
  };
}

function makeRedfish(shape: (bmc: ScriptedBmc) => void = () => undefined, prime = true): MakeSubject {
  return async ({ power }) => {
    pki ??= makeTestPki();
    const bmc = await ScriptedBmc.start(pki);
    bmc.power = power === 'on' ? 'On' : 'Off';
    shape(bmc);
    const bound = bindTo(bmc, pki);
    // What the BMC offers is known after the first read of the system, as in the daemon, which reads every node's
    // power before it takes work (design 5).
    if (prime) await bound.driver.power!.getPower();
    return {
      driver: bound.driver,
      peer: scriptedPeer(bmc),
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
