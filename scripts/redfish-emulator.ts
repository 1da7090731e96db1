/**
 * Builds the Redfish BMC emulator into dist/ with `npm run build` (tsconfig.build.json compiles scripts/, and this
 * import brings test/emulators/redfish/ along): `node dist/scripts/redfish-emulator.js --systems 8` is the same
 * program as `node dist/test/emulators/redfish/main.js`. See docs/emulators.md.
 */
import '../test/emulators/redfish/main.js';
