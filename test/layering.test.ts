/**
 * Dependencies point one way. Every relative import of src/ and workers/ (import, import type,
 * export ... from, require, import(), import('...').T) is read with the TypeScript parser, so an
 * import written in a comment or a string is not one, resolved to its file, and checked against
 * the layer table below: an import goes to a strictly lower rank or stays inside its own group.
 * A file no group claims fails, so a new folder is placed in the table on purpose, not by
 * accident. Module-level import cycles fail too (type-only imports count: a cycle of types is
 * still two modules that cannot be understood, or moved, one without the other).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const SCANNED_DIRS = ['src', 'workers'];

interface Group {
  name: string;
  rank: number;
  /** Repository-relative, '/' separated: a path ending in '/' claims the folder and everything under it. */
  paths: string[];
}

// Lowest first. Groups of one rank are peers: neither may import the other.
const LAYERS: Group[] = [
  { name: 'errors', rank: 0, paths: ['src/errors.ts'] },
  { name: 'paths', rank: 0, paths: ['src/paths.ts'] },
  // io is general input and durable files; telemetry is imported by everything and imports none of the engine.
  { name: 'io', rank: 1, paths: ['src/io/'] },
  { name: 'telemetry', rank: 1, paths: ['src/telemetry/'] },
  { name: 'models', rank: 2, paths: ['src/models/'] },
  { name: 'drift', rank: 2, paths: ['src/drift/'] },
  { name: 'training', rank: 3, paths: ['src/training/'] },
  { name: 'cache', rank: 4, paths: ['src/cache/'] },
  { name: 'pool', rank: 5, paths: ['src/pool/'] },
  { name: 'batching', rank: 6, paths: ['src/batching/'] },
  { name: 'learning', rank: 7, paths: ['src/learning/'] },
  { name: 'retraining', rank: 8, paths: ['src/retraining/'] },
  // Redis connections, the feedback stream and its entry kinds: beside retraining, neither imports the other.
  { name: 'replication', rank: 8, paths: ['src/replication/'] },
  { name: 'http', rank: 9, paths: ['src/http/'] },
  // Thread entry points: they import src/, and nothing in src/ imports them (see checkLayers).
  { name: 'workers', rank: 9, paths: ['workers/'] },
  { name: 'config', rank: 10, paths: ['src/config.ts'] },
  // The composition root; app.ts is being split into app/, and both halves are one group meanwhile.
  { name: 'app', rank: 11, paths: ['src/app.ts', 'src/app/'] },
  // The load generator is a client of the engine over HTTP: beside the composition root, so neither
  // reaches the other, and below the commands that drive both.
  { name: 'load', rank: 11, paths: ['src/load/'] },
  { name: 'cli', rank: 12, paths: ['src/cli/'] },
];

interface ImportEdge {
  /** Repository-relative paths, '/' separated. */
  from: string;
  to: string;
  line: number;
  typeOnly: boolean;
}

interface RawImport {
  specifier: string;
  line: number;
  typeOnly: boolean;
}

function groupOf(file: string, layers: Group[] = LAYERS): Group | undefined {
  return layers.find((g) => g.paths.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p)));
}

function describeGroup(file: string, g: Group | undefined): string {
  return g === undefined ? `${file} (in no layer)` : `${g.name} (rank ${g.rank})`;
}

/** Every arrow against the table, one readable line each. */
function checkLayers(edges: ImportEdge[], layers: Group[] = LAYERS): string[] {
  const problems: string[] = [];
  for (const e of edges) {
    const from = groupOf(e.from, layers);
    const to = groupOf(e.to, layers);
    const where = `${e.from}:${e.line} -> ${e.to}`;
    if (from === undefined || to === undefined) {
      const unknown = [from === undefined ? e.from : null, to === undefined ? e.to : null].filter((x) => x !== null);
      problems.push(`${where}: ${unknown.join(' and ')} in no layer (add the folder to LAYERS in test/layering.test.ts)`);
      continue;
    }
    if (from === to) continue;
    const arrow = `${describeGroup(e.from, from)} imports ${describeGroup(e.to, to)}`;
    if (e.from.startsWith('src/') && to.name === 'workers') {
      problems.push(`${where}: ${arrow}; nothing in src/ may import a thread entry point`);
    } else if (to.rank === from.rank) {
      problems.push(`${where}: ${arrow}; peers of one rank may not import each other`);
    } else if (to.rank > from.rank) {
      problems.push(`${where}: ${arrow}; an import may only go to a lower rank`);
    }
  }
  return problems;
}

