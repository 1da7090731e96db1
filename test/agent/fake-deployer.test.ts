/** FakeLabDeployer hands the agent's job id and absolute deadline to the lab's installer (agent/fakes.ts). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeLabDeployer } from '../../agent/fakes.js';
import type { Node } from '../../agent/model.js';
import type { DeployJob, DeployOptions } from '../../agent/ports.js';
import { FakeLab } from '../../drivers/fake/lab.js';
import { bindFakes } from '../drivers/helpers.js';
import { ManualClock, untilSettled } from '../helpers/manual-clock.js';

const JOB: DeployJob = {
  operation: 'install',
  instance_id: 'inst-1',
  image: { uuid: 'img-1', name: 'debian-12', url: 'http://images.example/debian-12.img', sha256: 'a'.repeat(64), os: 'linux' },
  hostname: 'web-1',
  addresses: [],
  password_hash: null,
  ssh_keys: [],
  user_data: null,
};

describe('FakeLabDeployer', () => {
  it('passes the job id and the absolute deadline (lab clock) through: a second deploy with the id attaches', async () => {
    const clock = new ManualClock();
    const lab = new FakeLab({ now: clock.now, sleep: clock.sleep });
    const [d] = bindFakes(lab, 'dep-1', ['fake'], { install: '10s' });
    await d!.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' });
    await d!.power!.setPower('on');
    const deployer = new FakeLabDeployer(lab);
    const node = { id: 'dep-1', name: 'dep-1', bmc: { drivers: ['fake'] } } as unknown as Node;
    const t0 = clock.now();
    const opts = (deadlineAt: number, progress: number[] = []): DeployOptions => ({
      jobId: 'req-1/deploy',
      signal: new AbortController().signal,
      deadlineAt,
      onProgress: (p) => progress.push(p),
    });

    await expect(untilSettled(clock, deployer.deploy(node, JOB, opts(t0 + 4_000)))).rejects.toThrow(
      `installer did not finish by ${new Date(t0 + 4_000).toISOString()}`,
    );
    expect(lab.snapshot('dep-1').job).toMatchObject({ id: 'req-1/deploy', startedAt: t0, outcome: null });

    const progress: number[] = [];
    await untilSettled(clock, deployer.deploy(node, JOB, opts(t0 + 60_000, progress)));
    expect(progress).toEqual([40, 60, 80, 100]);
    expect(clock.now() - t0).toBe(10_000);
    expect(lab.snapshot('dep-1')).toMatchObject({ osInstalled: 'debian-12', job: { id: 'req-1/deploy', startedAt: t0, outcome: { ok: true } } });

    await untilSettled(clock, deployer.deploy(node, { ...JOB, operation: 'uninstall', image: null }, { ...opts(clock.now() + 60_000), jobId: 'req-2/wipe' }));
    expect(lab.snapshot('dep-1')).toMatchObject({ osInstalled: null, job: { id: 'req-2/wipe', operation: 'uninstall', imageName: null } });
  });

  it('after a restart, a deploy that is the first thing to reach the server attaches to the job its state_file keeps', async () => {
    const clock = new ManualClock();
    const dir = mkdtempSync(join(tmpdir(), 'metald-deployer-'));
    try {
      const fake = { install: '10s', state_file: join(dir, 'dep-2.json') };
      const node = { id: 'dep-2', name: 'dep-2', bmc: { drivers: ['fake'], fake } } as unknown as Node;
      const opts = (): DeployOptions => ({ jobId: 'req-3/deploy', signal: AbortSignal.abort(), deadlineAt: clock.now() + 60_000, onProgress: () => undefined });
      // The first agent's lab: the server is booted to the ramdisk, the job handed over, then the agent goes away.
      const first = new FakeLab({ now: clock.now, sleep: clock.sleep });
      const [d] = bindFakes(first, 'dep-2', ['fake'], fake);
      await d!.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' });
      await d!.power!.setPower('on');
      const t0 = clock.now();
      await expect(new FakeLabDeployer(first).deploy(node, JOB, opts())).rejects.toThrow(/installer aborted/);
      // The restarted agent's lab knows no server yet: the deployer creates it from the node's options.
      const second = new FakeLab({ now: clock.now, sleep: clock.sleep });
      await untilSettled(clock, new FakeLabDeployer(second).deploy(node, JOB, { ...opts(), signal: new AbortController().signal }));
      expect(second.snapshot('dep-2')).toMatchObject({ osInstalled: 'debian-12', job: { id: 'req-3/deploy', startedAt: t0, outcome: { ok: true } } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
