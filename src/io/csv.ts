/**
 * A small streaming reader for labelled numeric CSV files (a header line, comma-separated, no
 * quoting inside values): every column except the label and the dropped ones is a feature and
 * must be numeric. Used by the prequential evaluation (`tradeflow eval`, scripts/elec2-sweep.ts).
 * The file is read in chunks, so memory is the parsed rows, not the text. Errors name the file
 * line (1-based, the header is line 1) and the column, because a user fixing a 45,000-line file
 * needs exactly that.
 */
import * as fs from 'node:fs';
import { tfError } from '../errors';

export interface LabelledCsvOptions {
  /** Name of the label column. */
  labelColumn: string;
  /** The label value that means class 1 (e.g. "UP"); every other value is class 0. */
  positive: string;
  /** Columns that are neither features nor the label (e.g. a date). */
  dropColumns?: readonly string[];
}

export interface LabelledCsv {
  /** Every column of the header, in file order. */
  header: string[];
  /** The feature columns, in file order. */
  features: string[];
  /** Row-major, features.length values per row. */
  rows: Float64Array;
  /** 1 where the label equals `positive`, else 0. */
  labels: Uint8Array;
  rowCount: number;
}

function fail(message: string): never {
  throw tfError('CSV_INVALID', message);
}

function unquote(s: string): string {
  const t = s.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

/** Line-by-line parser: the streaming reader and the in-memory one share it. */
class Parser {
  header: string[] | null = null;
  private featureIndex: number[] = [];
  private labelIndex = -1;
  private width = 0;
  private rows = new Float64Array(0);
  private labels = new Uint8Array(0);
  private count = 0;
  private positives = 0;
  private readonly otherLabels = new Set<string>();
  private lineNo = 0;

  constructor(
    private readonly source: string,
    private readonly opts: LabelledCsvOptions,
  ) {}

  line(raw: string): void {
    this.lineNo++;
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (this.header === null) {
      this.setHeader(this.lineNo === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
      return;
    }
    if (text.trim() === '') return; // blank lines (a final newline) carry no row
    const cells = text.split(',');
    if (cells.length !== this.header.length) {
      fail(`${this.source} line ${this.lineNo}: ${cells.length} fields, the header has ${this.header.length}`);
    }
    const f = this.featureIndex.length;
    if ((this.count + 1) * f > this.rows.length || this.count === this.labels.length) this.grow();
    const base = this.count * f;
    for (let k = 0; k < f; k++) {
      const col = this.featureIndex[k]!;
      const cell = cells[col]!;
      const v = cell.trim() === '' ? NaN : Number(cell);
      if (!Number.isFinite(v)) {
        fail(`${this.source} line ${this.lineNo}, column "${this.header[col]}": ${cell.trim() === '' ? 'empty cell' : `"${cell}" is not a finite number`}`);
      }
      this.rows[base + k] = v;
    }
    const label = unquote(cells[this.labelIndex]!);
    if (label === this.opts.positive) {
      this.labels[this.count] = 1;
      this.positives++;
    } else if (this.otherLabels.size < 20) {
      this.otherLabels.add(label);
    }
    this.count++;
  }

  private setHeader(text: string): void {
    const header = text.split(',').map(unquote);
    const seen = new Set<string>();
    for (const name of header) {
      if (seen.has(name)) fail(`${this.source} line 1: column "${name}" appears twice in the header`);
      seen.add(name);
    }
    const known = `columns: ${header.join(', ')}`;
    this.labelIndex = header.indexOf(this.opts.labelColumn);
    if (this.labelIndex < 0) throw tfError('CONFIG_INVALID', `${this.source}: unknown label column "${this.opts.labelColumn}" (${known})`);
    const drop = new Set(this.opts.dropColumns ?? []);
    for (const name of drop) {
      if (!seen.has(name)) throw tfError('CONFIG_INVALID', `${this.source}: unknown column to drop "${name}" (${known})`);
      if (name === this.opts.labelColumn) throw tfError('CONFIG_INVALID', `${this.source}: "${name}" is the label column and cannot be dropped`);
    }
    this.featureIndex = header.map((_, i) => i).filter((i) => i !== this.labelIndex && !drop.has(header[i]!));
    if (this.featureIndex.length === 0) throw tfError('CONFIG_INVALID', `${this.source}: no feature columns left (${known})`);
    this.width = this.featureIndex.length;
    this.header = header;
    this.grow();
  }

  private grow(): void {
    const cap = Math.max(1024, this.labels.length * 2);
    const rows = new Float64Array(cap * this.width);
    rows.set(this.rows);
    const labels = new Uint8Array(cap);
    labels.set(this.labels);
    this.rows = rows;
    this.labels = labels;
  }

  finish(): LabelledCsv {
    if (this.header === null) fail(`${this.source}: empty file (no header line)`);
    if (this.count === 0) fail(`${this.source}: no data rows after the header`);
    if (this.positives === 0) {
      throw tfError(
        'CONFIG_INVALID',
        `${this.source}: the positive label "${this.opts.positive}" never appears in column "${this.opts.labelColumn}" ` +
          `(values seen: ${[...this.otherLabels].map((v) => `"${v}"`).join(', ')})`,
      );
    }
    return {
      header: this.header,
      features: this.featureIndex.map((i) => this.header![i]!),
      rows: this.rows.slice(0, this.count * this.width),
      labels: this.labels.slice(0, this.count),
      rowCount: this.count,
    };
  }
}

/** Parses CSV text already in memory (tests, small files). */
export function parseLabelledCsv(text: string, opts: LabelledCsvOptions, source = 'csv'): LabelledCsv {
  const p = new Parser(source, opts);
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (const l of lines) p.line(l);
  return p.finish();
}

/** Streams a CSV file from disk. */
export async function readLabelledCsv(path: string, opts: LabelledCsvOptions): Promise<LabelledCsv> {
  const p = new Parser(path, opts);
  const stream = fs.createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  let carry = '';
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = carry + chunk;
      let start = 0;
      for (let nl = text.indexOf('\n', start); nl !== -1; nl = text.indexOf('\n', start)) {
        p.line(text.slice(start, nl));
        start = nl + 1;
      }
      carry = text.slice(start);
    }
  } catch (err) {
    stream.destroy();
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw tfError('CONFIG_INVALID', `${path}: no such file`);
    throw err;
  }
  if (carry !== '') p.line(carry);
  return p.finish();
}
