/**
 * Before a scenario is measured, each server must answer its bodies correctly: status, row count,
 * answer shape, probabilities that are probabilities, and the engine must agree with the baseline
 * (same model). A server that fails is not measured.
 */
import type { BodySet } from '../lib/bodies';
import { request, type HttpAnswer } from '../lib/request';
import type { Scenario } from './scenarios';
import type { Server } from './servers';

export interface Checked {
  ok: boolean;
  problems: string[];
  /** p(class 1) for each row of body 0. */
  p1: number[];
  labels: string[];
  version: string | null;
}

function isProb(v: unknown): v is number {
  return typeof v === 'number' && v >= 0 && v <= 1;
}

function checkRow(o: unknown, where: string, problems: string[]): { p1: number; label: string } | null {
  if (typeof o !== 'object' || o === null) {
    problems.push(`${where}: not an object`);
    return null;
  }
  const r = o as { label?: unknown; class?: unknown; confidence?: unknown; probabilities?: unknown };
  const p = r.probabilities;
  if (!Array.isArray(p) || p.length !== 2 || !isProb(p[0]) || !isProb(p[1])) {
    problems.push(`${where}: "probabilities" must be two numbers in [0, 1], got ${JSON.stringify(p)}`);
    return null;
  }
  if (Math.abs(p[0] + p[1] - 1) > 1e-4) problems.push(`${where}: probabilities sum to ${p[0] + p[1]}`);
  const cls = p[1] > p[0] ? 1 : 0;
  if (r.class !== cls) problems.push(`${where}: "class" is ${JSON.stringify(r.class)}, argmax of the probabilities is ${cls}`);
  if (r.label !== (r.class === 1 ? 'UP' : 'DOWN')) problems.push(`${where}: "label" ${JSON.stringify(r.label)} does not match "class" ${JSON.stringify(r.class)}`);
  const conf = r.class === 1 ? p[1] : p[0];
  if (r.confidence !== conf) problems.push(`${where}: "confidence" ${JSON.stringify(r.confidence)} is not the probability of the class (${conf})`);
  return { p1: p[1], label: String(r.label) };
}

/** A binary answer: one float32 p(class 1) per row and the model in headers; false when unusable. */
function checkBinary(a: HttpAnswer, sc: Scenario, show: string, out: Checked, first: boolean): boolean {
  if (a.body.length !== 4 * sc.rows) {
    out.problems.push(`${show} -> 200 with ${a.body.length} bytes, expected ${4 * sc.rows} (${sc.rows} float32)`);
    return false;
  }
  const name = a.headers['x-model-name'];
  const ver = a.headers['x-model-version'];
  if (typeof name !== 'string' || typeof ver !== 'string') out.problems.push(`${show} -> 200 without X-Model-Name / X-Model-Version headers`);
  else out.version = ver;
  for (let r = 0; r < sc.rows; r++) {
    const v = a.body.readFloatLE(4 * r);
    if (!isProb(v)) out.problems.push(`${show} -> row ${r}: ${v} is not a probability`);
    if (first) {
      out.p1.push(v);
      out.labels.push(v > 1 - v ? 'UP' : 'DOWN');
    }
  }
  return true;
}

/** A JSON answer: model, version and one well-formed prediction per row; false when unusable. */
function checkJson(a: HttpAnswer, sc: Scenario, show: string, out: Checked, first: boolean): boolean {
  const answerText = a.body.toString('utf8', 0, 300);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(a.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    out.problems.push(`${show} -> 200 with a body that is not JSON: ${answerText}`);
    return false;
  }
  if (typeof doc.model !== 'string' || typeof doc.version !== 'string' || !/^[0-9a-f]{12}$/.test(doc.version)) {
    out.problems.push(`${show} -> "model"/"version" missing or malformed: ${answerText}`);
  } else out.version = doc.version;
  const rows = sc.kind === 'features' ? [doc] : doc.predictions;
  if (!Array.isArray(rows) || rows.length !== sc.rows) {
    out.problems.push(`${show} -> expected ${sc.rows} prediction(s), got ${Array.isArray(rows) ? rows.length : 'none'}: ${answerText}`);
    return false;
  }
  rows.forEach((row: unknown, r: number) => {
    const c = checkRow(row, `${show} -> row ${r}`, out.problems);
    if (c && first) {
      out.p1.push(c.p1);
      out.labels.push(c.label);
    }
  });
  return true;
}

/** Sends the scenario's first three bodies; p1 and labels are those of body 0. */
export async function checkServer(s: Server, sc: Scenario, set: BodySet): Promise<Checked> {
  const out: Checked = { ok: true, problems: [], p1: [], labels: [], version: null };
  for (let b = 0; b < 3; b++) {
    const body = set.bodies[b]!;
    const show = `POST /predict (${set.contentType}, ${body.length} bytes: ${set.contentType.includes('json') ? body.toString('utf8', 0, 120) + (body.length > 120 ? '...' : '') : 'float32 rows'})`;
    let a: HttpAnswer;
    try {
      a = await request(s.port, 'POST', '/predict', body, { 'Content-Type': set.contentType });
    } catch (err) {
      out.problems.push(`${show}: ${(err as Error).message}`);
      out.ok = false;
      continue;
    }
    if (a.status !== 200) {
      out.problems.push(`${show} -> ${a.status} ${a.body.toString('utf8', 0, 300)}`);
      out.ok = false;
      continue;
    }
    const usable = sc.kind === 'binary' ? checkBinary(a, sc, show, out, b === 0) : checkJson(a, sc, show, out, b === 0);
    if (!usable) out.ok = false;
  }
  return out;
}

/** Where the engine's answers to body 0 differ from the baseline's (same model: they should not). */
export function compareAnswers(e: Checked, b: Checked): string[] {
  const problems: string[] = [];
  if (e.p1.length > 0 && e.p1.length === b.p1.length) {
    let worst = 0;
    let at = 0;
    let labelDiffs = 0;
    e.p1.forEach((v, i) => {
      const d = Math.abs(v - b.p1[i]!);
      if (d > worst) [worst, at] = [d, i];
      if (e.labels[i] !== b.labels[i] && d > 1e-6) labelDiffs++;
    });
    if (worst > 1e-5) problems.push(`engine and baseline disagree on body 0: max |p1 difference| ${worst.toExponential(2)} at row ${at} (engine ${e.p1[at]}, baseline ${b.p1[at]})`);
    if (labelDiffs > 0) problems.push(`engine and baseline give different labels for ${labelDiffs} row(s) of body 0`);
  }
  if (e.version && b.version && e.version !== b.version) problems.push(`model versions differ: engine ${e.version}, baseline ${b.version} (same file?)`);
  return problems;
}
