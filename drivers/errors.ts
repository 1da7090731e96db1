/**
 * The driver error taxonomy. `nothingSent` is true only when the error proves the BMC received no command
 * (connection refused, authentication failed, unsupported): only then may the next driver in a node's list be tried.
 * After a timeout nothing is proven, so the caller must read power back before anything else.
 */

export const BMC_ERRORS = {
  BMC_ERR_AUTH: { retryable: false, nothingSent: true },
  BMC_ERR_UNREACHABLE: { retryable: true, nothingSent: true },
  BMC_ERR_UNSUPPORTED: { retryable: false, nothingSent: true },
  BMC_ERR_TIMEOUT: { retryable: true, nothingSent: false },
  BMC_ERR_BUSY: { retryable: true, nothingSent: true },
  BMC_ERR_BAD_RESPONSE: { retryable: true, nothingSent: false },
  BMC_ERR_COMMAND_FAILED: { retryable: false, nothingSent: false },
  BMC_ERR_VERIFY_FAILED: { retryable: false, nothingSent: false },
  BMC_ERR_BOOT_FLAGS_IGNORED: { retryable: false, nothingSent: false },
  BMC_ERR_INSTALL_FAILED: { retryable: false, nothingSent: false },
  BMC_ERR_ABORTED: { retryable: false, nothingSent: false },
} as const;

export type BmcErrorCode = keyof typeof BMC_ERRORS;

export class BmcError extends Error {
  readonly code: BmcErrorCode;
  readonly retryable: boolean;
  readonly nothingSent: boolean;
  /** Which driver raised it. */
  readonly driver: string;

  constructor(code: BmcErrorCode, driver: string, message: string) {
    super(message);
    this.name = 'BmcError';
    this.code = code;
    this.driver = driver;
    this.retryable = BMC_ERRORS[code].retryable;
    this.nothingSent = BMC_ERRORS[code].nothingSent;
  }
}

export function isBmcError(e: unknown): e is BmcError {
  return e instanceof BmcError;
}
