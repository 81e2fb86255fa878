import { describe, expect, it } from 'vitest';
import { TradeflowError } from '../src/errors';
import { decodeJsonBody, decodeJsonBodyReference, type DecodedBody, type DecodeOptions } from '../src/http/json-body';
import { rng } from '../bench/lib/bodies';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

interface Outcome {
  result?: Omit<DecodedBody, 'fast'>;
  fast?: boolean;
  floats?: number[]; // uint32 bit patterns of out[0 .. rows*F)
  labels?: number[];
  error?: { code: string; message: string; status: number };
}

const SENTINEL = 0x7fc0dead; // a NaN no decoder can write: shows stray writes and missing ones

function outcome(
  fn: typeof decodeJsonBody,
  body: Uint8Array,
  F: number,
  maxRows: number,
  labelsCap: number | undefined,
): Outcome {
  const out = new Float32Array(maxRows * F);
  new Uint32Array(out.buffer).fill(SENTINEL);
  const labelsOut = labelsCap === undefined ? undefined : new Uint8Array(labelsCap).fill(7);
  const opts: DecodeOptions | undefined = labelsOut === undefined ? undefined : { labelsOut };
  try {
    const r = fn(body, F, out, maxRows, opts);
    const { fast, ...result } = r;
    return {
      result,
      fast,
      floats: Array.from(new Uint32Array(out.buffer, 0, r.rows * F)),
      labels: labelsOut === undefined ? undefined : Array.from(labelsOut.subarray(0, r.labelCount)),
    };
  } catch (err) {
    if (!(err instanceof TradeflowError)) throw err;
    return { error: { code: err.code, message: err.message, status: err.status } };
  }
}

/** Runs both paths and asserts they agree; returns the scanner's outcome. */
function both(body: string | Uint8Array, F = 4, maxRows = 8, labelsCap?: number): Outcome {
  const bytes = typeof body === 'string' ? enc(body) : body;
  const fast = outcome(decodeJsonBody, bytes, F, maxRows, labelsCap);
  const ref = outcome(decodeJsonBodyReference, bytes, F, maxRows, labelsCap);
  const { fast: _ignored, ...fastRest } = fast;
  const { fast: refFast, ...refRest } = ref;
  expect(fastRest).toEqual(refRest);
  if (ref.error === undefined) expect(refFast).toBe(false);
  return fast;
}

function floatsOf(o: Outcome): number[] {
  return Array.from(new Float32Array(new Uint32Array(o.floats!).buffer));
}

function expectError(body: string | Uint8Array, code: string, message: string, F = 4, maxRows = 8, labelsCap?: number) {
  const o = both(body, F, maxRows, labelsCap);
  expect(o.error).toEqual({ code, message, status: code === 'TOO_MANY_ROWS' ? 413 : 400 });
}

function bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

