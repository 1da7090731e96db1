/** Shared helpers of the driver tests. */
import { createBmc, type BmcHandle, type CreateBmcOptions } from '../../drivers/bmc.js';
import { BmcLock } from '../../drivers/bmc-lock.js';
import { fakeDriverFactory } from '../../drivers/fake/index.js';
import { FakeLab } from '../../drivers/fake/lab.js';
import { defaultDriverPorts } from '../../drivers/ports.js';
import type { BmcTarget, BoundDriver } from '../../drivers/types.js';

let seq = 0;

export function nextNodeId(prefix = 'node'): string {
  seq += 1;
  return `${prefix}-${seq}`;
}

export function target(nodeId: string, options: Record<string, unknown> = {}): BmcTarget {
  return { nodeId, settings: { address: '127.0.0.1', port: 623, fake: options }, secret: () => Promise.resolve(null) };
}

/** Fake drivers bound to one simulated server, one per name, in order. */
export function bindFakes(lab: FakeLab, nodeId: string, names: string[], options: Record<string, unknown> = {}): BoundDriver[] {
  return names.map((n) => fakeDriverFactory(lab, n).create(target(nodeId, options), defaultDriverPorts));
}

export function fastBmc(nodeId: string, drivers: BoundDriver[], over: Partial<CreateBmcOptions> = {}): BmcHandle {
  return createBmc(nodeId, drivers, {
    lock: new BmcLock(),
    minGapMs: 0,
    callTimeoutMs: 1_000,
    wait: { delaysMs: [2, 5], deadlineMs: 300 },
    ...over,
  });
}

export { FakeLab };
