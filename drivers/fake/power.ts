/**
 * Fake power: translates PowerDriver calls to the simulated BMC (lab.ts).
 * - `on` when on and `off` when off succeed (and are still logged as received).
 * - `reboot`/`soft-reboot` of an OFF server power it on (choice: like BMCs that treat a reset of an off chassis as
 *   power-up; the caller wanted a server that runs afterwards). Of an ON server they reset it after `power_delay`;
 *   power reads on throughout, so verification is "reads on after the command" (drivers/bmc.ts).
 * - `soft-off` and `soft-reboot` exist only with `supports_soft: true` (the default); else BMC_ERR_UNSUPPORTED.
 */
import type { PowerDriver } from '../types.js';
import type { FakeServer } from './lab.js';

export function createFakePower(server: FakeServer, via: string): PowerDriver {
  return {
    getPower: (opts) => server.getPower(via, opts?.signal),
    setPower: (action, opts) => server.setPower(via, action, opts?.signal),
    supportedPowerActions: () => server.supportedPowerActions(),
  };
}
