/** What the command handler (./commands.ts) gives its op modules (./commands-instance.ts, ./commands-fleet.ts). */
import type { RequestContext } from '../model.js';
import type { CommandDeps } from './commands.js';
import type { Command, CommandResult } from './protocol.js';

/** A command-result's fields that an op decides. */
export interface ResultFields {
  status: CommandResult['status'];
  request_id?: string | null;
  instance_id?: string | null;
  node_id?: string | null;
  already?: boolean;
}

/** What an op module gets: the deps, the command's context, and the one way to write its result. */
export interface OpRun {
  d: CommandDeps;
  cmd: Command;
  /** The command's RequestContext: request_id = command_id, admin, user 'controller', the given project. */
  ctx(projectId: string, userId?: string): RequestContext;
  /** Stores the command's result in the transaction the caller holds open (the acceptance's). Once per command. */
  record(fields: ResultFields): void;
}

/** The user a command runs as (the create command's user_id instead, when given). */
export const CONTROLLER_USER = 'controller';
/** The project of a command about no project (a node, the catalogue) or about an instance that does not exist. */
export const CONTROLLER_PROJECT = 'controller';
