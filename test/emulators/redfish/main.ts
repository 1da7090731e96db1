/** Standalone Redfish BMC emulator: `node dist/test/emulators/redfish/main.js --systems 8 --tls-dir DIR` (cli.ts). */
import { runEmulatorCli } from './cli.js';

await runEmulatorCli(process.argv.slice(2));
