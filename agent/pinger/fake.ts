/**
 * The fake lab's pinger (tests and the demo, `liveness.engine: fake`): an address answers when the simulated server
 * that owns it is powered on and has an OS installed. Nothing leaves the process.
 */
import type { FakeLab } from '../../drivers/fake/lab.js';
import type { PingResult, Pinger } from '../ports.js';

export class FakeLabPinger implements Pinger {
  readonly engine = 'fake';
  constructor(
    private readonly lab: FakeLab,
    /** The node id owning an address, or null. */
    private readonly owner: (addr: string) => string | null,
  ) {}

  async ping(addrs: readonly string[]): Promise<PingResult[]> {
    return addrs.map((addr) => {
      const nodeId = this.owner(addr);
      const s = nodeId && this.lab.has(nodeId) ? this.lab.snapshot(nodeId) : null;
      const alive = s !== null && s.power === 'on' && s.osInstalled !== null && s.installing === null;
      return { addr, alive, rtt_ms: alive ? 0 : null };
    });
  }
}
