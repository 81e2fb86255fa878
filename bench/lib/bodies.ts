/**
 * Seeded request bodies for the HTTP benchmark: plausible values for the 16 market features
 * (returns of about 1%, volatilities, an RSI between 0 and 100, ratios near 1, z-scores), printed
 * the way a client that rounds its features to 8 significant digits would print them. Many
 * distinct bodies are generated and rotated, so nothing can be served from a cache.
 */

/** mulberry32: small, fast and good enough to make benchmark inputs reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  let u = rand();
  while (u <= 1e-12) u = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/**
 * One row of features. For F = 16 the columns follow src/training/features.ts (ret_1 ... ret_20,
 * vol_10, vol_30, vol ratio, momentum z, RSI, two SMA ratios, price z, volume ratio, volume z,
 * flow imbalance); any other F gets standard normal values.
 */
export function featureRow(rand: () => number, F: number, out: number[]): number[] {
  out.length = 0;
  if (F !== 16) {
    for (let c = 0; c < F; c++) out.push(gaussian(rand));
    return out;
  }
  const vol = 0.01 * Math.exp(0.3 * gaussian(rand));
  const vol30 = vol * Math.exp(0.15 * gaussian(rand));
  const g = (): number => gaussian(rand);
  const ret10 = vol * Math.sqrt(10) * g();
  out.push(
    vol * g(),
    vol * Math.sqrt(3) * g(),
    vol * Math.sqrt(5) * g(),
    ret10,
    vol * Math.sqrt(20) * g(),
    vol,
    vol30,
    vol / vol30,
    ret10 / (vol30 * Math.sqrt(10)),
    Math.min(100, Math.max(0, 50 + 12 * g())),
    0.004 * g(),
    0.008 * g(),
    1.2 * g(),
    Math.exp(0.25 * g()),
    g(),
    Math.max(-1, Math.min(1, 0.4 * g())),
  );
  return out;
}

/** How a client that rounds to 8 significant digits writes a value (exponents included). */
export function formatFeature(v: number): string {
  return String(Number(v.toPrecision(8)));
}

export interface BodySet {
  /** Rows per body. */
  rows: number;
  contentType: string;
  /** Headers sent with every body besides Content-Type (e.g. Inference-Header-Content-Length). */
  headers?: Readonly<Record<string, string>>;
  bodies: Buffer[];
  /** The rows of body 0, for checking answers. */
  firstRows: Float32Array;
}

export type BodyKind = 'features' | 'instances' | 'binary';

export function makeBodies(kind: BodyKind, rows: number, F: number, count: number, seed: number): BodySet {
  const rand = rng(seed);
  const row: number[] = [];
  const bodies: Buffer[] = [];
  const firstRows = new Float32Array(rows * F);
  for (let b = 0; b < count; b++) {
    if (kind === 'binary') {
      const buf = Buffer.alloc(rows * F * 4);
      for (let r = 0; r < rows; r++) {
        featureRow(rand, F, row);
        for (let c = 0; c < F; c++) {
          buf.writeFloatLE(row[c]!, (r * F + c) * 4);
          if (b === 0) firstRows[r * F + c] = row[c]!;
        }
      }
      bodies.push(buf);
      continue;
    }
    const parts: string[] = [];
    for (let r = 0; r < rows; r++) {
      featureRow(rand, F, row);
      const text = row.map(formatFeature);
      if (b === 0) for (let c = 0; c < F; c++) firstRows[r * F + c] = Number(text[c]);
      parts.push('[' + text.join(',') + ']');
    }
    const json = kind === 'features' ? `{"features":${parts[0]}}` : `{"instances":[${parts.join(',')}]}`;
    bodies.push(Buffer.from(json));
  }
  return { rows, contentType: kind === 'binary' ? 'application/octet-stream' : 'application/json', bodies, firstRows };
}