/** Strongly connected components (Tarjan) of more than one module, or a module importing itself; each as one cycle path. */
function findCycles(edges: ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, []);
    if (!next.has(e.to)) next.set(e.to, []);
    next.get(e.from)!.push(e.to);
  }
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next.get(v)!.includes(v)) components.push(component);
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) visit(v);
  return components.map((c) => cyclePath(c, next));
}

/** One concrete loop through a component, from its first module back to it (breadth-first, so the shortest). */
function cyclePath(component: string[], next: Map<string, string[]>): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0]!;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of next.get(v)!) {
      if (!members.has(w)) continue;
      if (w === start) {
        const loop = [start];
        for (let u = v; u !== start; u = cameFrom.get(u)!) loop.splice(1, 0, u);
        loop.push(start);
        return loop;
      }
      if (!cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

function stringArg(node: ts.Node | undefined): string | undefined {
  return node !== undefined && ts.isStringLiteralLike(node) ? node.text : undefined;
}

/** The module specifiers a source file really imports: declarations and calls, never text in comments or strings. */
function importsOf(fileName: string, text: string): RawImport[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: RawImport[] = [];
  const add = (node: ts.Node, specifier: string | undefined, typeOnly: boolean): void => {
    if (specifier === undefined) return;
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    found.push({ specifier, line, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const allNamedTypes =
        clause !== undefined &&
        clause.name === undefined &&
        clause.namedBindings !== undefined &&
        ts.isNamedImports(clause.namedBindings) &&
        clause.namedBindings.elements.length > 0 &&
        clause.namedBindings.elements.every((el) => el.isTypeOnly);
      add(node, stringArg(node.moduleSpecifier), clause?.isTypeOnly === true || allNamedTypes);
    } else if (ts.isExportDeclaration(node)) {
      add(node, stringArg(node.moduleSpecifier), node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, stringArg(node.moduleReference.expression), node.isTypeOnly);
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      if (isRequire || callee.kind === ts.SyntaxKind.ImportKeyword) add(node, stringArg(node.arguments[0]), false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, stringArg(node.argument.literal), true);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function toRepoPath(abs: string): string {
  return path.relative(ROOT, abs).split(path.sep).join('/');
}

function sourceFiles(): string[] {
  const files: string[] = [];
  for (const dir of SCANNED_DIRS) {
    for (const entry of readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        files.push(toRepoPath(path.join(entry.parentPath, entry.name)));
      }
    }
  }
  return files.sort();
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  module: ts.ModuleKind.CommonJS,
  moduleResolution: ts.ModuleResolutionKind.Node10,
};

/** The repository's relative import graph, plus every relative import that resolves to no source file. */
function importGraph(): { files: string[]; edges: ImportEdge[]; unresolved: string[] } {
  const files = sourceFiles();
  const edges: ImportEdge[] = [];
  const unresolved: string[] = [];
  for (const file of files) {
    const abs = path.join(ROOT, file);
    for (const imp of importsOf(abs, readFileSync(abs, 'utf8'))) {
      if (!imp.specifier.startsWith('.')) continue;
      const resolved = ts.resolveModuleName(imp.specifier, abs, COMPILER_OPTIONS, ts.sys).resolvedModule;
      const target = resolved === undefined ? undefined : toRepoPath(resolved.resolvedFileName);
      if (target === undefined || target.startsWith('..') || !/\.tsx?$/.test(target) || target.endsWith('.d.ts')) {
        unresolved.push(`${file}:${imp.line}: '${imp.specifier}' resolves to no source file (${target ?? 'nothing'})`);
        continue;
      }
      edges.push({ from: file, to: target, line: imp.line, typeOnly: imp.typeOnly });
    }
  }
  return { files, edges, unresolved };
}

const edge = (from: string, to: string, line = 1): ImportEdge => ({ from, to, line, typeOnly: false });

describe('the checker itself', () => {
  it('reads imports from syntax, not from text in comments or strings', () => {
    const text = [
      "import { a } from './a';",
      "import type { B } from '../b';",
      "import { type C, type D } from './cd';",
      "import * as e from './e';",
      "import './side-effect';",
      "export { f } from './f';",
      "export * from './g';",
      "import h = require('./h');",
      "const i = require('./i');",
      "async function j() { return import('./j'); }",
      "let k: import('./k').K;",
      "// import { no } from './comment';",
      "/* export * from './block-comment'; */",
      "const s = \"import { no } from './string'\";",
      "const t = `require('./template')`;",
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    const got = importsOf('x.ts', text);
    expect(got.map((g) => g.specifier)).toEqual([
      './a', '../b', './cd', './e', './side-effect', './f', './g', './h', './i', './j', './k', 'node:fs',
    ]);
    expect(got.filter((g) => g.typeOnly).map((g) => g.specifier)).toEqual(['../b', './cd', './k']);
    expect(got.find((g) => g.specifier === './i')!.line).toBe(9);
  });

  it('catches an arrow against the layers, a peer import, src importing workers and an unknown folder', () => {
    const problems = checkLayers([
      edge('src/models/registry.ts', 'src/http/predict.ts', 7),
      edge('src/drift/adwin.ts', 'src/models/scorer.ts', 3),
      edge('src/app.ts', 'workers/inference.ts', 12),
      edge('src/newthing/x.ts', 'src/errors.ts', 1),
      edge('src/http/predict.ts', 'src/errors.ts'), // down: fine
      edge('src/app/wiring.ts', 'src/app.ts'), // one group: fine
      edge('src/http/predict.ts', 'src/http/respond.ts'), // inside a folder: fine
    ]);
    expect(problems).toHaveLength(4);
    expect(problems[0]).toBe(
      'src/models/registry.ts:7 -> src/http/predict.ts: models (rank 2) imports http (rank 9); an import may only go to a lower rank',
    );
    expect(problems[1]).toMatch(/^src\/drift\/adwin\.ts:3 .*drift \(rank 2\) imports models \(rank 2\); peers/);
    expect(problems[2]).toMatch(/^src\/app\.ts:12 .*nothing in src\/ may import a thread entry point/);
    expect(problems[3]).toMatch(/^src\/newthing\/x\.ts:1 .*src\/newthing\/x\.ts in no layer/);
  });

  it('finds an import cycle and names its path', () => {
    const cycles = findCycles([
      edge('src/a.ts', 'src/b.ts'),
      edge('src/b.ts', 'src/c.ts'),
      edge('src/c.ts', 'src/a.ts'),
      edge('src/c.ts', 'src/d.ts'),
      edge('src/e.ts', 'src/e.ts'),
    ]);
    expect(cycles).toEqual([['src/a.ts', 'src/b.ts', 'src/c.ts', 'src/a.ts'], ['src/e.ts', 'src/e.ts']]);
    expect(findCycles([edge('src/a.ts', 'src/b.ts'), edge('src/b.ts', 'src/c.ts')])).toEqual([]);
  });
});

describe('the repository', () => {
  const graph = importGraph();

  it('is read at all (a checker that finds no imports proves nothing)', () => {
    expect(graph.files).toContain('src/http/predict.ts');
    expect(graph.files).toContain('workers/inference.ts');
    expect(graph.edges.length).toBeGreaterThan(100);
    // Known arrows, one per kind of statement the parser must see.
    expect(graph.edges.some((e) => e.from === 'src/http/predict.ts' && e.to === 'src/errors.ts')).toBe(true);
    expect(graph.edges.some((e) => e.from.startsWith('workers/') && e.to.startsWith('src/'))).toBe(true);
  });

  it('resolves every relative import to a source file', () => {
    expect(graph.unresolved).toEqual([]);
  });

  it('imports only down the layers or inside a group', () => {
    const unplaced = graph.files.filter((f) => groupOf(f) === undefined);
    expect(unplaced, 'files in no layer (add their folder to LAYERS)').toEqual([]);
    const problems = checkLayers(graph.edges);
    expect(problems, `${problems.length} arrow(s) against the layers:\n${problems.join('\n')}`).toEqual([]);
  });

  it('has no module-level import cycle in src/', () => {
    const cycles = findCycles(graph.edges.filter((e) => e.from.startsWith('src/') && e.to.startsWith('src/')));
    const shown = cycles.map((c) => c.join(' -> '));
    expect(shown, `${cycles.length} import cycle(s):\n${shown.join('\n')}`).toEqual([]);
  });
});
