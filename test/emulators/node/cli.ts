/**
 * The node emulator as a process of its own, for ipmi_sim's chassis_control program (test/emulators/chassis-control.sh,
 * node mode): `node cli.js STATE_DIR DEVICE` is a server that has just been powered on and boots from DEVICE (`pxe`,
 * `cdrom`, anything else: its disk), with the settings of STATE_DIR/node.json (test/emulators/node/node.ts
 * NodeSettings). Its doings are appended to STATE_DIR/node.log, one JSON line each. When its installer exits it
 * powers the server off (STATE_DIR/power to 0) and exits; SIGTERM is a power off (a running installer is killed).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmulatedNode, parseNodeSettings, type NodeEvent } from './node.js';

const [dir, device] = process.argv.slice(2);
if (!dir || !device) {
  console.error('usage: cli.js STATE_DIR DEVICE');
  process.exit(2);
}
const settings = parseNodeSettings(JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8')) as unknown);
const log = (e: NodeEvent) => appendFileSync(join(dir, 'node.log'), `${JSON.stringify({ ...e, at: Date.now() })}\n`);
const node = new EmulatedNode(settings, log, () => {
  writeFileSync(join(dir, 'power'), '0\n');
  log({ what: 'powered-off' });
  process.exit(0);
});
process.once('SIGTERM', () => {
  node.off();
  process.exit(0);
});
node.boot(device === 'pxe' ? 'Pxe' : device === 'cdrom' ? 'Cd' : 'Hdd', null);
// A booted server stays on until it is powered off.
setInterval(() => undefined, 1 << 30);
