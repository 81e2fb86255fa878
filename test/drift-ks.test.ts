/**
 * Our two-sample KS test against scipy's `ks_2samp(a, b, method="auto")`, which River's KSWIN
 * calls. The reference values were computed with Debian's python3-scipy (version recorded in
 * the fixture) by test/fixtures/drift/make_ks_reference.py: sizes 1 to 1000, continuous data,
 * heavy ties, shifted samples, identical samples, and constructed gaps of h samples.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KS_EXACT_MAX_N, ksTwoSampleEqualSize, probOutsideSquare } from '../src/drift/ks-test';

interface Case {
  n: number;
  kind: string;
  a: number[];
  b: number[];
  statistic: number;
  pvalue: number;
}
interface Reference {
  scipy: string;
  cases: Case[];
  prob_outside_square: Record<string, number[]>;
}

const ref = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'drift', 'ks_reference.json'), 'utf8')) as Reference;

describe('two-sample KS test (scipy ks_2samp, method="auto")', () => {
  it('has reference values from scipy', () => {
    expect(ref.scipy).toMatch(/^1\./);
    expect(ref.cases.length).toBeGreaterThan(40);
  });

  it("computes scipy's exact series bit for bit, for every gap h", () => {
    for (const [n, ps] of Object.entries(ref.prob_outside_square)) {
      ps.forEach((p, i) => expect(probOutsideSquare(Number(n), i + 1), `n=${n} h=${i + 1}`).toBe(p));
    }
  });

  it('gives the same statistic and p-value as scipy on every case', () => {
    for (const c of ref.cases) {
      const r = ksTwoSampleEqualSize(c.a, c.b);
      const label = `n=${c.n} ${c.kind}`;
      expect(r.statistic, label).toBe(c.statistic);
      const series = r.h === 0 ? 1 : probOutsideSquare(c.n, r.h);
      if (series >= 0 && series <= 1) {
        expect(r.pvalue, label).toBe(c.pvalue);
      } else {
        // The exact series rounded above 1, so scipy switched to its asymptotic distribution,
        // which says 1 - O(1e-14); we say 1. Only the smallest gaps do that (p close to 1).
        expect(r.pvalue, label).toBe(1);
        expect(Math.abs(r.pvalue - c.pvalue), label).toBeLessThan(1e-12);
      }
    }
  });

  it('tests samples with ties at equal values (right-continuous ECDFs)', () => {
    expect(ksTwoSampleEqualSize([0, 0, 1, 1], [0, 0, 1, 1])).toEqual({ statistic: 0, pvalue: 1, h: 0 });
    expect(ksTwoSampleEqualSize([0, 0, 0, 0], [1, 1, 1, 1]).h).toBe(4);
  });

  it('refuses unequal or oversized samples', () => {
    expect(() => ksTwoSampleEqualSize([1, 2], [1])).toThrow(/same size/);
    const big = new Float64Array(KS_EXACT_MAX_N + 1);
    expect(() => ksTwoSampleEqualSize(big, big)).toThrow(/exact only up to/);
  });
});
