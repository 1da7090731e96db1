/**
 * The boot server's installer jobs (migration 9): rows of `boot_jobs`, and `boot_job_macs` that finds the job waiting
 * for a MAC. Reads and writes go through the store's wrappers (errors become StoreError, writes are atomic and pass
 * the fault injector as `putBootJob`).
 */
import type Database from 'better-sqlite3';
import { json } from './rows.js';
import type { BootJob, BootJobState, BootJobStore } from './types.js';

interface Row {
  job_id: string;
  token: string;
  node_id: string;
  instance_id: string;
  operation: string;
  document: string;
  state: string;
  progress: number;
  message: string | null;
  deadline_at: number;
  created_at: string;
  updated_at: string;
  macs: string | null;
}

const COLUMNS = `j.job_id, j.token, j.node_id, j.instance_id, j.operation, j.document, j.state, j.progress, j.message, j.deadline_at,
  j.created_at, j.updated_at, (SELECT group_concat(mac, ',') FROM boot_job_macs m WHERE m.job_id = j.job_id) AS macs`;

/** The newest jobs of a node kept (a late report of one is refused by its state); older finished ones are removed. */
export const KEEP_PER_NODE = 4;

export interface StoreAccess {
  read<T>(op: string, fn: () => T): T;
  write<T>(fn: () => T): T;
}

export class BootJobTable implements BootJobStore {
  private readonly byIdStmt;
  private readonly byTokenStmt;
  private readonly forMacStmt;
  private readonly openOfInstanceStmt;
  private readonly openOfNodeStmt;
  private readonly upsertStmt;
  private readonly insertMacStmt;
  private readonly dropFinishedStmt;

  constructor(
    db: Database.Database,
    private readonly access: StoreAccess,
  ) {
    this.byIdStmt = db.prepare<[string], Row>(`SELECT ${COLUMNS} FROM boot_jobs j WHERE j.job_id = ?`);
    this.byTokenStmt = db.prepare<[string], Row>(`SELECT ${COLUMNS} FROM boot_jobs j WHERE j.token = ?`);
    this.forMacStmt = db.prepare<[string], Row>(
      `SELECT ${COLUMNS} FROM boot_job_macs k JOIN boot_jobs j ON j.job_id = k.job_id
        WHERE k.mac = ? AND j.state = 'issued' ORDER BY j.created_at DESC, j.job_id DESC LIMIT 1`,
    );
    this.openOfInstanceStmt = db.prepare<[string], Row>(
      `SELECT ${COLUMNS} FROM boot_jobs j WHERE j.instance_id = ? AND j.state IN ('issued', 'fetched') ORDER BY j.created_at, j.job_id`,
    );
    this.openOfNodeStmt = db.prepare<[string], Row>(
      `SELECT ${COLUMNS} FROM boot_jobs j WHERE j.node_id = ? AND j.state IN ('issued', 'fetched') ORDER BY j.created_at, j.job_id`,
    );
    this.upsertStmt = db.prepare(
      `INSERT INTO boot_jobs (job_id, token, node_id, instance_id, operation, document, state, progress, message, deadline_at, created_at, updated_at)
       VALUES (@job_id, @token, @node_id, @instance_id, @operation, @document, @state, @progress, @message, @deadline_at, @created_at, @updated_at)
       ON CONFLICT(job_id) DO UPDATE SET state = excluded.state, progress = excluded.progress, message = excluded.message,
         deadline_at = excluded.deadline_at, updated_at = excluded.updated_at`,
    );
    this.insertMacStmt = db.prepare<[string, string]>('INSERT OR IGNORE INTO boot_job_macs (mac, job_id) VALUES (?, ?)');
    this.dropFinishedStmt = db.prepare<{ node: string; keep: number }>(
      `DELETE FROM boot_jobs WHERE node_id = @node AND state NOT IN ('issued', 'fetched') AND job_id NOT IN
         (SELECT job_id FROM boot_jobs WHERE node_id = @node ORDER BY created_at DESC, job_id DESC LIMIT @keep)`,
    );
  }

  get(jobId: string): BootJob | null {
    return this.access.read('bootJobs.get', () => fromRow(this.byIdStmt.get(jobId)));
  }

  byToken(token: string): BootJob | null {
    return this.access.read('bootJobs.byToken', () => fromRow(this.byTokenStmt.get(token)));
  }

  issuedForMac(mac: string): BootJob | null {
    return this.access.read('bootJobs.issuedForMac', () => fromRow(this.forMacStmt.get(mac.toLowerCase())));
  }

  openOfInstance(instanceId: string): BootJob[] {
    return this.access.read('bootJobs.openOfInstance', () => this.openOfInstanceStmt.all(instanceId).map((r) => fromRow(r)!));
  }

  openOfNode(nodeId: string): BootJob[] {
    return this.access.read('bootJobs.openOfNode', () => this.openOfNodeStmt.all(nodeId).map((r) => fromRow(r)!));
  }

  put(job: BootJob): void {
    this.access.write(() => {
      const fresh = this.byIdStmt.get(job.job_id) === undefined;
      this.upsertStmt.run({ ...job, document: json(job.document) });
      if (fresh) {
        this.dropFinishedStmt.run({ node: job.node_id, keep: KEEP_PER_NODE });
        for (const mac of new Set(job.macs.map((m) => m.toLowerCase()))) this.insertMacStmt.run(mac, job.job_id);
      }
    });
  }
}

function fromRow(r: Row | undefined): BootJob | null {
  if (!r) return null;
  return {
    job_id: r.job_id,
    token: r.token,
    node_id: r.node_id,
    instance_id: r.instance_id,
    operation: r.operation,
    macs: r.macs ? r.macs.split(',').sort() : [],
    document: JSON.parse(r.document) as Record<string, unknown>,
    state: r.state as BootJobState,
    progress: r.progress,
    message: r.message,
    deadline_at: r.deadline_at,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}
