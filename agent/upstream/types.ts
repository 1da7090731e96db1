/**
 * The seams between the upstream link's parts (docs/protocol.md): the link (./link.ts) speaks the WebSocket and the
 * journal; it asks a HelloSource for each hello and hands each valid command to a CommandHandler (./commands.ts),
 * which runs it through the same engine as the REST API. agent/build-agent.ts wires them.
 */
import type { Command, CommandResult, ErrorMessage, Hello } from './protocol.js';
import type { Store } from '../store/types.js';

/** The meta key of the greatest fencing generation the agent has seen (0: none). */
export const GENERATION_KEY = 'upstream.generation';

/** The stored generation (0 when none was stored). */
export function readGeneration(store: Pick<Store, 'getMeta'>): number {
  const v = store.getMeta(GENERATION_KEY);
  const n = v === null ? 0 : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/**
 * Stores a greater generation and waits until it is on disk; a generation not greater than the stored one changes
 * nothing. The welcome's and a command's newer generation are stored through this before they are acted on.
 */
export async function raiseGeneration(store: Pick<Store, 'getMeta' | 'setMeta' | 'durable'>, generation: number): Promise<void> {
  if (generation <= readGeneration(store)) return;
  store.setMeta(GENERATION_KEY, String(generation));
  await store.durable();
}

/** Builds the hello of a link (a fresh snapshot each time: the first on a link, and every answer to resync). */
export interface HelloSource {
  /** The hello to send now: the snapshot is read in one synchronous stretch, tagged with the seq it reflects. */
  hello(): Hello;
}

/**
 * Runs the controller's commands (docs/protocol.md, "What the agent MUST do with a valid command"). The link calls it
 * only while streaming and only with a message parseMessage accepted.
 */
export interface CommandHandler {
  /**
   * The answer to send: the command's result (stored before it resolves, the first one again with `repeat: true`
   * for a known command_id), or `error` PROTO_ERR_INTERNAL when the store failed (nothing stored, nothing run).
   * Never rejects.
   */
  handle(cmd: Command): Promise<CommandResult | ErrorMessage>;
}

/** The link's states (docs/protocol.md, "The link's states"). */
export type LinkState = 'idle' | 'connecting' | 'hello-sent' | 'streaming' | 'backing-off' | 'closed';

/** What /readyz, /metrics and `metalctl agent status` show of the link. */
export interface LinkStatus {
  /** `disabled` when no upstream.url is set (standalone). */
  state: LinkState | 'disabled';
  /** When the link entered that state (ISO). */
  since: string;
  /** The controller URL (no credentials), null when standalone. */
  url: string | null;
  /** Failed attempts since the last welcome. */
  attempts: number;
  /** Why the last link ended or the last dial failed, null if none did. */
  last_error: string | null;
  /** The greatest seq an ack covered, and when that ack came (this process's life), null before any. */
  last_ack_seq: number | null;
  last_ack_at: string | null;
  /** The greatest seq sent on the current link, null when none. */
  sent_seq: number | null;
  /** The generation the agent holds. */
  generation: number;
  /** Links that reached streaming since start. */
  welcomes: number;
}
