/**
 * CRC-32 (IEEE 802.3 / zlib polynomial, reflected 0xEDB88320), the checksum of feedback-log
 * frames and checkpoints. Node has a native one in zlib from 20.15; `engines` allows any Node 20,
 * so older runtimes get the table-driven JavaScript version, which gives the same numbers
 * (both are tested against the standard check value of "123456789", 0xCBF43926).
 */
import * as zlib from 'node:zlib';

let table: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (table) return table;
  table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** Portable CRC-32; `crc` continues a previous result, so a value can be computed in pieces. */
export function crc32Js(data: Uint8Array, crc = 0): number {
  const t = crcTable();
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

type Crc32 = (data: Uint8Array, crc?: number) => number;

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 of `data` (continuing `crc` when given), as an unsigned 32-bit integer. */
export const crc32: Crc32 = typeof native === 'function' ? (data, crc = 0) => native(data, crc) : crc32Js;
