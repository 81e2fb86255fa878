/**
 * Every error the engine reports to a client or an operator, with a stable code.
 * Clients branch on `code`, never on `message`; messages say what was wrong and where.
 */

export const ErrorCodes = {
  // 400: the request body is wrong
  INVALID_JSON: 400,
  INVALID_BODY: 400,
  FEATURE_COUNT_MISMATCH: 400,
  INVALID_FEATURE_VALUE: 400,
  NON_FINITE_FEATURE: 400,
  INVALID_BINARY_BODY: 400,
  INVALID_HEADER: 400,
  INVALID_QUERY: 400,
  UNKNOWN_MODEL: 400,
  UNSUPPORTED_OPERATION: 400,
  // 401/403: admin endpoints
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  // 404/405/413/415: routing and transport
  NOT_FOUND: 404,
  PREDICTION_ID_NOT_FOUND: 404,
  PREDICTION_ID_EXPIRED: 404,
  METHOD_NOT_ALLOWED: 405,
  BODY_TOO_LARGE: 413,
  TOO_MANY_ROWS: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // 409/422: state conflicts and refused models
  NO_PREVIOUS_VERSION: 409,
  TRAINING_IN_PROGRESS: 409,
  MODEL_REJECTED: 422,
  TRAINING_FAILED: 422,
  TRAINING_RUN_NOT_FOUND: 404,
  // 5xx: the engine could not serve it
  INTERNAL: 500,
  WORKER_FAILED: 500,
  INVALID_MODEL_OUTPUT: 500,
  MODEL_NOT_READY: 503,
  QUEUE_FULL: 503,
  FEEDBACK_BACKLOG: 503,
  FEEDBACK_LOG_FAILED: 500,
  DRAINING: 503,
  DEADLINE_EXCEEDED: 504,
  // start-up (never sent over HTTP)
  CONFIG_INVALID: 500,
  MODEL_LOAD_FAILED: 500,
  LISTEN_FAILED: 500,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class TradeflowError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers, e.g. `Allow` for 405 and `Retry-After` for 503. */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(code: ErrorCode, message: string, headers?: Record<string, string>) {
    super(message);
    this.name = 'TradeflowError';
    this.code = code;
    this.status = ErrorCodes[code];
    this.headers = headers;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export function isTradeflowError(err: unknown): err is TradeflowError {
  return err instanceof TradeflowError;
}
