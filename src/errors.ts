/**
 * Every error the engine reports, in one table: per code its HTTP status, where it is seen, a
 * one-line description (the README's error table is tested against it, test/errors.test.ts)
 * and, for codes whose wording is fixed, the message built from its parameters and the headers
 * it carries. Throw sites make errors with `tfError(code, ...)` and never spell a status, a
 * header or a fixed wording themselves: a code then cannot drift into two statuses or three
 * wordings, and a 503 cannot forget its Retry-After.
 *
 * Clients branch on `code`, never on `message`; messages say what was wrong and where.
 */

/** How long every 503 (and the readiness probe's 503) asks a client to wait before retrying. */
export const RETRY_AFTER_SECONDS = 1;
export const RETRY_AFTER_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'Retry-After': String(RETRY_AFTER_SECONDS) });

/**
 * Where a code is seen: `http`, answered to a client; `start-up`, the engine refuses to start
 * (never answered over HTTP); `offline`, in logs, training run records and the CLI tools.
 */
export type ErrorScope = 'http' | 'start-up' | 'offline';

interface ErrorSpec {
  /** Sent as the HTTP status; 500 for codes that are not meant to reach a client (if one does, the engine is at fault). */
  readonly status: number;
  readonly scope: ErrorScope;
  /** When the code is raised, for the README. */
  readonly doc: string;
  /** Codes with a fixed wording: the message from the parameters `tfError` takes. */
  readonly message?: (p: never) => string;
  /** Headers beyond the defaults (every 503 gets RETRY_AFTER_HEADERS). */
  readonly headers?: (p: never) => Record<string, string>;
}

type DrainRefusal = 'predictions' | 'feedback';

