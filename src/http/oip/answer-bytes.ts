/**
 * The bytes of an infer answer, written into one buffer reused by every answer: the answer is
 * handed to the socket before the next one starts (the responder copies any part the socket does
 * not take at once), so nothing per answer is allocated but the few header strings.
 */
import { writeFloat32 } from '../float32-text';

export const COMMA = 0x2c;
const D0 = 0x30;
const MINUS = 0x2d;
const INITIAL_BYTES = 16 * 1024;

export class AnswerBytes {
  buf = Buffer.allocUnsafe(INITIAL_BYTES);
  at = 0;

  /** Begins an answer of at most `bound` bytes (more may be reserved later). */
  start(bound: number): void {
    this.at = 0;
    if (this.buf.length < bound) this.buf = Buffer.allocUnsafe(Math.max(bound, 2 * this.buf.length));
  }

  /** Room for `bytes` more; what was written is kept. */
  reserve(bytes: number): void {
    const need = this.at + bytes;
    if (this.buf.length >= need) return;
    const bigger = Buffer.allocUnsafe(Math.max(need, 2 * this.buf.length));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }

  byte(c: number): void {
    this.buf[this.at++] = c;
  }

  /** Any text (model names and ids may be non-ASCII). Within start()'s bound: 3 bytes a UTF-16 unit. */
  text(s: string): void {
    this.at += this.buf.write(s, this.at, 'utf8');
  }

  /** Text known to be ASCII (names, numbers, punctuation). */
  ascii(s: string): void {
    const b = this.buf;
    let at = this.at;
    for (let j = 0; j < s.length; j++) b[at++] = s.charCodeAt(j);
    this.at = at;
  }

  /** p[from..to) comma-separated, each the shortest text that reads back to the same float32. */
  floats(p: Float32Array, from: number, to: number): void {
    const b = this.buf;
    let at = this.at;
    for (let i = from; i < to; i++) {
      if (i !== from) b[at++] = COMMA;
      at = writeFloat32(b, at, p[i]!);
    }
    this.at = at;
  }

  /** l[from..to) comma-separated. */
  ints(l: Int32Array, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      if (i !== from) this.byte(COMMA);
      this.int(l[i]!);
    }
  }

  private int(v: number): void {
    if (v < 0) {
      this.byte(MINUS);
      v = -v;
    }
    if (v < 10) {
      this.byte(D0 + v);
      return;
    }
    this.ascii(String(v));
  }

  view(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

export const answerBytes = new AnswerBytes();
