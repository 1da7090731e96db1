/**
 * metald itself (dist/agent/main.js, a child process) on a config whose nodes name the ipmi driver and point at real
 * ipmi_sim BMCs: a power change asked over HTTP reaches the BMC (its own chassis log shows the command, once) and
 * the instance reads as the BMC says. The BMC password, in its password_file, appears in no output of the daemon.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_TOKEN, ADOPTED_ID, MEMBER_TOKEN, PROJECT, nodeId, writeConfig } from '../../helpers/harness.js';
import { startIpmiSims, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';

const PASSWORD = 'Kp4-e2e-bmc-pw';
let daemon: Daemon | undefined;
let sims: IpmiSim[] = [];
let configDir: string | undefined;
const secrets = mkdtempSync(join(tmpdir(), 'metald-ipmi-e2e-'));
const pwFile = join(secrets, 'bmc.pw');

const ipmiBmc = (sim: IpmiSim, pwFile: string) =>
  `bmc: {driver: ipmi, address: ${sim.host}, port: ${sim.port}, username: ${sim.username}, password_file: ${pwFile}, retries: 1, retry_timeout_s: 1}`;

beforeAll(async () => {
  sims = await startIpmiSims(2, { password: PASSWORD, power: 'on' });
  const [adopted, free] = sims as [IpmiSim, IpmiSim];
  writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
  const { dir, configPath } = writeConfig({
    nodes: 1,
    adopt: true,
    power: '5s',
    editConfig: (yaml) =>
      yaml
        .replace(/bmc: \{driver: fake, address: "fake:\/\/node-1", fake: .*\}/, ipmiBmc(free, pwFile))
        .replace(/bmc: \{driver: fake, address: "fake:\/\/node-2", fake: .*\}/, ipmiBmc(adopted, pwFile)),
  });
  configDir = dir;
  daemon = await startDaemon(configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await stopAllIpmiSims();
  rmSync(secrets, { recursive: true, force: true });
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

describe('metald on ipmi_sim BMCs', () => {
  it('PUT /v1/instances/{id}/states/power off, then on: each command reaches the BMC once, verified', async () => {
    const d = daemon!;
    const [adopted] = sims as [IpmiSim];
    const show = async () =>
      (await d.call('GET', `/v1/${PROJECT}/instances/${ADOPTED_ID}/status`, MEMBER_TOKEN)).body as { state?: string; operation_state?: string | null };
    const settled = (state: string) => async () => {
      const s = await show();
      return s.state === state && !(s.operation_state ?? '').endsWith('-processing');
    };

    const off = await d.call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, MEMBER_TOKEN, { target: 'power off' });
    expect(off.status, off.text).toBe(202);
    await waitFor(settled('stopped'), 15_000, 'the instance stopped').catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await show())} ${JSON.stringify(await adopted.log())}`);
    });
    expect(await adopted.power()).toBe('off');
    expect(await adopted.log()).toEqual(['power 0']);

    const on = await d.call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, MEMBER_TOKEN, { target: 'power on' });
    expect(on.status, on.text).toBe(202);
    await waitFor(settled('running'), 15_000, 'the instance running').catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await show())} ${JSON.stringify(await adopted.log())}`);
    });
    expect(await adopted.power()).toBe('on');
    expect(await adopted.log()).toEqual(['power 0', 'power 1']);

    expect(await sims[1]!.log()).toEqual([]);
    expect(d.stdout() + d.stderr()).not.toContain(PASSWORD);
  });

  it('the node power API reaches the free node\'s BMC', async () => {
    const d = daemon!;
    const free = sims[1]!;
    const r = await d.call('PUT', `/v1/nodes/${nodeId(1)}/states/power`, ADMIN_TOKEN, { target: 'power off' });
    expect(r.status, r.text).toBe(202);
    await waitFor(async () => (await free.log()).length > 0 && (await free.power()) === 'off', 15_000, 'the free node powered off');
    expect(await free.log()).toEqual(['power 0']);
  });
});