describe('decodeJsonBody: fields and shapes', () => {
  it('decodes one row from "features" on the fast path', () => {
    const o = both('{"features":[1,2.5,-3,0.125]}');
    expect(o.fast).toBe(true);
    expect(o.result).toEqual({ shape: 'features', rows: 1, model: undefined, id: undefined, label: undefined, labelCount: 0 });
    expect(floatsOf(o)).toEqual([1, 2.5, -3, 0.125]);
  });

  it('decodes "instances" rows row-major with model, id and label', () => {
    const o = both('{"instances":[[1,2,3,4],[5,6,7,8],[0.5,-0.5,1e-3,-1.5e-3]],"model":"ensemble","id":"req-42","label":1}');
    expect(o.fast).toBe(true);
    expect(o.result).toEqual({ shape: 'instances', rows: 3, model: 'ensemble', id: 'req-42', label: 1, labelCount: 0 });
    expect(floatsOf(o)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 0.5, -0.5, Math.fround(1e-3), Math.fround(-1.5e-3)]);
  });

  it('decodes "labels" into labelsOut', () => {
    const o = both('{"instances":[[1,2,3,4],[5,6,7,8],[9,10,11,12]],"labels":[1,0,1]}', 4, 8, 8);
    expect(o.fast).toBe(true);
    expect(o.result!.labelCount).toBe(3);
    expect(o.labels).toEqual([1, 0, 1]);
  });

  it('accepts label 0 written as 0.0, -0 and 0e5, and 1 written as 1.0 and 1e0', () => {
    for (const lit of ['0', '0.0', '-0', '0e5']) expect(both(`{"id":"a","label":${lit}}`).result!.label).toBe(0);
    for (const lit of ['1', '1.0', '1e0', '10e-1']) expect(both(`{"id":"a","label":${lit}}`).result!.label).toBe(1);
    expect(Object.is(both('{"label":-0}').result!.label, 0)).toBe(true);
  });

  it("shape 'none' when neither key is present (feedback by id)", () => {
    const o = both('{"id":"abc","label":0}');
    expect(o.fast).toBe(true);
    expect(o.result).toEqual({ shape: 'none', rows: 0, model: undefined, id: 'abc', label: 0, labelCount: 0 });
    expect(both('{}').result).toEqual({ shape: 'none', rows: 0, model: undefined, id: undefined, label: undefined, labelCount: 0 });
  });

  it('handles whitespace anywhere and keys in any order', () => {
    const o = both(' \r\n\t{ "label" : 1 ,\n\t"id":"x" , "instances" : [ [ 1 , 2 ,3,4 ] ,\n [5,6,7,8]\t] , "model":"sgd" }\n ');
    expect(o.fast).toBe(true);
    expect(o.result).toEqual({ shape: 'instances', rows: 2, model: 'sgd', id: 'x', label: 1, labelCount: 0 });
    expect(floatsOf(o)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('ignores unknown keys of any type on the fast path', () => {
    const o = both('{"ts":1712345678901,"meta":{"a":[1,{"b":null}],"c":true,"d":false,"e":"s"},"features":[1,2,3,4],"x":[]}');
    expect(o.fast).toBe(true);
    expect(o.result!.shape).toBe('features');
  });

  it('copies strings out of the body: the caller may reuse the bytes afterwards', () => {
    const bytes = enc('{"id":"abcdef","model":"zzmodel","features":[1,2,3,4]}');
    const r = decodeJsonBody(bytes, 4, new Float32Array(32), 8);
    bytes.fill(0x20);
    expect(r.id).toBe('abcdef');
    expect(r.model).toBe('zzmodel');
  });

  it('reads a body that is a view into a larger (or shared) buffer', () => {
    const text = '{"features":[1,2,3,4]}';
    const sab = new Uint8Array(new SharedArrayBuffer(text.length + 10));
    sab.set(enc(text), 5);
    const o = both(sab.subarray(5, 5 + text.length));
    expect(o.fast).toBe(true);
    expect(floatsOf(o)).toEqual([1, 2, 3, 4]);
  });
});

describe('decodeJsonBody: falls back to JSON.parse and agrees with it', () => {
  it('escaped and non-ASCII strings', () => {
    const a = both('{"model":"ens\\u0065mble","id":"\\"q\\"","features":[1,2,3,4]}');
    expect(a.fast).toBe(false);
    expect(a.result).toMatchObject({ model: 'ensemble', id: '"q"' });
    const b = both('{"id":"über-ß-😀","features":[1,2,3,4]}');
    expect(b.fast).toBe(false);
    expect(b.result!.id).toBe('über-ß-😀');
    const c = both('{"note":"caf\\u00e9","features":[1,2,3,4]}');
    expect(c.fast).toBe(false);
  });

  it('an escaped key still means the key', () => {
    const o = both('{"feat\\u0075res":[1,2,3,4]}');
    expect(o.fast).toBe(false);
    expect(o.result!.shape).toBe('features');
  });

  it('duplicate keys: the last one wins', () => {
    const o = both('{"features":[1,2,3,4],"model":"a","features":[5,6,7,8],"model":"b"}');
    expect(o.fast).toBe(false);
    expect(o.result!.model).toBe('b');
    expect(floatsOf(o)).toEqual([5, 6, 7, 8]);
    // the discarded first value may even be invalid
    expect(both('{"features":[1,"x"],"features":[5,6,7,8]}').result!.rows).toBe(1);
    expect(both('{"instances":[[1,2,3,4],[1,2,3,4]],"instances":[[9,9,9,9]]}').result!.rows).toBe(1);
  });

  it('a UTF-8 byte order mark is tolerated', () => {
    const o = both(new Uint8Array([0xef, 0xbb, 0xbf, ...enc('{"features":[1,2,3,4]}')]));
    expect(o.fast).toBe(false);
    expect(o.result!.rows).toBe(1);
  });

  it('very long number literals and deeply nested unknown values', () => {
    const long = '0.' + '1'.repeat(400);
    const o = both(`{"features":[${long},2,3,4]}`);
    expect(o.fast).toBe(false);
    expect(floatsOf(o)[0]).toBe(Math.fround(JSON.parse(long)));
    const deep = '['.repeat(100) + ']'.repeat(100);
    const d = both(`{"x":${deep},"features":[1,2,3,4]}`);
    expect(d.fast).toBe(false);
    expect(d.result!.rows).toBe(1);
  });

  it('model names longer than the scanner decodes', () => {
    const name = 'm'.repeat(300);
    const o = both(`{"model":"${name}","features":[1,2,3,4]}`);
    expect(o.fast).toBe(false);
    expect(o.result!.model).toBe(name);
  });
});

describe('decodeJsonBody: numbers', () => {
  // Each literal is checked against Math.fround(JSON.parse(literal)) bit for bit, on both paths.
  const finite = [
    '0', '-0', '-0.0', '0.000', '0e10', '-0E-5', '1', '1.0', '1.000000000000000000000000', '-1', '1E+2', '1e+2', '1E2', '1e-2',
    '0.123456789', '-1.5e-3', '123456.789e-3', '3.14159265358979323846264338327950288',
    '3.4028234663852886e38', '3.4028235e38', '-3.4028235e38', '3.4028235677973362e38', '340282346638528859811704183484516925440',
    '1.1754943508222875e-38', '1.401298464324817e-45', '1e-45', '7e-46', '7.006492321624085e-46', '7.1e-46', '-1e-46',
    '5e-324', '4.9e-324', '2.2250738585072014e-308', '1e-400', '-1e-400', '0.' + '0'.repeat(30) + '1',
    '9007199254740991', '9007199254740992', '9007199254740993', '18014398509481985', '12345678901234567890123',
    '0.1', '0.2', '0.30000000000000004', '1e22', '1e23', '1e-22', '1e-23', '8.589973e9', '1234567890123456e-22',
    '0.1234567890123456789', '2.5e-10', '100000000000000000000000000000', '16777217', '16777219',
    '0.0000000000000000000001', '0.00000000000000000000001', '1.0000000000000000000001', '4503599627370495.5', '900719925474099.3',
    '0.9007199254740993', '-9007199254740993', '2e-45', '1.5e-45',
    '00000000001e0'.slice(10), '123456789012345678901234567890.5',
  ];

  it.each(finite)('%s', (lit) => {
    const o = both(`{"features":[${lit},0,0,0]}`);
    expect(o.error).toBeUndefined();
    expect(o.fast).toBe(true);
    expect(o.floats![0]).toBe(bits(Math.fround(JSON.parse(lit))));
  });

  it('doubles beyond float32 (1e308, the largest double) are NON_FINITE_FEATURE on both paths', () => {
    for (const lit of ['1e308', '-1e308', '1.7976931348623157e308', '3.4028236e38', '1' + '0'.repeat(39)]) {
      expect(both(`{"features":[${lit},0,0,0]}`).error?.code, lit).toBe('NON_FINITE_FEATURE');
    }
  });

  it('-0 keeps its sign', () => {
    const o = both('{"features":[-0,-0.0,-0e3,0]}');
    expect(o.floats!.slice(0, 3)).toEqual([0x80000000, 0x80000000, 0x80000000]);
    expect(o.floats![3]).toBe(0);
  });

  // The scanner's plain-decimal fast path (digits into one accumulator, one division) against
  // Math.fround(JSON.parse(literal)), bit for bit, on seeded literals of every length around its
  // limits: 2^53 for the digits, 22 digits after the point, exponents, denormals, overflow.
  it('agrees with Math.fround(JSON.parse) on 100,000 seeded literals', () => {
    const rand = rng(0x5eed11);
    const int = (n: number): number => Math.floor(rand() * n);
    const digits = (n: number): string => Array.from({ length: n }, () => String(int(10))).join('');
    const literal = (): string => {
      const sign = int(3) === 0 ? '-' : '';
      const whole = int(4) === 0 ? '0' : String(1 + int(9)) + digits(int(int(2) === 0 ? 4 : 20));
      const frac = int(5) === 0 ? '' : '.' + (int(4) === 0 ? '0'.repeat(int(25)) : '') + digits(1 + int(int(2) === 0 ? 8 : 30));
      const exp = int(6) === 0 ? (int(2) === 0 ? 'e' : 'E') + ['', '+', '-'][int(3)] + String(int(int(2) === 0 ? 30 : 400)) : '';
      switch (int(12)) {
        case 0:
          return sign + String(Math.floor(rand() * 2 ** 53) + int(3) * 2 ** 53); // around 2^53
        case 1:
          return sign + String(Math.fround(rand() * 2 ** -126)); // float32 subnormals
        case 2:
          return sign + (rand() * 1e-300).toExponential(int(20)); // double subnormals, beyond float32's
        case 3:
          return sign + String(rand() * 3.5e38); // around the float32 maximum
        case 4: {
          // 16 to 18 significant digits: the significand is around 2^53, the fast path's limit
          const n = 16 + int(3);
          const w = 1 + int(3);
          return sign + String(1 + int(9)) + digits(w - 1) + '.' + digits(n - w);
        }
        default:
          return sign + whole + frac + exp;
      }
    };
    const F = 50;
    const lits: string[] = [];
    let checked = 0;
    const mismatches: string[] = [];
    for (let b = 0; b < 2000; b++) {
      lits.length = 0;
      for (let j = 0; j < F; j++) {
        let s = literal();
        // float32 overflow is an error (covered elsewhere): keep this body decodable
        if (!Number.isFinite(Math.fround(JSON.parse(s)))) s = '0';
        lits.push(s);
      }
      const out = new Float32Array(F);
      const d = decodeJsonBody(enc(`{"features":[${lits.join(',')}]}`), F, out, 1);
      if (!d.fast) mismatches.push(`body ${b} went to the reference`);
      const got = new Uint32Array(out.buffer);
      for (let j = 0; j < F; j++) {
        checked++;
        if (got[j] !== bits(Math.fround(JSON.parse(lits[j]!))) && mismatches.length < 10) mismatches.push(`${lits[j]} -> ${out[j]}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBe(100_000);
  });

  it('rejects literals that are not JSON numbers (and JSON.parse agrees)', () => {
    for (const lit of ['01', '-', '+1', '.5', '1.', '1e', '1e+', '--1', '0x10', '1.5.2', 'NaN', 'Infinity', '-Infinity', '1_0', '١']) {
      const o = both(`{"features":[${lit},0,0,0]}`);
      expect(o.error?.code, lit).toBe('INVALID_JSON');
    }
  });
});

describe('decodeJsonBody: errors (exact messages)', () => {
  const parseMessage = (s: string): string => {
    try {
      JSON.parse(s);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('parsed');
  };

  it('INVALID_JSON says what JSON.parse said', () => {
    for (const s of ['', ' ', '{', '{"features":[1,2,', '{"features":[1,2,3,4],}', '{"a":1}x', "{'a':1}", '{"features":[1,2,3,4]}}']) {
      expectError(s, 'INVALID_JSON', `body is not valid JSON: ${parseMessage(s)}`);
    }
  });

  it('INVALID_JSON for bytes that are not UTF-8', () => {
    expectError(new Uint8Array([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), 'INVALID_JSON', 'body is not valid UTF-8');
    expectError(new Uint8Array([0x7b, 0xc3, 0x7d]), 'INVALID_JSON', 'body is not valid UTF-8');
  });

  it('INVALID_BODY: the top level must be an object', () => {
    for (const s of ['[1,2,3,4]', 'null', '3', '"x"', 'true', '[{"features":[1,2,3,4]}]']) {
      expectError(s, 'INVALID_BODY', 'body must be a JSON object');
    }
  });

  it('INVALID_BODY: scalar fields', () => {
    expectError('{"features":[1,2,3,4],"instances":[[1,2,3,4]]}', 'INVALID_BODY', 'body has both "features" and "instances": send one of them');
    expectError('{"model":3}', 'INVALID_BODY', '"model" must be a string, got number');
    expectError('{"model":null}', 'INVALID_BODY', '"model" must be a string, got null');
    expectError('{"id":["a"]}', 'INVALID_BODY', '"id" must be a string, got array');
    expectError('{"id":""}', 'INVALID_BODY', '"id" must be 1 to 256 characters long, got 0');
    expectError(`{"id":"${'x'.repeat(257)}"}`, 'INVALID_BODY', '"id" must be 1 to 256 characters long, got 257');
    expect(both(`{"id":"${'x'.repeat(256)}"}`).fast).toBe(true);
    expectError('{"label":2}', 'INVALID_BODY', '"label" must be 0 or 1, got 2');
    expectError('{"label":0.5}', 'INVALID_BODY', '"label" must be 0 or 1, got 0.5');
    expectError('{"label":"1"}', 'INVALID_BODY', '"label" must be 0 or 1, got string');
    expectError('{"label":true}', 'INVALID_BODY', '"label" must be 0 or 1, got boolean');
  });

  it('INVALID_BODY: row containers', () => {
    expectError('{"features":"1,2,3,4"}', 'INVALID_BODY', '"features" must be an array of 4 numbers, got string');
    expectError('{"features":{"0":1}}', 'INVALID_BODY', '"features" must be an array of 4 numbers, got object');
    expectError('{"instances":[1,2,3,4]}', 'INVALID_BODY', 'instances[0] must be an array of 4 numbers, got number');
    expectError('{"instances":[[1,2,3,4],null]}', 'INVALID_BODY', 'instances[1] must be an array of 4 numbers, got null');
    expectError('{"instances":{"rows":[]}}', 'INVALID_BODY', '"instances" must be an array of rows, got object');
    expectError('{"instances":[]}', 'INVALID_BODY', '"instances" must not be empty');
  });

  it('INVALID_BODY: labels', () => {
    const rows2 = '"instances":[[1,2,3,4],[5,6,7,8]]';
    expectError(`{${rows2},"labels":1}`, 'INVALID_BODY', '"labels" must be an array, got number', 4, 8, 8);
    expectError(`{${rows2},"labels":[1,0]}`, 'INVALID_BODY', '"labels" is not accepted here');
    expectError(`{${rows2},"labels":[1]}`, 'INVALID_BODY', '"labels" has 1 entries for 2 rows: one label per row', 4, 8, 8);
    expectError(`{"features":[1,2,3,4],"labels":[]}`, 'INVALID_BODY', '"labels" has 0 entries for 1 rows: one label per row', 4, 8, 8);
    expectError(`{${rows2},"labels":[1,0]}`, 'INVALID_BODY', '"labels" has 2 entries, at most 1 accepted', 4, 8, 1);
    expectError(`{${rows2},"labels":[1,2]}`, 'INVALID_BODY', 'labels[1] must be 0 or 1, got 2', 4, 8, 8);
    expectError(`{${rows2},"labels":[null,1]}`, 'INVALID_BODY', 'labels[0] must be 0 or 1, got null', 4, 8, 8);
  });

  it('FEATURE_COUNT_MISMATCH', () => {
    expectError('{"features":[1,2,3,4,5]}', 'FEATURE_COUNT_MISMATCH', 'features has 5 values, expected 16', 16);
    expectError('{"features":[1]}', 'FEATURE_COUNT_MISMATCH', 'features has 1 value, expected 4');
    expectError('{"features":[]}', 'FEATURE_COUNT_MISMATCH', 'features has 0 values, expected 4');
    expectError('{"instances":[[1,2,3,4],[1,2,3,4],[1,2,3,4],[1,2,3,4,5]]}', 'FEATURE_COUNT_MISMATCH', 'instances[3] has 5 values, expected 4');
  });

  it('INVALID_FEATURE_VALUE names the place and the type', () => {
    expectError('{"features":[1,2,"3",4]}', 'INVALID_FEATURE_VALUE', 'features[2] must be a number, got string');
    expectError('{"features":[null,2,3,4]}', 'INVALID_FEATURE_VALUE', 'features[0] must be a number, got null');
    const rows = '[1,2,3,4],[1,2,3,4],[1,2,3,4]';
    expectError(`{"instances":[${rows},[1,true,3,4]]}`, 'INVALID_FEATURE_VALUE', 'instances[3][1] must be a number, got boolean');
    expectError(`{"instances":[${rows},[1,2,3,{}]]}`, 'INVALID_FEATURE_VALUE', 'instances[3][3] must be a number, got object');
    expectError(`{"instances":[${rows},[[1],2,3,4]]}`, 'INVALID_FEATURE_VALUE', 'instances[3][0] must be a number, got array');
  });

  it('NON_FINITE_FEATURE quotes the literal as written', () => {
    expectError('{"features":[1,2,1e39,4]}', 'NON_FINITE_FEATURE', 'features[2] is 1e39, outside the float32 range');
    expectError('{"features":[1,2,3,-4e38]}', 'NON_FINITE_FEATURE', 'features[3] is -4e38, outside the float32 range');
    expectError('{"features":[1e400,2,3,4]}', 'NON_FINITE_FEATURE', 'features[0] is 1e400, outside the float32 range');
    // the smallest double that rounds to Infinity in float32 (the midpoint to 2^128)
    expectError('{"features":[3.4028235677973366e38,2,3,4]}', 'NON_FINITE_FEATURE', 'features[0] is 3.4028235677973366e38, outside the float32 range');
    expectError('{"features":[1.7976931348623157E+308,2,3,4]}', 'NON_FINITE_FEATURE', 'features[0] is 1.7976931348623157E+308, outside the float32 range');
    expectError(
      '{ "features" : [9,9,9,9], "instances_x":1, "instances" : [ [1,2,3,4] , [ 5 , 6 , -1E+39 , 8 ] ] }'.replace('"features" : [9,9,9,9], ', ''),
      'NON_FINITE_FEATURE',
      'instances[1][2] is -1E+39, outside the float32 range',
    );
    // with a repeated key, the literal comes from the value that counts (the last)
    expectError('{"features":[1,2,3,4],"features":[1,2,3,5e38]}', 'NON_FINITE_FEATURE', 'features[3] is 5e38, outside the float32 range');
    // an escaped key is still found
    expectError('{"instanc\\u0065s":[[1,2,3,4],[1,2,3,2e39]]}', 'NON_FINITE_FEATURE', 'instances[1][3] is 2e39, outside the float32 range');
  });

  it('TOO_MANY_ROWS (413) says the limit', () => {
    const row = '[1,2,3,4]';
    expectError(`{"instances":[${Array(9).fill(row).join(',')}]}`, 'TOO_MANY_ROWS', 'body has 9 rows, the limit is 8');
    expectError('{"features":[1,2,3,4]}', 'TOO_MANY_ROWS', 'body has 1 row, the limit is 0', 4, 0);
    expect(both(`{"instances":[${Array(8).fill(row).join(',')}]}`).fast).toBe(true);
  });

  it('INTERNAL for a caller passing a buffer that is too small', () => {
    const call = () => decodeJsonBody(enc('{"features":[1,2,3,4]}'), 4, new Float32Array(7), 2);
    expect(call).toThrow(TradeflowError);
    expect(call).toThrow('decodeJsonBody: out holds 7 floats, needs 8');
  });
});

describe('decodeJsonBody: error precedence', () => {
  it('structure before rows, rows in order, values in order, labels last', () => {
    // scalar fields before any row problem
    expectError('{"instances":[["x"]],"model":1}', 'INVALID_BODY', '"model" must be a string, got number');
    expectError('{"label":5,"id":7}', 'INVALID_BODY', '"id" must be a string, got number');
    // row limit before row contents
    expectError('{"instances":[["x"],[1],[1]]}', 'TOO_MANY_ROWS', 'body has 3 rows, the limit is 2', 4, 2);
    // labels container before row contents
    expectError('{"instances":[["x"]],"labels":[0,1]}', 'INVALID_BODY', '"labels" has 2 entries for 1 rows: one label per row', 4, 8, 8);
    // the first bad row wins; within a row, the count before the values
    expectError('{"instances":[[1,2,3,4],[1,"x",3],[1,2]]}', 'FEATURE_COUNT_MISMATCH', 'instances[1] has 3 values, expected 4');
    expectError('{"instances":[[1,2,3,4],[1,"x",3,1e39],[1,2]]}', 'INVALID_FEATURE_VALUE', 'instances[1][1] must be a number, got string');
    expectError('{"instances":[[1,2,3,4],[1,2,3,1e39,"x"]]}', 'FEATURE_COUNT_MISMATCH', 'instances[1] has 5 values, expected 4');
    expectError('{"features":[1e39,"x",3,4]}', 'NON_FINITE_FEATURE', 'features[0] is 1e39, outside the float32 range');
    // label values after the rows
    expectError('{"features":[1,2,3,"x"],"labels":[7]}', 'INVALID_FEATURE_VALUE', 'features[3] must be a number, got string', 4, 8, 8);
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz: the scanner and the reference must agree on every body, bit for bit.
// ---------------------------------------------------------------------------------------------


function makeFuzzer(seed: number) {
  const rnd = rng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const chance = (p: number) => rnd() < p;

  const wsChars = [' ', '\t', '\n', '\r'];
  const ws = () => (chance(0.7) ? '' : Array.from({ length: 1 + int(3) }, () => pick(wsChars)).join(''));

  const EDGES = [
    0, -0, 1, -1, 0.5, 3.4028234663852886e38, -3.4028234663852886e38, 3.4028235677973362e38, 3.4028235677973366e38,
    3.5e38, 1e39, 1.401298464324817e-45, 7.006492321624085e-46, 7.006492321624087e-46, 1.1754943508222875e-38, 5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, 9007199254740991, 9007199254740993, 16777217, 0.1, 1e22, 1e23, 1e-22,
  ];

  // Realistic feature values most of the time; per body, a share of "wild" ones (edges of float32
  // and double, huge exponents, long mantissas) so that every body mixes both.
  let wild = 0;

  function realisticDouble(): number {
    switch (int(4)) {
      case 0:
        return (rnd() - 0.5) * 2;
      case 1:
        return (rnd() - 0.5) * Math.pow(10, int(30) - 15);
      case 2:
        return int(2000) - 1000;
      default:
        return Math.round((rnd() - 0.5) * 1e6) / Math.pow(10, int(10));
    }
  }

  function wildLiteral(): string {
    if (chance(0.4)) {
      // hand-made literal: digits, fraction, exponent in every spelling
      const intPart = chance(0.3) ? '0' : String(1 + int(9)) + Array.from({ length: int(20) }, () => int(10)).join('');
      const frac = chance(0.5) ? '.' + Array.from({ length: 1 + int(25) }, () => int(10)).join('') : '';
      const exp = chance(0.5) ? pick(['e', 'E']) + pick(['', '+', '-']) + String(int(chance(0.8) ? 40 : 400)) : '';
      return (chance(0.5) ? '-' : '') + intPart + frac + exp;
    }
    const x = chance(0.5) ? pick(EDGES) * (chance(0.5) ? 1 : -1) : (rnd() - 0.5) * Math.pow(10, int(700) - 350);
    return formatNumber(x);
  }

  function formatNumber(x: number): string {
    let s: string;
    switch (int(7)) {
      case 0:
        s = String(x);
        break;
      case 1:
        s = x.toExponential(int(21));
        break;
      case 2:
        s = Math.abs(x) < 1e21 ? x.toFixed(int(21)) : String(x);
        break;
      case 3:
        s = x.toPrecision(1 + int(21));
        break;
      case 4:
        // exponent spelled E, e+, E+
        s = String(x).replace(/e\+?/, pick(['e', 'E', 'e+', 'E+']));
        break;
      case 5:
        // trailing zeros in the fraction
        s = String(x);
        if (!/e/i.test(s)) s += (s.includes('.') ? '' : '.') + '0'.repeat(1 + int(20));
        break;
      default:
        s = Object.is(x, -0) || chance(0.1) ? '-0' : String(Math.trunc(x % 1e6));
    }
    if (s === 'NaN' || s.includes('Infinity')) s = '1';
    return s;
  }

  const BAD_VALUES = ['"1.5"', 'null', 'true', 'false', '{}', '[]', '[1]', '{"a":1}', '""', '1e400', '-5e38'];
  const value = () => (chance(0.002) ? pick(BAD_VALUES) : chance(wild) ? wildLiteral() : formatNumber(realisticDouble()));

  function row(F: number): string {
    let n = F;
    if (chance(0.005)) n = Math.max(0, F + pick([-1, 1, 2]));
    return '[' + ws() + Array.from({ length: n }, () => value()).join(ws() + ',' + ws()) + ws() + ']';
  }

  const ASCII_STRINGS = ['"ensemble"', '"sgd"', '"a"', '"req-123"', '"x y z"', '""', '"' + 'k'.repeat(256) + '"', '"' + 'k'.repeat(257) + '"'];
  const ODD_STRINGS = ['"\\u0065nsemble"', '"tab\\tin"', '"é"', '"😀"', '"a\\"b"', '"\\/"'];
  const str = () => (chance(0.9) ? pick(ASCII_STRINGS.slice(0, 5)) : chance(0.5) ? pick(ASCII_STRINGS) : pick(ODD_STRINGS));

  function unknownValue(depth: number): string {
    const k = int(depth > 3 ? 4 : 6);
    if (k === 0) return value();
    if (k === 1) return str();
    if (k === 2) return pick(['true', 'false', 'null']);
    if (k === 3) return '"plain text"';
    if (k === 4) return '[' + ws() + Array.from({ length: int(3) }, () => unknownValue(depth + 1)).join(',' + ws()) + ']';
    return '{' + ws() + Array.from({ length: int(3) }, (_x, i) => `"k${i}"${ws()}:${ws()}${unknownValue(depth + 1)}`).join(',') + ws() + '}';
  }

  function body(F: number, maxRows: number): string {
    wild = pick([0, 0, 0.002, 0.02, 0.2]);
    const members: string[] = [];
    const shape = chance(0.03) ? 'both' : pick(['features', 'features', 'instances', 'instances', 'instances', 'none']);
    let rows = 0;
    if (shape === 'features' || shape === 'both') {
      members.push(`"features"${ws()}:${ws()}${row(F)}`);
      rows = 1;
    }
    if (shape === 'instances' || shape === 'both') {
      rows = chance(0.02) ? maxRows + 1 : 1 + int(maxRows);
      if (chance(0.01)) rows = 0;
      members.push(`"instances"${ws()}:${ws()}[${ws()}${Array.from({ length: rows }, () => row(F)).join(ws() + ',' + ws())}${ws()}]`);
    }
    if (chance(0.3)) members.push(`"model":${ws()}${chance(0.95) ? str() : pick(['1', 'null', '[]'])}`);
    if (chance(0.3)) members.push(`"id"${ws()}:${chance(0.95) ? str() : pick(['7', 'false'])}`);
    if (chance(0.2)) members.push(`"label":${chance(0.9) ? pick(['0', '1', '1.0', '-0', '0e0', '1e0']) : pick(['2', '"1"', 'null', '0.5'])}`);
    if (chance(0.25)) {
      const n = chance(0.9) ? rows : rows + pick([-1, 1]);
      const labels = Array.from({ length: Math.max(0, n) }, () => (chance(0.98) ? pick(['0', '1', '1.0', '-0']) : pick(['2', '"0"', 'null', '0.5'])));
      members.push(`"labels":[${labels.join(',' + ws())}]`);
    }
    const unknown = int(3);
    for (let k = 0; k < unknown; k++) members.push(`"${pick(['ts', 'meta', 'x', 'featuresX', 'labe', 'ids'])}":${ws()}${unknownValue(0)}`);
    if (chance(0.03) && members.length > 0) members.push(pick(members)); // a repeated key
    for (let k = members.length - 1; k > 0; k--) {
      const j = int(k + 1);
      [members[k], members[j]] = [members[j], members[k]];
    }
    return ws() + '{' + ws() + members.join(ws() + ',' + ws()) + ws() + '}' + ws();
  }

  const INTERESTING = enc('{}[],:"\\ -+.eE0123456789tfnul\t\n\r');

  function mutate(bytes: Uint8Array): Uint8Array {
    let b = Array.from(bytes);
    const times = 1 + int(3);
    for (let t = 0; t < times; t++) {
      const at = int(b.length + 1);
      switch (int(6)) {
        case 0:
          b = b.slice(0, at); // truncation
          break;
        case 1:
          b.splice(at, 0, chance(0.8) ? pick(Array.from(INTERESTING)) : int(256)); // inserted byte
          break;
        case 2:
          b.splice(at, 1); // deleted byte
          break;
        case 3:
          if (at < b.length) b[at] = chance(0.8) ? pick(Array.from(INTERESTING)) : int(256);
          break;
        case 4: {
          // a value of the wrong type where a number was
          const s = new TextDecoder().decode(new Uint8Array(b));
          const m = [...s.matchAll(/-?\d[\d.eE+-]*/g)];
          if (m.length > 0) {
            const hit = pick(m);
            const repl = pick(['"1"', 'null', 'true', '[]', '{}', '1e39', '-0', '1.5', '']);
            b = Array.from(enc(s.slice(0, hit.index) + repl + s.slice(hit.index! + hit[0].length)));
          }
          break;
        }
        default: {
          const from = int(b.length + 1);
          b.splice(at, 0, ...b.slice(from, from + int(12))); // duplicated slice
        }
      }
    }
    return new Uint8Array(b);
  }

  return { rnd, int, pick, chance, body, mutate };
}

describe('decodeJsonBody: fuzz against the reference', () => {
  // JSON_BODY_FUZZ=<count> and JSON_BODY_FUZZ_SEED=<n> run a longer soak with other bodies.
  it('agrees bit for bit on 24,000 seeded bodies (valid and mutated)', () => {
    const fz = makeFuzzer(Number(process.env.JSON_BODY_FUZZ_SEED ?? 0x7f4a7c15));
    const N = Number(process.env.JSON_BODY_FUZZ ?? 24_000);
    const counts = { fast: 0, fallbackOk: 0, error: 0, mutated: 0 };
    const codes = new Map<string, number>();
    const mismatches: string[] = [];
    for (let k = 0; k < N; k++) {
      const F = fz.pick([1, 2, 3, 5, 16]);
      const maxRows = fz.pick([1, 4, 8]);
      const labelsCap = fz.chance(0.8) ? maxRows : fz.chance(0.5) ? undefined : Math.max(0, maxRows - 2);
      let bytes = enc(fz.body(F, maxRows));
      if (fz.chance(0.35)) {
        bytes = fz.mutate(bytes);
        counts.mutated++;
      }
      const a = outcome(decodeJsonBody, bytes, F, maxRows, labelsCap);
      const r = outcome(decodeJsonBodyReference, bytes, F, maxRows, labelsCap);
      const { fast, ...aRest } = a;
      const { fast: _f, ...rRest } = r;
      try {
        expect(aRest).toEqual(rRest);
      } catch {
        if (mismatches.length < 5) {
          mismatches.push(`${JSON.stringify(Buffer.from(bytes).toString('latin1'))} F=${F} maxRows=${maxRows}\n fast=${JSON.stringify(a)}\n ref=${JSON.stringify(r)}`);
        }
      }
      if (a.error !== undefined) {
        counts.error++;
        codes.set(a.error.code, (codes.get(a.error.code) ?? 0) + 1);
      } else if (fast) counts.fast++;
      else counts.fallbackOk++;
    }
    expect(mismatches).toEqual([]);
    // The fuzz must exercise all three outcomes, the scanner most of all, and every body error.
    expect(counts.fast).toBeGreaterThan(N * 0.3);
    // The ordinary bodies of the fuzz must stay on the scanner; a scanner that bails too often fails here.
    expect(counts.fast).toBeGreaterThan((counts.fast + counts.fallbackOk) * 0.8);
    expect(counts.fallbackOk).toBeGreaterThan(N * 0.02);
    expect(counts.error).toBeGreaterThan(N * 0.1);
    for (const code of ['INVALID_JSON', 'INVALID_BODY', 'FEATURE_COUNT_MISMATCH', 'INVALID_FEATURE_VALUE', 'NON_FINITE_FEATURE', 'TOO_MANY_ROWS']) {
      expect(codes.get(code) ?? 0, code).toBeGreaterThan(20);
    }
  });

  it('agrees on every truncation of a valid body', () => {
    const text = '{ "model":"sgd", "instances":[[0.123456789,-1.5e-3,1E+2,-0],[5e-324,3.4028235e38,1,2]] ,"labels":[1,0],"id":"abc"}';
    const bytes = enc(text);
    for (let n = 0; n <= bytes.length; n++) both(bytes.subarray(0, n), 4, 8, 8);
    expect(both(bytes, 4, 8, 8).fast).toBe(true);
  });
});
