/**
 * Adoption: a node already running a tenant's OS (config or command) gets its instance, in running or stopped, from
 * a verified power read, with no install. It writes only through the recorder functions it is given.
 */
import type { PowerReading } from '../../drivers/power.js';
import type { Config } from '../config/types.js';
import type { Instance } from '../model.js';
import { transition, type StateEvent } from '../state-machine.js';
import type { Store } from '../store/types.js';
import type { Recorder } from './recorder.js';

/** The engine's record and journal functions adoption writes through. */
/** The recorder's methods adoption writes through (agent/operations/recorder.ts, the only writer). */
export type AdoptionRecorder = Pick<Recorder, 'journal' | 'insertInstance' | 'newAction' | 'appendEvent' | 'closeAction'>;

export interface AdoptionDeps {
  config: () => Config;
  store: Store;
  /** The current time, ISO 8601. */
  now: () => string;
  uuid: () => string;
  recorder: AdoptionRecorder;
}

export class Adoption {
  constructor(private readonly deps: AdoptionDeps) {}

  private get cfg(): Config {
    return this.deps.config();
  }
  private get store(): Store {
    return this.deps.store;
  }
  private get rec(): AdoptionRecorder {
    return this.deps.recorder;
  }
  private now(): string {
    return this.deps.now();
  }

  /**
   * Adoption: the instance enters running or stopped from a verified power read, with no install. Nothing when the
   * node has left the store, holds an instance or no longer waits for an adoption. Power sync calls it for every
   * node of a sweep inside one transaction of its own.
   */
  completeAdoption(nodeId: string, power: PowerReading): void {
    this.store.transaction(() => {
      const node = this.store.getNode(nodeId);
      const req = node?.adopt;
      if (!node || !req || node.instance_id) return;
      const now = this.now();
      const event: StateEvent = power === 'on' ? 'adopt-running' : 'adopt-stopped';
      const instance: Instance = {
        id: req.instance_id,
        project_id: req.project_id,
        user_id: req.user_id,
        name: req.name,
        description: null,
        node_id: node.id,
        instance_type_uuid: req.instance_type_uuid ?? null,
        image_uuid: req.image_uuid ?? null,
        availability_zone: null,
        networks: [],
        addresses: req.addresses.map((a) => ({ ...a, network_uuid: this.cfg.networks.find((n) => n.name === a.network)?.uuid })),
        metadata: req.metadata ?? {},
        extra: {},
        state: transition('new', event),
        operation_state: null,
        error: null,
        power_state: power,
        target_power_state: null,
        task: null,
        task_request_id: null,
        progress: 100,
        failed_operation: null,
        created_at: now,
        updated_at: now,
        launched_at: now,
        terminated_at: null,
      };
      this.rec.insertInstance(instance, { ...node, instance_id: instance.id, adopt: null, last_error: null, updated_at: now }, 'adopt');
      this.rec.journal('instance.state', { instance_id: instance.id, cause: 'adopt', data: { state: instance.state, event } });
      const requestId = req.request_id ?? `req-${this.deps.uuid()}`;
      const action = this.rec.newAction({ request_id: requestId, project_id: req.project_id, user_id: req.user_id, roles: [], is_admin: false }, instance, 'adopt');
      this.rec.appendEvent(action.request_id, instance.id, { event: 'read_power', start_time: now, finish_time: now, result: 'Success', traceback: null }, { power });
      this.rec.closeAction(action.request_id, null);
    });
  }
}
