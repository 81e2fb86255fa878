/**
 * No function in src/ or workers/ runs longer than MAX_LINES lines: past that, a function does
 * several things that want names of their own. Every function-like node with a body (function,
 * function expression, arrow, method, constructor, accessor) is measured with the TypeScript
 * parser from its first token (its doc comment excluded) to its closing brace; a nested function
 * counts inside its parent as well as on its own.
 *
 * The allowlist is for hot loops where splitting was measured to cost speed; each entry carries
 * the measurement. An entry that no longer matches a long function fails too, so it cannot
 * outlive its reason.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const SCANNED_DIRS = ['src', 'workers'];
const MAX_LINES = 80;

interface Allowed {
  /** `file:name` as measure() names it. */
  id: string;
  /** The longest it may grow to: growth past the measured shape needs a new measurement. */
  maxLines: number;
  justification: string;
}

const ALLOWLIST: Allowed[] = [];

interface Measured {
  id: string;
  file: string;
  name: string;
  line: number;
  lines: number;
}

function propertyName(name: ts.PropertyName | ts.BindingName | undefined): string | undefined {
  if (name === undefined) return undefined;
  if (ts.isIdentifier(name) || ts.isPrivateIdentifier(name) || ts.isStringLiteralLike(name) || ts.isNumericLiteral(name)) {
    return name.text;
  }
  return undefined;
}

/** A readable name: the declared one, else what it is assigned to, prefixed by its class or object. */
function nameOf(node: ts.FunctionLikeDeclaration): string | undefined {
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const own = propertyName(node.name);
  if (own !== undefined) return own;
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return propertyName(parent.name);
  }
  if (ts.isBinaryExpression(parent) && parent.operatorToken.kind === ts.SyntaxKind.EqualsToken) {
    return parent.left.getText();
  }
  return undefined;
}

function ownerOf(node: ts.Node): string | undefined {
  const parent = node.parent;
  if ((ts.isClassDeclaration(parent) || ts.isClassExpression(parent)) && parent.name !== undefined) return parent.name.text;
  return undefined;
}

/** Every function-like node with a body in one file, with its line span. */
function measure(file: string, text: string): Measured[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: Measured[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const fn = node as ts.FunctionLikeDeclaration;
      const start = sf.getLineAndCharacterOfPosition(fn.getStart(sf)).line + 1;
      const end = sf.getLineAndCharacterOfPosition(fn.getEnd()).line + 1;
      const owner = ownerOf(fn);
      const base = nameOf(fn) ?? `<anonymous@${start}>`;
      const name = owner === undefined ? base : `${owner}.${base}`;
      found.push({ id: `${file}:${name}`, file, name, line: start, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function sourceFiles(): string[] {
  const files: string[] = [];
  for (const dir of SCANNED_DIRS) {
    for (const entry of readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        files.push(path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
      }
    }
  }
  return files.sort();
}

/** Offenders against the limit and allowlist entries that no longer describe a long function. */
function check(functions: Measured[], allowlist: Allowed[], max = MAX_LINES): { tooLong: string[]; stale: string[] } {
  const allowed = new Map(allowlist.map((a) => [a.id, a]));
  const tooLong: string[] = [];
  for (const f of functions) {
    if (f.lines <= max) continue;
    const a = allowed.get(f.id);
    if (a !== undefined && f.lines <= a.maxLines) continue;
    const over = a === undefined ? `limit ${max}` : `allowlisted up to ${a.maxLines}`;
    tooLong.push(`${f.file}:${f.line} ${f.name}: ${f.lines} lines (${over})`);
  }
  const stale = allowlist
    .filter((a) => !functions.some((f) => f.id === a.id && f.lines > max))
    .map((a) => `${a.id}: allowlisted but no longer over ${max} lines (or renamed): remove the entry`);
  return { tooLong, stale };
}

describe('the measurer itself', () => {
  it('measures every kind of function with a body, from its first token to its closing brace', () => {
    const body = (n: number): string => Array.from({ length: n }, (_, i) => `  x${i}();`).join('\n');
    const text = [
      '/** a doc comment is not counted */',
      `function decl() {\n${body(3)}\n}`, // 5 lines
      `const arrow = (a: number) => {\n${body(1)}\n};`, // 3
      'const expr = function () { return 1; };', // 1
      `class K {\n  constructor() {\n${body(2)}\n  }\n  method() { return 2; }\n  get g() { return 3; }\n}`,
      'declare function bodiless(): void;',
      'interface I { sig(): void }',
      'const obj = { m() { return 4; }, p: () => 5 };',
    ].join('\n');
    const got = measure('f.ts', text).map((f) => [f.name, f.line, f.lines]);
    expect(got).toEqual([
      ['decl', 2, 5],
      ['arrow', 7, 3],
      ['expr', 10, 1],
      ['K.constructor', 12, 4],
      ['K.method', 16, 1],
      ['K.g', 17, 1],
      ['m', 21, 1],
      ['p', 21, 1],
    ]);
  });

  it('fails a function over the limit, lets an allowlisted one through, and flags a stale entry', () => {
    const fn = (name: string, lines: number): Measured => ({ id: `a.ts:${name}`, file: 'a.ts', name, line: 1, lines });
    const result = check(
      [fn('short', 80), fn('long', 81), fn('hot', 95), fn('grown', 120)],
      [
        { id: 'a.ts:hot', maxLines: 100, justification: 'measured' },
        { id: 'a.ts:grown', maxLines: 100, justification: 'measured' },
        { id: 'a.ts:gone', maxLines: 100, justification: 'measured' },
      ],
    );
    expect(result.tooLong).toEqual(['a.ts:1 long: 81 lines (limit 80)', 'a.ts:1 grown: 120 lines (allowlisted up to 100)']);
    expect(result.stale).toEqual(['a.ts:gone: allowlisted but no longer over 80 lines (or renamed): remove the entry']);
  });
});

describe('the repository', () => {
  const functions = sourceFiles().flatMap((file) => measure(file, readFileSync(path.join(ROOT, file), 'utf8')));

  it('is read at all', () => {
    expect(functions.length).toBeGreaterThan(500);
    expect(functions.some((f) => f.file === 'src/http/json-body.ts' && f.name === 'decodeJsonBody')).toBe(true);
  });

  it('every allowlist entry says why, with its measurement', () => {
    for (const a of ALLOWLIST) expect(a.justification.length, a.id).toBeGreaterThan(40);
  });

  it(`has no function longer than ${MAX_LINES} lines outside the allowlist`, () => {
    const { tooLong, stale } = check(functions, ALLOWLIST);
    expect(tooLong, `${tooLong.length} function(s) over ${MAX_LINES} lines:\n${tooLong.join('\n')}`).toEqual([]);
    expect(stale, stale.join('\n')).toEqual([]);
  });
});
