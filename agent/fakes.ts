/**
 * Every fake of the agent, wired in one place: the fake lab (simulated servers, shared by the fake driver and the
 * fake installer), its pinger (`liveness.engine: fake`), its installer, and the fake-faults route hook. Only
 * agent/build-agent.ts loads this module, with a dynamic `import()` and only when `allow_fake_drivers` is set:
 * production wiring never evaluates it (test/agent/fakes.test.ts proves it).
 */
import { fakeDriverFactory, fakeOptions } from '../drivers/fake/index.js';
import type { DriverFactory } from '../drivers/types.js';
import { FakeLab } from '../drivers/fake/lab.js';
import type { Node } from './model.js';
import type { DeployJob, DeployOptions, Deployer, PingResult, Pinger } from './ports.js';
import type { Store } from './store/types.js';

/** The fake lab's pinger: an address answers when the OS of the simulated server that owns it is up (FakeServerSnapshot.osUp). */
export class FakeLabPinger implements Pinger {
  readonly engine = 'fake';
  constructor(
    private readonly lab: FakeLab,
    /** The node id owning an address, or null. */
    private readonly owner: (addr: string) => string | null,
    /**
     * A fake-driven node's options (null for any other node): its server is created from them if nothing reached it
     * yet (after a restart, a resumed confirmation may be the first).
     */
    private readonly optionsOf: (nodeId: string) => Record<string, unknown> | undefined | null = () => null,
  ) {}

  async ping(addrs: readonly string[]): Promise<PingResult[]> {
    return addrs.map((addr) => {
      const nodeId = this.owner(addr);
      const options = nodeId && !this.lab.has(nodeId) ? this.optionsOf(nodeId) : null;
      const s = nodeId && (this.lab.has(nodeId) || options !== null) ? this.lab.server(nodeId, options ?? undefined).snapshot() : null;
      const alive = s !== null && s.osUp;
      return { addr, alive, rtt_ms: alive ? 0 : null };
    });
  }
}

/** The fake lab's simulated installer, for fake-driven nodes (chosen by DeployerRouter). */
export class FakeLabDeployer implements Deployer {
  constructor(private readonly lab: FakeLab) {}

  /** The simulated server needs no boot artefacts: its job starts with the deploy (attached to by id). */
  async prepare(): Promise<void> {}

  /** The simulated installer's job ends with its deploy's abort (the runner aborts it before a revoke). */
  async revoke(): Promise<void> {}

  /**
   * Runs the job on the node's simulated server, or attaches to the one it already runs with `opts.jobId` (the agent
   * restarted while it installed). `deadlineAt` is on the lab's clock, which the agent shares. An uninstall also
   * wipes the disk once it succeeded.
   */
  async deploy(node: Node, job: DeployJob, opts: DeployOptions): Promise<void> {
    const uninstall = job.operation === 'uninstall';
    // The node's simulated server, created from its options (its state_file) if no BMC call came first: after a
    // restart the resumed deploy may be the first thing to reach it.
    this.lab.server(node.id, fakeOptions(node.bmc));
    await this.lab.deploy(node.id, opts.jobId, { operation: job.operation, imageName: uninstall ? null : (job.image?.name ?? null) }, {
      signal: opts.signal,
      deadlineAt: opts.deadlineAt,
      onProgress: opts.onProgress,
    });
    if (uninstall) this.lab.wipe(node.id);
  }
}

/**
 * The node id of the live instance that owns an address, or null. A modify-ip in flight: the server being installed
 * already owns its new addresses. One index probe (Store.addressHolder), whatever the number of instances.
 */
export function ownerOfAddress(store: Pick<Store, 'addressHolder'>, addr: string): string | null {
  return store.addressHolder(addr)?.node_id ?? null;
}

export interface Fakes {
  readonly lab: FakeLab;
  /** The bindable fake driver, simulating its servers in `lab` (drivers/registry.ts knows only its settings). */
  readonly driver: DriverFactory;
  readonly pinger: Pinger;
  readonly deployer: Deployer;
  /** The `PUT /v1/nodes/{id}/fake-faults` hook: sets a simulated server's faults. */
  fakeFaults(nodeId: string, faults: Record<string, unknown>): void;
}

/** @param lab the lab to use (tests pass one on their manual clock); a new one when absent. */
export function wireFakes(store: Store, lab: FakeLab = new FakeLab()): Fakes {
  return {
    lab,
    driver: fakeDriverFactory(lab),
    pinger: new FakeLabPinger(lab, (addr) => ownerOfAddress(store, addr), (nodeId) => {
      const bmc = store.getNode(nodeId)?.bmc;
      return bmc?.drivers.includes('fake') ? fakeOptions(bmc) : null;
    }),
    deployer: new FakeLabDeployer(lab),
    fakeFaults(nodeId, faults) {
      lab.server(nodeId, fakeOptions(store.getNode(nodeId)?.bmc)).setFaults(faults as never);
    },
  };
}
