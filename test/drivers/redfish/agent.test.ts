/**
 * The redfish driver inside a real agent (test/helpers/harness.ts, built in-process): agent/build-agent.ts hands it
 * the undici HTTP port, and the node power API reaches the scripted HTTPS BMC: a verified power on, a 406 for an
 * action the BMC lists no ResetType for (nothing sent), and the session logged out and the connection closed when the
 * agent stops.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, nodeId, startHarness, type Harness } from '../../helpers/harness.js';
import { PASSWORD, ScriptedBmc } from './scripted-bmc.js';
import { makeTestPki, type TestPki } from './tls.js';

const RESET = '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset';

describe('redfish driver in the agent', () => {
  let pki: TestPki;
  let bmc: ScriptedBmc | null = null;
  let h: Harness | null = null;
  beforeAll(() => {
    pki = makeTestPki();
    writeFileSync(join(pki.dir, 'bmc-password'), `${PASSWORD}\n`, { mode: 0o600 });
  });
  afterAll(() => pki.cleanup());
  afterEach(async () => {
    await h?.close();
    await bmc?.close();
    h = null;
    bmc = null;
  });

  async function start(shape: (b: ScriptedBmc) => void = () => undefined): Promise<Harness> {
    bmc = await ScriptedBmc.start(pki);
    shape(bmc);
    const origin = bmc.origin;
    h = await startHarness({
      nodes: 1,
      editConfig: (yaml) =>
        yaml.replace(
          /bmc: \{driver: fake, address: "fake:\/\/node-1", fake: .*\}/,
          `bmc: {driver: redfish, address: "${origin}", username: admin, password_file: ${join(pki.dir, 'bmc-password')}, ca_file: ${pki.caFile}}`,
        ),
    });
    return h;
  }

  const putPower = (agent: Harness, target: string) =>
    agent.agent.api.inject({
      method: 'PUT',
      url: `/v1/nodes/${nodeId(1)}/states/power`,
      headers: { 'x-auth-token': ADMIN_TOKEN, 'content-type': 'application/json' },
      payload: JSON.stringify({ target }),
    });

  it('PUT power on reaches the BMC (On), is verified, and the session is logged out at stop', async () => {
    const agent = await start();
    const res = await putPower(agent, 'power on');
    expect(res.statusCode).toBe(202);
    await agent.agent.engine.idle();
    expect(bmc!.power).toBe('On');
    const resets = bmc!.seen.filter((s) => s.path === RESET).map((s) => JSON.parse(s.body) as unknown);
    expect(resets).toEqual([{ ResetType: 'On' }]);
    expect(bmc!.sessions.size).toBe(1);
    await agent.close();
    h = null;
    expect(bmc!.sessions.size).toBe(0);
    expect(bmc!.calls().at(-1)).toMatch(/^DELETE \/redfish\/v1\/SessionService\/Sessions\//);
    // The HTTP port's keep-alive pools are closed too: nothing of the agent stays connected to the BMC.
    for (let i = 0; i < 50 && bmc!.openConnections > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(bmc!.openConnections).toBe(0);
  });

  it('soft power off on a BMC without GracefulShutdown is 406 and nothing is sent', async () => {
    const agent = await start((b) => {
      b.power = 'On';
      b.resets = ['On', 'ForceOff'];
    });
    await agent.agent.engine.idle();
    const res = await putPower(agent, 'soft power off');
    expect(res.statusCode).toBe(406);
    expect(bmc!.seen.filter((s) => s.path === RESET)).toEqual([]);
    expect(bmc!.power).toBe('On');
  });
});
