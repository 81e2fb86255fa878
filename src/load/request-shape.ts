/**
 * What one request of the load looks like (its path, headers and body, built from rows of
 * features), as every request shape module implements it; shapes.ts lists the modules.
 */

export interface ShapeTarget {
  /** Features per row (the served model's F). */
  features: number;
  /** Rows per request. */
  rows: number;
  /** Model named in each request; null: none named, the engine answers with its default. */
  model: string | null;
  /** The model that answers, as GET /models names it (null when its F came from --features). */
  servedModel: string | null;
  /** The model's input tensor's name, for shapes that name it (set by their prepare()). */
  inputName?: string;
}

export interface RequestShape {
  readonly name: string;
  /** One line for --help. */
  readonly summary: string;
  /** The route template the engine labels this request's metrics with (`endpoint` of api_request_duration_seconds). */
  readonly endpoint: string;
  /** Reads what the shape needs from the target before the run (the protocol's model metadata). */
  prepare?(baseUrl: string, t: ShapeTarget): Promise<ShapeTarget>;
  path(t: ShapeTarget): string;
  headers(t: ShapeTarget): Record<string, string>;
  /** The body of one request: rows [first, first + t.rows) of `rows` (row-major, t.features values per row). */
  body(rows: Float64Array, first: number, t: ShapeTarget): Buffer;
}
