/**
 * The checked header of the last request, kept by its bytes. A client sends the same JSON around
 * its tensor request after request (the same input name, datatype, shape, outputs), so when the
 * bytes outside the tensor data equal the last ones, the header checked then is the header now:
 * no JSON.parse, no checks, no allocation. Headers are immutable once checked. Only small headers
 * are kept.
 */
import type { InferHeader, InputSpec } from './request';

const MAX_KEPT_BYTES = 1024;

export class HeaderCache {
  private spec: InputSpec | null = null;
  private a: Uint8Array = new Uint8Array(0);
  private b: Uint8Array = new Uint8Array(0);
  private h: InferHeader | null = null;

  /** The header kept for `spec` when bytes [s0, e0) and [s1, e1) of `body` are the kept ones. */
  get(spec: InputSpec, body: Uint8Array, s0: number, e0: number, s1: number, e1: number): InferHeader | null {
    if (this.spec !== spec || this.h === null) return null;
    return same(body, s0, e0, this.a) && same(body, s1, e1, this.b) ? this.h : null;
  }

  set(spec: InputSpec, body: Uint8Array, s0: number, e0: number, s1: number, e1: number, h: InferHeader): void {
    if (e0 - s0 + e1 - s1 > MAX_KEPT_BYTES) return;
    this.spec = spec;
    this.a = body.slice(s0, e0);
    this.b = body.slice(s1, e1);
    this.h = h;
  }
}

function same(body: Uint8Array, s: number, e: number, kept: Uint8Array): boolean {
  if (e - s !== kept.length) return false;
  for (let i = 0; i < kept.length; i++) if (body[s + i] !== kept[i]) return false;
  return true;
}
