/**
 * Champion selection (src/learning/champion.ts) on constructed outcome streams: too few outcomes,
 * a model that is better and then worse, a lead inside the margin, a tie, SERVE_POLICY=fixed, and
 * the choice made from recovered windows after a restart.
 */
import { describe, expect, it } from 'vitest';
import { ChampionSelector, type ChampionOptions } from '../src/learning/champion';
import { QualityWindow } from '../src/learning/quality-window';

const WINDOW = 100;
const MIN = 20;

function windows(): Map<string, QualityWindow> {
  return new Map([
    ['ensemble', new QualityWindow(WINDOW, MIN)],
    ['sgd', new QualityWindow(WINDOW, MIN)],
  ]);
}

function selector(q: Map<string, QualityWindow>, o: Partial<ChampionOptions> = {}): ChampionSelector {
  let t = 0;
  return new ChampionSelector(q, { policy: 'champion', margin: 0.05, minOutcomes: MIN, fallback: 'ensemble', candidates: ['ensemble', 'sgd'], now: () => ++t * 1000, ...o });
}

/**
 * `n` outcomes, each re-evaluated as the engine does after every applied record; the named models
 * are right with the given probability (deterministic: right on the first share of every 20).
 */
function stream(q: Map<string, QualityWindow>, c: ChampionSelector, n: number, right: Record<string, number>): void {
  for (let i = 0; i < n; i++) {
    const actual = i % 2;
    for (const [name, share] of Object.entries(right)) {
      const ok = i % 20 < Math.round(share * 20);
      q.get(name)!.add(ok ? actual : 1 - actual, actual);
    }
    c.evaluate();
  }
}

describe('champion selection', () => {
  it('keeps the configured default until every candidate has QUALITY_MIN_OUTCOMES', () => {
    const q = windows();
    const c = selector(q);
    expect(c.current).toBe('ensemble');
    // sgd is far better, but only it has outcomes.
    for (let i = 0; i < 50; i++) {
      q.get('sgd')!.add(i % 2, i % 2);
      c.evaluate();
    }
    expect(c.current).toBe('ensemble');
    expect(c.status().reason).toMatch(/ensemble has 0 of the 20 outcomes/);
    // The ensemble reaches 19 outcomes, all wrong: still one short.
    for (let i = 0; i < MIN - 1; i++) {
      q.get('ensemble')!.add(1 - (i % 2), i % 2);
      c.evaluate();
    }
    expect(c.current).toBe('ensemble');
    q.get('ensemble')!.add(0, 1);
    c.evaluate();
    expect(c.current).toBe('sgd');
    expect(c.switches).toBe(1);
  });

  it('follows a model that is better, then worse, switching only on a lead of the margin', () => {
    const q = windows();
    const c = selector(q, { margin: 0.1 });
    const switches: string[] = [];
    c.onSwitch((from, to) => switches.push(`${from}->${to}`));
    stream(q, c, WINDOW, { ensemble: 0.7, sgd: 0.9 });
    expect(c.current).toBe('sgd');
    const s = c.status();
    expect(s).toMatchObject({ policy: 'champion', model: 'sgd', margin: 0.1, window: WINDOW, min_outcomes: MIN, switches: 1 });
    expect(s.candidates).toEqual([
      { name: 'ensemble', accuracy: 0.7, outcomes: WINDOW, qualified: true },
      { name: 'sgd', accuracy: 0.9, outcomes: WINDOW, qualified: true },
    ]);
    expect(s.reason).toMatch(/sgd led ensemble by 0\.\d+ .*margin 0\.1000/);
    const since = s.since;
    // The ensemble recovers but stays within the margin of sgd: no switch (hysteresis).
    stream(q, c, WINDOW, { ensemble: 0.85, sgd: 0.8 });
    expect(q.get('ensemble')!.accuracy).toBeCloseTo(0.85);
    expect(q.get('sgd')!.accuracy).toBeCloseTo(0.8);
    expect(c.current).toBe('sgd');
    expect(c.status().since).toBe(since);
    // Now it leads by more than the margin: it wins back.
    stream(q, c, WINDOW, { ensemble: 0.9, sgd: 0.6 });
    expect(c.current).toBe('ensemble');
    expect(switches).toEqual(['ensemble->sgd', 'sgd->ensemble']);
    expect(c.switches).toBe(2);
    expect(c.status().since).not.toBe(since);
  });

  it('never switches on a tie, even with no margin', () => {
    const q = windows();
    const c = selector(q, { margin: 0 });
    stream(q, c, WINDOW * 3, { ensemble: 0.8, sgd: 0.8 });
    expect(c.current).toBe('ensemble');
    expect(c.switches).toBe(0);
    // With no margin, any real lead switches.
    q.get('sgd')!.add(1, 1);
    q.get('ensemble')!.add(0, 1);
    c.evaluate();
    expect(c.current).toBe('sgd');
  });

  it('SERVE_POLICY=fixed serves the configured default whatever the windows say', () => {
    const q = windows();
    const c = selector(q, { policy: 'fixed' });
    stream(q, c, WINDOW, { ensemble: 0.1, sgd: 1 });
    expect(c.current).toBe('ensemble');
    expect(c.switches).toBe(0);
    expect(c.status()).toMatchObject({ policy: 'fixed', model: 'ensemble' });
    expect(c.status().candidates.map((x) => x.accuracy)).toEqual([0.1, 1]);
  });

  it('starts from recovered windows with the best candidate (a restart has no incumbent to defend)', () => {
    const q = windows();
    stream(q, selector(q, { policy: 'fixed' }), WINDOW, { ensemble: 0.75, sgd: 0.8 });
    const c = selector(q);
    expect(c.current).toBe('sgd');
    expect(c.switches).toBe(0);
    expect(c.status().reason).toMatch(/when the engine started/);
  });

  it('a third candidate joins by having a window', () => {
    const q = windows();
    q.set('arf', new QualityWindow(WINDOW, MIN));
    const c = selector(q, { candidates: ['ensemble', 'sgd', 'arf'] });
    stream(q, c, WINDOW, { ensemble: 0.7, sgd: 0.8 });
    // arf has no outcomes yet: nobody is chosen by accuracy.
    expect(c.current).toBe('ensemble');
    stream(q, c, WINDOW, { ensemble: 0.7, sgd: 0.8, arf: 0.95 });
    expect(c.current).toBe('arf');
    expect(c.switches).toBe(1);
  });
});
