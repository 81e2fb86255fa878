/**
 * Metric series kept in shared memory by front-end threads (HTTP_THREADS ≥ 2), so that every
 * thread's traffic is counted once and read by the one exporter on the main thread at scrape time.
 *
 * Each thread owns its own block of Float64 cells and is the only writer of it: recording is the
 * same few plain increments as on the main thread (no Atomics.add, no contention between threads,
 * and float sums, which Atomics cannot add). A new label set takes cells from the block and is
 * announced to the main thread once (`SeriesRegistration`); the exporter adds every thread's cells
 * to its own series of the same labels. A block outlives its thread, so a thread that dies and is
 * replaced takes none of its counts with it: counters never go backwards.
 */

/** Histogram cells: the bucket counts, then sum, count, min, max. */
export function histogramCells(boundaries: readonly number[]): number {
  return boundaries.length + 1 + 4;
}

export interface SeriesRegistration {
  kind: 'counter' | 'histogram';
  family: string;
  attributes: Record<string, string>;
  /** First cell (Float64 index) of the series in the thread's block. */
  offset: number;
}

/** Cells a thread's block holds: far more than the label sets of the routes a thread answers. */
export const SERIES_BLOCK_CELLS = 16384;

export function createSeriesBlock(): SharedArrayBuffer {
  return new SharedArrayBuffer(SERIES_BLOCK_CELLS * 8);
}

/** The thread's side: hands out cells for label sets and records into them. */
export class SeriesWriter {
  private readonly cells: Float64Array;
  private next = 0;
  private readonly made = new Map<string, Float64Array>();

  constructor(
    block: SharedArrayBuffer,
    private readonly announce: (r: SeriesRegistration) => void,
  ) {
    this.cells = new Float64Array(block);
  }

  /** The cells of a series, made and announced once; null when the block is full (not recorded). */
  series(kind: 'counter' | 'histogram', family: string, attributes: Record<string, string>, boundaries: readonly number[] = []): Float64Array | null {
    const key = family + '\u0000' + JSON.stringify(attributes);
    const have = this.made.get(key);
    if (have) return have;
    const n = kind === 'counter' ? 1 : histogramCells(boundaries);
    if (this.next + n > this.cells.length) return null;
    const view = this.cells.subarray(this.next, this.next + n);
    if (kind === 'histogram') {
      view[boundaries.length + 3] = Infinity;
      view[boundaries.length + 4] = -Infinity;
    }
    this.announce({ kind, family, attributes, offset: this.next });
    this.next += n;
    this.made.set(key, view);
    return view;
  }
}

/** Adds `v` to a histogram series' cells (the same buckets as FastHistogram.record). */
export function recordInCells(cells: Float64Array, boundaries: readonly number[], v: number): void {
  const b = boundaries.length;
  let i = 0;
  while (i < b && v > boundaries[i]!) i++;
  cells[i]!++;
  cells[b + 1]! += v;
  cells[b + 2]!++;
  if (v < cells[b + 3]!) cells[b + 3] = v;
  if (v > cells[b + 4]!) cells[b + 4] = v;
}

/** The cells of a registration in the block it came from (main thread, at registration). */
export function cellsOf(block: SharedArrayBuffer, r: SeriesRegistration, boundaries: readonly number[]): Float64Array {
  const n = r.kind === 'counter' ? 1 : histogramCells(boundaries);
  return new Float64Array(block, r.offset * 8, n);
}
