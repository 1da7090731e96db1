/**
 * The resolved configuration: the YAML file (agent/config/schema.ts) after validation, defaults and unit
 * conversion (durations in ms). Secrets are not here: only the files they come from (agent/config/secrets.ts).
 */
import type { BootMode } from '../model.js';

export type Role = 'admin' | 'member' | (string & {});

export interface ApiToken {
  token_file: string;
  project_id: string;
  user_id: string;
  roles: Role[];
}

export interface ImageEntry {
  uuid: string;
  name: string;
  url: string;
  sha256: string;
  os: string;
  /** How the ramdisk boots: network (iPXE) or virtual media. */
  boot_method: 'pxe' | 'virtual-media';
}

export interface InstanceTypeEntry {
  uuid: string;
  name: string;
  node_type: string;
}

export interface NetworkEntry {
  uuid: string;
  name: string;
  cidr: string;
  gateway: string | null;
  dns: string[];
  /** Inclusive address range `first-last`, parsed. */
  pool: { first: string; last: string } | null;
}

export interface AddressConfig {
  addr: string;
  mac: string;
  version: 4 | 6;
  type: 'fixed' | 'floating';
  network: string;
}

export interface AdoptConfig {
  instance_id: string;
  project_id: string;
  user_id: string;
  name: string;
  addresses: AddressConfig[];
  image_uuid?: string | undefined;
  instance_type_uuid?: string | undefined;
  metadata?: Record<string, string> | undefined;
}

/** A node's `bmc`: the ordered drivers and their settings (opaque here; the drivers' schemas validated them). */
export interface NodeBmcConfig {
  /** Ordered; a single name in YAML becomes a one-element list. */
  drivers: string[];
  /** The drivers' settings, defaults applied and relative `x-path` settings made absolute. */
  [setting: string]: unknown;
}

export interface NodeConfig {
  id: string;
  name: string;
  type: string;
  boot_mode: BootMode;
  macs: { mac: string; pxe: boolean }[];
  bmc: NodeBmcConfig;
  maintenance: boolean;
  enforce_power: boolean;
  adopt: AdoptConfig | null;
}

export interface Config {
  agent_id: string;
  state_dir: string;
  log_level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** What a failed operation leaves: the node powered off (default) or as it was. */
  on_failure: 'power_off' | 'leave';
  terminated_retention_ms: number;
  api: {
    listen: { host: string; port: number };
    /** Base URL used in links and Location (default http://<listen>). */
    public_url: string | null;
    rate_limit: { per_token_per_s: number; burst: number };
    max_body_bytes: number;
    /** List pages: the size without `limit`, and the largest `limit` taken. default <= max. */
    page_size: { default: number; max: number };
    tokens: ApiToken[];
  };
  boot: {
    listen: { host: string; port: number };
    public_url: string | null;
    ramdisk: { kernel: string | null; initrd: string | null; iso: string | null };
  } | null;
  upstream: { url: string; token_file: string; ca_file: string | null } | null;
  /** The journal's bounds (the outbox, upstream or not): agent/store/outbox.ts, docs/protocol.md "The outbox policy". */
  outbox: { max_events: number; max_bytes: number };
  allow_fake_drivers: boolean;
  power_sync: {
    interval_ms: number;
    /** Consecutive failed reads before power_state becomes unknown with bmc_unreachable_error. */
    failures_before_unknown: number;
    /** At most this many nodes' power reads in flight at once; the event loop gets a turn after each node. */
    concurrency: number;
  };
  timeouts: {
    /** One BMC call. */
    bmc_call_ms: number;
    /** Verification of a power change (the waiting policy's deadline). */
    power_ms: number;
    /** The installer, from power on to its success report. */
    deploy_ms: number;
    /** Default for soft power off / soft reboot when the request has no timeout. */
    soft_power_ms: number;
  };
  /** Read-back delays for verification, ms, in order; the last repeats. */
  power_poll_ms: number[];
  bmc: { min_gap_ms: number };
  liveness: {
    /** `auto`: the raw-socket engine where its socket opens (CAP_NET_RAW), else fping. */
    engine: 'auto' | 'raw' | 'fping' | 'fake';
    fping_path: string;
    interval_ms: number;
    /** Each sweep starts interval x (1 +- jitter), uniformly: 0.1 is +-10%. */
    jitter: number;
    timeout_ms: number;
    retries: number;
    /** Each retry's timeout is the previous one times this (fping -B). */
    backoff: number;
    /** Least gap between two echo requests sent by the engine, any target (fping -i). */
    packet_interval_ms: number;
    /** A verdict changes only after this many agreeing results in a row (1: at once). */
    hysteresis: number;
    /** Instances probed per ping call by the monitor (one page of the store); the event loop gets a turn between pages. */
    batch: number;
  };
  recovery: {
    /** At most this many operations resumed at start run at once (the others wait their turn). */
    concurrency: number;
  };
  images: ImageEntry[];
  instance_types: InstanceTypeEntry[];
  networks: NetworkEntry[];
  nodes: NodeConfig[];
}
