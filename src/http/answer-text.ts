/**
 * The JSON text of a /predict answer (SPEC §3), written as bytes into one reusable buffer:
 *
 *   {"model":"ensemble","version":"…"[,"id":"…"],"label":"UP","class":1,"confidence":0.880797,"probabilities":[0.119203,0.880797]}
 *   {"model":"ensemble","version":"…"[,"id":"…"],"predictions":[{"label":…,"probabilities":[…]},…]}
 *
 * Each probability is its float32's shortest text (./float32-text), and `confidence`, which is
 * one of the two, is copied from the bytes already written instead of being converted twice.
 * Per answer nothing is allocated but the view returned (and the id's text, when there is one):
 * the constant parts (`{"model":…,"version":…`, the row heads per class) are bytes made once per
 * model and version. String concatenation allocated a string per piece and uWS then flattened
 * and encoded the result again.
 *
 * The view is valid until the next render: the caller hands it to uWS at once (`tryEnd` copies
 * what it cannot write, and respond.ts copies the rest on backpressure).
 */
import { writeFloat32 } from './float32-text';

/** What the text needs of the model that answered. */
export interface AnswerModel {
  readonly name: string;
  readonly classLabels: readonly [string, string];
}

interface Prefix {
  name: string;
  version: string;
  bytes: Uint8Array;
}

// A probability takes at most 16 bytes (writeFloat32's room in the table's range, which holds
// [1e-14, 1]); 48 covers any float32 outside it.
const FLOAT_ROOM = 48;
const MAX_PREFIXES = 16;
const encoder = new TextEncoder();
const ID = encoder.encode(',"id":');
const PREDICTIONS = encoder.encode(',"predictions":[');
const PROBABILITIES = encoder.encode(',"probabilities":[');

export class AnswerText {
  private buf = new Uint8Array(1 << 16);
  /** `{"model":"…","version":"…"` per model name and served version, most recent first. */
  private readonly prefixes: Prefix[] = [];
  /** `"label":"…","class":c,"confidence":` per class, per class-label pair. */
  private readonly heads = new WeakMap<readonly [string, string], [Uint8Array, Uint8Array]>();

  /**
   * The answer for rows first .. first+rows of a batch's probabilities (two per row) and labels.
   * `single`: the one-row shape of `{"features": …}`, the row's fields at the top level.
   */
  render(m: AnswerModel, version: string, id: string | undefined, single: boolean, probs: Float32Array, labels: Int32Array, first: number, rows: number): Uint8Array {
    const prefix = this.prefix(m.name, version);
    const heads = this.headsOf(m.classLabels);
    const idText = id === undefined ? '' : JSON.stringify(id);
    const perRow = Math.max(heads[0].length, heads[1].length) + 3 * FLOAT_ROOM + 24;
    let buf = this.ensure(prefix.length + 3 * idText.length + 32 + rows * perRow);
    buf.set(prefix, 0);
    let pos = prefix.length;
    if (id !== undefined) {
      pos = putBytes(buf, pos, ID);
      pos += encoder.encodeInto(idText, buf.subarray(pos)).written;
    }
    if (single) {
      buf[pos++] = 0x2c; // ,
      pos = writeRow(buf, pos, heads, probs[2 * first]!, probs[2 * first + 1]!, labels[first]!);
    } else {
      pos = putBytes(buf, pos, PREDICTIONS);
      for (let r = first; r < first + rows; r++) {
        if (r !== first) buf[pos++] = 0x2c;
        buf[pos++] = 0x7b; // {
        pos = writeRow(buf, pos, heads, probs[2 * r]!, probs[2 * r + 1]!, labels[r]!);
        buf[pos++] = 0x7d; // }
      }
      buf[pos++] = 0x5d; // ]
    }
    buf[pos++] = 0x7d;
    return buf.subarray(0, pos);
  }

  private ensure(bytes: number): Uint8Array {
    if (this.buf.length < bytes) this.buf = new Uint8Array(Math.max(bytes, 2 * this.buf.length));
    return this.buf;
  }

  private prefix(name: string, version: string): Uint8Array {
    const list = this.prefixes;
    for (let k = 0; k < list.length; k++) {
      const p = list[k]!;
      if (p.name === name && p.version === version) return p.bytes;
    }
    // The name goes in unescaped, as before: model names are checked at registration.
    const bytes = encoder.encode(`{"model":"${name}","version":"${version}"`);
    list.unshift({ name, version, bytes });
    if (list.length > MAX_PREFIXES) list.pop();
    return bytes;
  }

  private headsOf(labels: readonly [string, string]): [Uint8Array, Uint8Array] {
    let h = this.heads.get(labels);
    if (!h) {
      h = [
        encoder.encode(`"label":${JSON.stringify(labels[0])},"class":0,"confidence":`),
        encoder.encode(`"label":${JSON.stringify(labels[1])},"class":1,"confidence":`),
      ];
      this.heads.set(labels, h);
    }
    return h;
  }
}

/** `"label":…,"class":c,"confidence":x,"probabilities":[p0,p1]`; x is copied from the text of p_c. */
function writeRow(buf: Uint8Array, pos: number, heads: [Uint8Array, Uint8Array], p0: number, p1: number, cls: number): number {
  pos = putBytes(buf, pos, heads[cls === 1 ? 1 : 0]);
  const c0 = pos;
  pos = writeFloat32(buf, pos, cls === 1 ? p1 : p0);
  const c1 = pos;
  pos = putBytes(buf, pos, PROBABILITIES);
  if (cls === 1) {
    pos = writeFloat32(buf, pos, p0);
    buf[pos++] = 0x2c;
    for (let k = c0; k < c1; k++) buf[pos++] = buf[k]!;
  } else {
    for (let k = c0; k < c1; k++) buf[pos++] = buf[k]!;
    buf[pos++] = 0x2c;
    pos = writeFloat32(buf, pos, p1);
  }
  buf[pos++] = 0x5d;
  return pos;
}

// Loops, not buf.set or copyWithin: for these few bytes the builtin call costs more than the copy.
function putBytes(buf: Uint8Array, pos: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) buf[pos++] = bytes[i]!;
  return pos;
}