const ERRORS = {
  // 400: the request is wrong
  INVALID_JSON: { status: 400, scope: 'http', doc: 'the body is not JSON (or not UTF-8)' },
  INVALID_BODY: { status: 400, scope: 'http', doc: 'not an object; neither or both of `features`/`instances`; a field of the wrong type; a missing or wrong label' },
  FEATURE_COUNT_MISMATCH: { status: 400, scope: 'http', doc: 'a row does not have F values' },
  INVALID_FEATURE_VALUE: { status: 400, scope: 'http', doc: 'a value is not a number' },
  NON_FINITE_FEATURE: { status: 400, scope: 'http', doc: 'a value is not finite as float32 (e.g. `1e39`, NaN in binary)' },
  INVALID_BINARY_BODY: { status: 400, scope: 'http', doc: 'a binary body is not whole rows of F float32' },
  INVALID_HEADER: { status: 400, scope: 'http', doc: 'a malformed `X-Request-Timeout-Ms` or `Content-Length`' },
  INVALID_QUERY: { status: 400, scope: 'http', doc: 'a missing or bad query parameter (`POST /monitoring/drift/update`)' },
  UNKNOWN_MODEL: { status: 400, scope: 'http', doc: 'the named model is not served' },
  INVALID_TENSOR: { status: 400, scope: 'http', doc: 'an Open Inference Protocol request names a tensor, datatype, shape or output the model does not have, or its binary data does not add up' },
  UNSUPPORTED_OPERATION: { status: 400, scope: 'http', doc: 'loading or rolling back `sgd` or `arf`, which are learned online' },
  // 401/403: admin endpoints
  UNAUTHORIZED: {
    status: 401,
    scope: 'http',
    doc: 'an admin endpoint without `Authorization: Bearer <token>` while `ADMIN_TOKEN` is set; `WWW-Authenticate: Bearer`',
    message: () => 'this endpoint needs "Authorization: Bearer <token>"',
    headers: () => ({ 'WWW-Authenticate': 'Bearer' }),
  },
  FORBIDDEN: { status: 403, scope: 'http', doc: 'a wrong token; with no `ADMIN_TOKEN`, a client that is not on loopback' },
  MODEL_PATH_FORBIDDEN: { status: 403, scope: 'http', doc: 'a model load by path names a file outside `MODEL_DIR` (also through `..` or a symbolic link); the serving version keeps serving' },
  // 404/405: routing and lookups
  NOT_FOUND: {
    status: 404,
    scope: 'http',
    doc: 'no such path',
    message: (p: { method: string; path: string }) => `no route for ${p.method} ${p.path}`,
  },
  MODEL_NOT_FOUND: { status: 404, scope: 'http', doc: 'an Open Inference Protocol route names a model that is not served, or a version that is not the serving one' },
  PREDICTION_ID_NOT_FOUND: {
    status: 404,
    scope: 'http',
    doc: '`/learn` names an id that is unknown, already given feedback, or evicted',
    message: (p: { id: string }) => `no prediction with id "${p.id}" is known (unknown, already given feedback, or evicted)`,
  },
  PREDICTION_ID_EXPIRED: {
    status: 404,
    scope: 'http',
    doc: '`/learn` names an id older than `PREDICTION_ID_TTL_S`',
    message: (p: { id: string }) => `the prediction with id "${p.id}" is older than the id TTL; send its features with the label instead`,
  },
  TRAINING_RUN_NOT_FOUND: {
    status: 404,
    scope: 'http',
    doc: '`GET /train/{id}` names a run that is unknown or no longer kept',
    message: (p: { id: string; kept: number }) => `no training run with id "${p.id}" (the last ${p.kept} are kept)`,
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    scope: 'http',
    doc: 'wrong method; `Allow` lists the right ones',
    message: (p: { method: string; route: string; allow: string }) => `${p.method} is not allowed on ${p.route}; allowed: ${p.allow}`,
    headers: (p: { allow: string }) => ({ Allow: p.allow }),
  },
  // 409: state conflicts
  NO_PREVIOUS_VERSION: { status: 409, scope: 'http', doc: 'a rollback with no earlier version kept (`MODEL_VERSIONS_KEEP`)' },
  TRAINING_IN_PROGRESS: {
    status: 409,
    scope: 'http',
    doc: '`POST /train` while a run is in progress',
    message: () => 'a training run is in progress; one runs at a time',
  },
  NOT_TRAINING_LEADER: {
    status: 409,
    scope: 'http',
    doc: 'with `REDIS_URL`: `POST /train` on a replica that does not hold the training lease; the message and `X-Training-Leader` name the holder (send it there); nothing was started',
    message: (p: { holder: string | null }) =>
      p.holder === null
        ? 'training runs on the replica holding the training lease, and none holds it now (Redis unreachable, or the lease is moving); try again shortly'
        : `training runs on the replica holding the training lease, ${p.holder}; send POST /train there (GET /train/{id} there has the run)`,
    headers: (p: { holder: string | null }) => (p.holder === null ? ({} as Record<string, string>) : { 'X-Training-Leader': p.holder }),
  },
  // 413/415: sizes and types
  BODY_TOO_LARGE: { status: 413, scope: 'http', doc: 'body over `MAX_BODY_BYTES` (`MODEL_UPLOAD_MAX_BYTES` for model uploads), from `Content-Length` or counted while streaming' },
  TOO_MANY_ROWS: { status: 413, scope: 'http', doc: 'more rows than `MAX_REQUEST_ROWS`' },
  MODEL_TOO_LARGE: { status: 413, scope: 'http', doc: 'a model file loaded by path is over `MODEL_UPLOAD_MAX_BYTES`; the serving version keeps serving' },
  FEEDBACK_TOO_LARGE: {
    status: 413,
    scope: 'http',
    doc: "one request's feedback is more than the feedback log takes at once (`FEEDBACK_MAX_PENDING_BYTES`)",
    message: (p: { bytes: number; limit: number }) => `a feedback record of ${p.bytes} bytes is over the feedback log's limit of ${p.limit}; send fewer rows at a time`,
  },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, scope: 'http', doc: 'neither `application/json` (or no type) nor `application/octet-stream`, as the endpoint takes' },
  // 422: refused models
  MODEL_REJECTED: { status: 422, scope: 'http', doc: 'a model load or rollback refused (not ONNX, wrong feature count, tensors in external data files, fails to load or warm up in its workers); the serving version keeps serving' },
  // 5xx: the engine could not serve it
  INTERNAL: { status: 500, scope: 'http', doc: 'a bug in the engine; the message says where' },
  WORKER_FAILED: { status: 500, scope: 'http', doc: 'the worker running this batch failed; it is replaced, other batches are unaffected' },
  BATCH_TIMEOUT: {
    status: 500,
    scope: 'http',
    doc: 'this batch ran longer than `BATCH_TIMEOUT_MS` in its worker; the worker was stopped and is replaced, batches waiting in it are run by another',
    message: (p: { timeoutMs: number }) => `the batch holding this request ran for more than ${p.timeoutMs} ms (BATCH_TIMEOUT_MS) in its inference worker; the worker was stopped and is being replaced`,
  },
  INVALID_MODEL_OUTPUT: { status: 500, scope: 'http', doc: 'the model produced a probability outside [0, 1] for this request' },
  FEEDBACK_LOG_FAILED: { status: 500, scope: 'http', doc: 'after a disk fault the feedback log read back records it had acknowledged and found them damaged; feedback and drift updates are refused until a restart, whose recovery checks the log' },
  MODEL_STORE_FAILED: { status: 500, scope: 'http', doc: 'the model versions under `STATE_DIR/models` cannot be read or written' },
  QUEUE_FULL: {
    status: 503,
    scope: 'http',
    doc: 'more than `MAX_QUEUE_ROWS` rows would be waiting, or every batch slot is full',
    message: (p: { waiting: number; limit: number | null }) =>
      p.limit === null
        ? `every batch slot is full (${p.waiting} rows waiting); try again shortly`
        : `prediction queue is full (${p.waiting} rows waiting, limit ${p.limit})`,
  },
  FEEDBACK_BACKLOG: {
    status: 503,
    scope: 'http',
    doc: 'more than `FEEDBACK_MAX_PENDING_BYTES` of feedback wait for their fsync',
    message: (p: { pendingBytes: number; limit: number }) =>
      `too much feedback is waiting to be written (${p.pendingBytes} bytes waiting, limit ${p.limit}); try again shortly`,
  },
  FEEDBACK_LOG_UNAVAILABLE: {
    status: 503,
    scope: 'http',
    doc: 'a write or fsync of the feedback log failed (disk full, I/O error in `STATE_DIR`): this feedback or drift update was not acknowledged and is not kept; the log rolls over to a fresh segment and takes them again once the disk does, without a restart',
  },
  FEEDBACK_STREAM_UNAVAILABLE: {
    status: 503,
    scope: 'http',
    doc: 'with `REDIS_URL`: Redis is unreachable or did not take the record (XADD failed), or this replica stopped reading the stream; this feedback, drift update or model change was not acknowledged (nor a `POST /train` started: the lease cannot be checked); the engine reconnects with backoff and catches up, predictions keep serving',
  },
  DRAINING: {
    status: 503,
    scope: 'http',
    doc: 'the engine is shutting down',
    message: (p: { refusing: DrainRefusal }) => `the engine is shutting down and takes no new ${p.refusing}`,
  },
  DEADLINE_EXCEEDED: {
    status: 504,
    scope: 'http',
    doc: 'the request waited in the queue past its deadline; it was not computed',
    message: () => 'the request waited in the queue past its deadline and was not computed',
  },
  // The engine refuses to start.
  CONFIG_INVALID: { status: 500, scope: 'start-up', doc: 'a setting (variable, flag, detector or training setting) is invalid; the CLIs exit 2' },
  MODEL_LOAD_FAILED: { status: 500, scope: 'start-up', doc: 'the model to serve cannot be read, is not a usable ONNX model or fails its warm-up (also ends a training run that cannot score the serving model)' },
  LISTEN_FAILED: { status: 500, scope: 'start-up', doc: '`HOST`:`PORT` cannot be listened on' },
  CHECKPOINT_CORRUPT: { status: 500, scope: 'start-up', doc: 'the learning checkpoint in `STATE_DIR` is there but unusable (damaged, another schema, written by a newer engine)' },
  FEEDBACK_LOG_CORRUPT: { status: 500, scope: 'start-up', doc: 'the feedback log is damaged where records were acknowledged, or lacks records the checkpoint needs' },
  // Offline: logs, training run records, CLI tools.
  CHECKPOINT_FAILED: { status: 500, scope: 'offline', doc: 'the learning checkpoint cannot be written or read (I/O, or a state that is not finite); the feedback log is kept' },
  TRAINING_DATA_INVALID: { status: 500, scope: 'offline', doc: "a training run's rows cannot be trained on (too few, one label only, a value that is not finite, a bad shape)" },
  CSV_INVALID: { status: 500, scope: 'offline', doc: 'a CSV file given to `tradeflow eval` or `tradeflow train` is malformed (the line and column are named)' },
  FEEDBACK_STREAM_GAP: { status: 500, scope: 'offline', doc: "with `REDIS_URL`: entries after this replica's position were trimmed from the stream and no shared checkpoint covers them; the replica stops reading (health `unhealthy`, `/learn` 503) until it is restarted with an empty `STATE_DIR`" },
  DRIFT_INPUT_INVALID: { status: 500, scope: 'offline', doc: 'a drift detector was given a value it does not take (not 0 or 1, not finite)' },
} as const satisfies Record<string, ErrorSpec>;

