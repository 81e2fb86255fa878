/**
 * A feedback log damaged in the middle (issue 12): the engine refuses to start, naming the segment
 * and the byte offset; with FEEDBACK_REPAIR=true it starts from the last good record, with exactly
 * the records before the damage learned (weights bit for bit those of a learner given them alone).
 * The real CLI, killed with -9 so that the records are in the log and not in a checkpoint.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, segmentName } from '../src/learning/feedback-log';
import { SgdLearner, validateSgdOptions, type SgdOptions } from '../src/learning/sgd';
import { makeRows, request, waitFor } from './helpers/engine';
import { engineReady, killEngine, serveEngine, spawnEngine, stopEngines } from './helpers/engine-child';

const F = 16;
const RECORDS = 40;
const DAMAGED = 20; // seq of the damaged record: 19 come before it
const dirs: string[] = [];

afterEach(async () => {
  await stopEngines();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const rows = makeRows(RECORDS + 1, F, 31);
const labels = Array.from({ length: RECORDS + 1 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
const learn = (port: number, i: number) =>
  request(port, 'POST', '/learn', JSON.stringify({ features: Array.from(rows.subarray(i * F, (i + 1) * F)), label: labels[i] }), { 'content-type': 'application/json' });
const sgd = async (port: number) => (await request(port, 'GET', '/models/sgd')).json() as { updates: number; weights: number[]; bias: number; options: SgdOptions };

function frameOffsets(buf: Buffer): number[] {
  const out: number[] = [];
  for (let o = SEGMENT_HEADER_BYTES; o < buf.length; o += FRAME_HEADER_BYTES + buf.readUInt32LE(o)) out.push(o);
  return out;
}

describe('a feedback log damaged in the middle', () => {
  it('stops the start naming segment and byte; FEEDBACK_REPAIR=true starts from the last good record and keeps every record before it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-repair-'));
    dirs.push(dir);
    const first = await serveEngine(dir);
    const options = (await sgd(first.port)).options;
    for (let i = 0; i < RECORDS; i++) expect((await learn(first.port, i)).status).toBe(202);
    await killEngine(first.child);

    const segment = path.join(dir, 'feedback', segmentName(1));
    const bytes = readFileSync(segment);
    const offsets = frameOffsets(bytes);
    expect(offsets).toHaveLength(RECORDS);
    const at = offsets[DAMAGED - 1]!;
    bytes[at + FRAME_HEADER_BYTES + 5]! ^= 0x08; // one bit of the record's payload
    writeFileSync(segment, bytes);

    const refused = spawnEngine(dir);
    await refused.exitPromise;
    expect(refused.exitCode).toBe(1);
    const out = refused.output();
    expect(out).toContain('engine failed to start: FEEDBACK_LOG_CORRUPT');
    expect(out).toContain(`feedback log segment ${segment} is damaged: a checksum mismatch in the frame expected to hold seq ${DAMAGED} at byte ${at}`);
    expect(out).toContain(`an intact record follows it (seq ${DAMAGED + 1} at byte ${offsets[DAMAGED]})`);
    expect(out).toContain(`FEEDBACK_REPAIR=true (--feedback-repair) to keep the ${DAMAGED - 1} records before it`);
    expect(readFileSync(segment).equals(bytes)).toBe(true);

    const repaired = spawnEngine(dir, { FEEDBACK_REPAIR: 'true' });
    const port = await engineReady(repaired);
    await waitFor(() => /FEEDBACK_REPAIR: acknowledged feedback was damaged/.test(repaired.output()), 'the repair warning');
    const m = await sgd(port);
    expect(m.updates).toBe(DAMAGED - 1);
    const ref = new SgdLearner(validateSgdOptions(options));
    for (let i = 0; i < DAMAGED - 1; i++) ref.learn(rows, i, labels[i] as 0 | 1);
    const w = new Float64Array(F);
    const bias = ref.effectiveWeights(w);
    expect(m.weights).toEqual(Array.from(w));
    expect(m.bias).toBe(bias);
    // Nothing deleted: the damaged segment is kept whole beside the cut one.
    expect(readdirSync(path.join(dir, 'feedback'))).toContain(`${segmentName(1)}.discarded`);
    expect(readFileSync(`${segment}.discarded`).equals(bytes)).toBe(true);
    expect(readFileSync(segment).length).toBe(at);

    // It goes on from the last good record; a later start needs no flag.
    expect((await learn(port, RECORDS)).status).toBe(202);
    await killEngine(repaired);
    const again = await serveEngine(dir);
    expect((await sgd(again.port)).updates).toBe(DAMAGED);
  });
});
