/**
 * A reference encoder and decoder of the binary tensor data extension, written from its text
 * (triton-inference-server/server docs/protocol/extension_binary_data.md), not from the engine:
 * the JSON inference header, then each binary tensor's bytes in the order of the tensors in the
 * header; `Inference-Header-Content-Length` is the header's byte length; tensors are
 * little-endian, row-major, without padding.
 */
import { request, type Reply } from './engine';

export const F = 16;

export function le(datatype: string, values: number[]): Buffer {
  const size = { FP32: 4, FP64: 8, INT32: 4, INT64: 8, UINT8: 1, INT8: 1, INT16: 2, UINT16: 2, UINT32: 4, UINT64: 8 }[datatype]!;
  const b = Buffer.alloc(values.length * size);
  values.forEach((v, i) => {
    const o = i * size;
    switch (datatype) {
      case 'FP32': b.writeFloatLE(v, o); break;
      case 'FP64': b.writeDoubleLE(v, o); break;
      case 'INT32': b.writeInt32LE(v, o); break;
      case 'INT64': b.writeBigInt64LE(BigInt(v), o); break;
      case 'UINT8': b.writeUInt8(v, o); break;
      case 'INT8': b.writeInt8(v, o); break;
      case 'INT16': b.writeInt16LE(v, o); break;
      case 'UINT16': b.writeUInt16LE(v, o); break;
      case 'UINT32': b.writeUInt32LE(v, o); break;
      default: b.writeBigUInt64LE(BigInt(v), o);
    }
  });
  return b;
}

export interface BinaryRequest {
  body: Buffer;
  headerLength: number;
}

/** A request with its input binary: `header` gets parameters.binary_data_size filled in. */
export function encodeBinaryRequest(header: Record<string, any>, tensor: Buffer): BinaryRequest {
  const h = JSON.parse(JSON.stringify(header));
  h.inputs[0].parameters = { ...(h.inputs[0].parameters ?? {}), binary_data_size: tensor.length };
  delete h.inputs[0].data;
  const json = Buffer.from(JSON.stringify(h), 'utf8');
  return { body: Buffer.concat([json, tensor]), headerLength: json.length };
}

export interface DecodedAnswer {
  header: any;
  /** Per output name with binary data: its bytes. */
  blobs: Record<string, Buffer>;
}

export function decodeBinaryAnswer(reply: Reply): DecodedAnswer {
  const len = Number(reply.headers['inference-header-content-length']);
  const header = JSON.parse(reply.body.subarray(0, len).toString('utf8'));
  const blobs: Record<string, Buffer> = {};
  let at = len;
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    blobs[o.name] = reply.body.subarray(at, at + size);
    at += size;
  }
  if (at !== reply.body.length) throw new Error(`answer has ${reply.body.length - at} bytes past its tensors`);
  return { header, blobs };
}

export function postInfer(port: number, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(port, 'POST', path, typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json', ...headers });
}

export function postBinaryInfer(port: number, path: string, req: BinaryRequest, headers: Record<string, string> = {}): Promise<Reply> {
  return request(port, 'POST', path, req.body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(req.headerLength), ...headers });
}

export function fp32(values: ArrayLike<number>): number[] {
  return Array.from(values, (v) => Math.fround(v));
}