type Errors = typeof ERRORS;
export type ErrorCode = keyof Errors;

type FixedMessage<C extends ErrorCode> = Errors[C] extends { readonly message: infer F } ? F : null;
/** `tfError`'s arguments after the code: the parameters of a fixed wording, or the message itself. */
export type ErrorArgs<C extends ErrorCode> = FixedMessage<C> extends (...args: infer A) => string ? A : [message: string];

export class TradeflowError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Response headers, e.g. `Allow` for 405 and `Retry-After` for 503. */
  readonly headers: Readonly<Record<string, string>> | undefined;

  /** Prefer `tfError`, which also builds fixed wordings and their headers; this is for subclasses and errors revived from a worker. */
  constructor(code: ErrorCode, message: string, headers?: Record<string, string>) {
    super(message);
    this.name = 'TradeflowError';
    this.code = code;
    this.status = ERRORS[code].status;
    const defaults = this.status === 503 ? RETRY_AFTER_HEADERS : undefined;
    this.headers = defaults && headers ? { ...defaults, ...headers } : (headers ?? defaults);
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/**
 * The one way to make an error: `tfError('INVALID_BODY', 'body needs "features"')` for a code
 * whose message the throw site writes, `tfError('DRAINING', { refusing: 'feedback' })` for one
 * whose wording is fixed here (the compiler tells which is which).
 */
export function tfError<C extends ErrorCode>(code: C, ...args: ErrorArgs<C>): TradeflowError {
  const spec: ErrorSpec = ERRORS[code];
  const param = args[0] as never;
  const message = spec.message ? spec.message(param) : (args[0] as string);
  return new TradeflowError(code, message, spec.headers?.(param));
}

export function isTradeflowError(err: unknown): err is TradeflowError {
  return err instanceof TradeflowError;
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code);
}

/** An error that crossed a thread as code and message (its wording was built where it was thrown). */
export function reviveError(code: unknown, message: string): TradeflowError {
  return isErrorCode(code) ? new TradeflowError(code, message) : tfError('INTERNAL', message);
}

export interface ErrorTableRow {
  code: ErrorCode;
  status: number;
  scope: ErrorScope;
  doc: string;
}

/** Every code, in table order: what the README's error table documents. */
export function errorTable(): ErrorTableRow[] {
  return (Object.keys(ERRORS) as ErrorCode[]).map((code) => {
    const { status, scope, doc } = ERRORS[code];
    return { code, status, scope, doc };
  });
}
