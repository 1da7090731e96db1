/**
 * Builds and caches each node's Bmc handle from its stored settings: the registry binds the node's ordered driver
 * names to its settings (opaque here: the drivers' schemas give them meaning), a secret is read from its file at call
 * time (so a rotated secret is picked up after SIGHUP), and one
 * BmcLock is shared by every handle of the process.
 */
import { BmcError } from '../drivers/errors.js';
import { createBmc, type BmcCallObserver } from '../drivers/bmc.js';
import { BmcLock, bmcLockKey } from '../drivers/bmc-lock.js';
import type { DriverRegistry } from '../drivers/registry.js';
import type { Bmc, BmcTarget } from '../drivers/types.js';
import type { Config } from './config/types.js';
import type { SecretFiles } from './config/secrets.js';
import type { Node } from './model.js';
import type { BmcProvider, Clock } from './ports.js';

/** A node whose drivers cannot be bound: every call fails with the binding error (nothing was sent). */
function unavailableBmc(nodeId: string, error: BmcError): Bmc {
  const fail = () => Promise.reject(error);
  return {
    nodeId,
    supports: () => false,
    readPower: fail,
    setPower: fail,
    setBoot: fail,
    clearBoot: fail,
    insertMedia: fail,
    ejectMedia: fail,
    close: () => Promise.resolve(),
  };
}

export class RegistryBmcProvider implements BmcProvider {
  private readonly cache = new Map<string, { key: string; bmc: Bmc }>();
  /** One command at a time per BMC, with the configured gap: timed on the agent's clock, like every other wait. */
  private readonly lock: BmcLock;

  constructor(
    private readonly registry: DriverRegistry,
    private readonly secrets: SecretFiles,
    private readonly config: () => Config,
    private readonly clock: Clock,
    /** Every handle's `onCall` (the BMC metrics, agent/api/metrics-bmc.ts). */
    private readonly onCall?: BmcCallObserver,
  ) {
    this.lock = new BmcLock({ now: () => clock.now(), sleep: (ms, signal) => clock.sleep(ms, signal) });
  }

  forNode(node: Node): Bmc {
    const key = JSON.stringify(node.bmc);
    const hit = this.cache.get(node.id);
    if (hit && hit.key === key) return hit.bmc;
    if (hit) void hit.bmc.close().catch(() => undefined);
    // The settings are the driver's (validated by its schema at config load): passed through, never interpreted.
    const { drivers, ...settings } = node.bmc;
    const target: BmcTarget = {
      nodeId: node.id,
      settings,
      secret: async (key) => {
        const file = settings[key];
        return typeof file === 'string' ? this.secrets.read(file) : null;
      },
    };
    const cfg = this.config();
    let bmc: Bmc;
    try {
      bmc = createBmc(node.id, this.registry.bindAll(drivers, target), {
        lock: this.lock,
        lockKey: bmcLockKey(settings),
        minGapMs: cfg.bmc.min_gap_ms,
        callTimeoutMs: cfg.timeouts.bmc_call_ms,
        wait: { delaysMs: cfg.power_poll_ms, deadlineMs: cfg.timeouts.power_ms },
        sleep: (ms, signal) => this.clock.sleep(ms, signal),
        ...(this.onCall ? { onCall: this.onCall } : {}),
      });
    } catch (e) {
      const err = e instanceof BmcError ? e : new BmcError('BMC_ERR_UNSUPPORTED', 'registry', e instanceof Error ? e.message : String(e));
      bmc = unavailableBmc(node.id, err);
    }
    this.cache.set(node.id, { key, bmc });
    return bmc;
  }

  async invalidate(nodeId?: string): Promise<void> {
    const ids = nodeId ? [nodeId] : [...this.cache.keys()];
    await Promise.allSettled(
      ids.map((id) => {
        const hit = this.cache.get(id);
        this.cache.delete(id);
        return hit?.bmc.close();
      }),
    );
  }
}
