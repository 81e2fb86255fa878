/**
 * One error vocabulary: the README's error table is the module's table (every code, its status,
 * where it is seen), every code is raised somewhere, and what a client sees (status, JSON shape,
 * fixed wordings and their headers) comes from src/errors.ts alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RETRY_AFTER_HEADERS, RETRY_AFTER_SECONDS, TradeflowError, errorTable, isErrorCode, reviveError, tfError, type ErrorTableRow } from '../src/errors';
import { statusLine } from '../src/http/respond';

const ROOT = path.resolve(__dirname, '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The README row for a code: HTTP codes show their status, the others where they are seen. */
function readmeRow(r: ErrorTableRow): [string, string, string] {
  const status = r.scope === 'http' ? String(r.status) : r.scope;
  const when = r.status === 503 ? `${r.doc}; \`Retry-After: ${RETRY_AFTER_SECONDS}\`` : r.doc;
  return [status, `\`${r.code}\``, when];
}

function renderTable(): string {
  const rows = errorTable().map((r) => `| ${readmeRow(r).join(' | ')} |`);
  return ['| status | code | when |', '| --- | --- | --- |', ...rows].join('\n');
}

/** The table in the README's "### Errors" section, as its lines. */
function readmeTable(): string {
  const start = README.indexOf('\n### Errors\n');
  expect(start, 'README has a "### Errors" section').toBeGreaterThan(-1);
  const section = README.slice(start + 1, README.indexOf('\n#', start + 2));
  return section
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .join('\n');
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(rel));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

const SOURCES = [...sourceFiles('src'), ...sourceFiles('workers')].filter((f) => f !== path.join('src', 'errors.ts'));
const text = new Map(SOURCES.map((f) => [f, fs.readFileSync(path.join(ROOT, f), 'utf8')]));

/**
 * Files whose throw sites still build errors with the constructor: they are being rewritten by
 * others (configuration, CLIs); remove an entry once its file uses tfError.
 */
const NOT_YET_CONVERTED = new Set<string>();

describe('the error table', () => {
  it('is the README table, row for row (on a mismatch, paste the expected table into README.md)', () => {
    expect(readmeTable()).toBe(renderTable());
  });

  it('gives every client-visible code a status the responder has a reason phrase for', () => {
    for (const r of errorTable()) {
      if (r.scope !== 'http') {
        // If one of these ever reaches a client, the engine is at fault.
        expect(r.status, r.code).toBe(500);
        continue;
      }
      expect(statusLine(r.status), r.code).not.toMatch(/ Status$/);
    }
  });

  it('agrees with every "<status> <CODE>" the rest of the README mentions', () => {
    const status = new Map(errorTable().map((r) => [r.code as string, r.status]));
    const mentions = [...README.matchAll(/\b([1-5]\d\d)\s+`?([A-Z][A-Z0-9_]{3,})\b/g)].filter((m) => isErrorCode(m[2]));
    expect(mentions.length).toBeGreaterThan(5);
    for (const m of mentions) expect(Number(m[1]), `README: "${m[0]}"`).toBe(status.get(m[2]!));
  });

  it('has only codes that something raises (grep of src/ and workers/)', () => {
    const unraised = errorTable()
      .map((r) => r.code)
      .filter((code) => {
        const site = new RegExp(`(tfError|TradeflowError|super)\\(\\s*'${code}'`);
        return ![...text.values()].some((t) => site.test(t));
      });
    expect(unraised).toEqual([]);
  });

  it('is the only place a status, a Retry-After or a fixed wording is spelled', () => {
    const offenders: string[] = [];
    for (const [file, t] of text) {
      if (/'Retry-After'/.test(t)) offenders.push(`${file}: spells Retry-After (use RETRY_AFTER_HEADERS)`);
      if (!NOT_YET_CONVERTED.has(file) && /new TradeflowError\(/.test(t)) offenders.push(`${file}: new TradeflowError (use tfError)`);
    }
    expect(offenders).toEqual([]);
  });
});

describe('tfError', () => {
  it('takes the status from the table and keeps the wire shape', () => {
    const e = tfError('FEATURE_COUNT_MISMATCH', 'instances[3] has 4 values, expected 16');
    expect(e).toBeInstanceOf(TradeflowError);
    expect(e).toMatchObject({ code: 'FEATURE_COUNT_MISMATCH', status: 400, headers: undefined });
    expect(JSON.parse(JSON.stringify(e))).toEqual({ error: { code: 'FEATURE_COUNT_MISMATCH', message: 'instances[3] has 4 values, expected 16' } });
  });

  it('builds fixed wordings from their parameters, and their headers', () => {
    expect(tfError('DRAINING', { refusing: 'feedback' })).toMatchObject({
      status: 503,
      message: 'the engine is shutting down and takes no new feedback',
      headers: RETRY_AFTER_HEADERS,
    });
    expect(tfError('DRAINING', { refusing: 'predictions' }).message).toBe('the engine is shutting down and takes no new predictions');
    expect(tfError('QUEUE_FULL', { waiting: 9000, limit: 8192 })).toMatchObject({ message: 'prediction queue is full (9000 rows waiting, limit 8192)', headers: { 'Retry-After': '1' } });
    expect(tfError('METHOD_NOT_ALLOWED', { method: 'GET', route: '/learn', allow: 'POST' })).toMatchObject({
      status: 405,
      message: 'GET is not allowed on /learn; allowed: POST',
      headers: { Allow: 'POST' },
    });
    expect(tfError('UNAUTHORIZED').headers).toEqual({ 'WWW-Authenticate': 'Bearer' });
    expect(tfError('DEADLINE_EXCEEDED')).toMatchObject({ status: 504, headers: undefined });
  });

  it('gives every 503 the one Retry-After, however it was made', () => {
    for (const r of errorTable().filter((x) => x.status === 503)) {
      expect(new TradeflowError(r.code, 'm').headers, r.code).toEqual(RETRY_AFTER_HEADERS);
    }
    expect(RETRY_AFTER_HEADERS).toEqual({ 'Retry-After': String(RETRY_AFTER_SECONDS) });
  });

  it('revives an error that crossed a thread, unknown codes as INTERNAL', () => {
    expect(reviveError('TRAINING_DATA_INVALID', 'too few rows')).toMatchObject({ code: 'TRAINING_DATA_INVALID', message: 'too few rows' });
    expect(reviveError('NO_SUCH_CODE', 'x')).toMatchObject({ code: 'INTERNAL', status: 500, message: 'x' });
  });
});
