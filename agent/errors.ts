/**
 * The agent's typed error taxonomy. Every error that can reach an operator has a stable code, an operator-facing
 * message and whether retrying can help. HTTP statuses are mapped here, in one place; the v1 body is
 * `{error_code, error_msg}` and the v2/v2.1 body is a nova fault (agent/api/errors.ts renders both).
 */

export const AGENT_ERRORS = {
  AGENT_ERR_BAD_REQUEST: { status: 400, retryable: false },
  AGENT_ERR_UNAUTHORIZED: { status: 401, retryable: false },
  AGENT_ERR_FORBIDDEN: { status: 403, retryable: false },
  AGENT_ERR_NOT_FOUND: { status: 404, retryable: false },
  /** A known path with a method it does not take (Allow lists those it does). */
  AGENT_ERR_METHOD_NOT_ALLOWED: { status: 405, retryable: false },
  /** The request is not allowed in the instance's current state (seed 004 InvalidState). */
  AGENT_ERR_INVALID_TRANSITION: { status: 400, retryable: false },
  /** Another operation holds the instance or node (seed 004 ClientError 409). */
  AGENT_ERR_LOCKED: { status: 409, retryable: true },
  /** No free node fits, or a resource is already in use. */
  AGENT_ERR_CONFLICT: { status: 409, retryable: true },
  /** The node's driver cannot do what was asked (seed 004 NotAcceptable 406). */
  AGENT_ERR_NOT_ACCEPTABLE: { status: 406, retryable: false },
  AGENT_ERR_MAINTENANCE: { status: 409, retryable: true },
  AGENT_ERR_PAYLOAD_TOO_LARGE: { status: 413, retryable: false },
  /** A body that is not JSON in UTF-8, or sent with a Content-Encoding the API does not decode. */
  AGENT_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false },
  AGENT_ERR_RATE_LIMITED: { status: 429, retryable: true },
  /** The durable store failed: nothing was accepted. */
  AGENT_ERR_STORE: { status: 500, retryable: true },
  AGENT_ERR_INTERNAL: { status: 500, retryable: true },
  AGENT_ERR_NOT_READY: { status: 503, retryable: true },
} as const;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: AgentErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
    this.status = AGENT_ERRORS[code].status;
    this.retryable = AGENT_ERRORS[code].retryable;
    this.details = details;
  }
}

export function isAgentError(e: unknown): e is AgentError {
  return e instanceof AgentError;
}
