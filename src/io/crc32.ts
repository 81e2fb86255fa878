/**
 * CRC-32 (IEEE 802.3 / zlib polynomial), the checksum of feedback-log frames and checkpoints.
 * Node's zlib has had a native one since 20.15, which `engines` requires.
 */
import * as zlib from 'node:zlib';

/** CRC-32 of `data` (continuing `crc` when given), as an unsigned 32-bit integer. */
export function crc32(data: Uint8Array, crc = 0): number {
  return zlib.crc32(data, crc);
}
