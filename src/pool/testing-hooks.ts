/**
 * Fault injection for the engine's own tests, switched on only by TRADEFLOW_TEST_* environment
 * variables (never by flags, never documented as configuration). They let a test crash a worker
 * on a chosen batch, hang it there (TRADEFLOW_TEST_HANG_ON_FEATURE: blocked until terminated, for
 * the BATCH_TIMEOUT_MS watchdog; with TRADEFLOW_TEST_HANG_FIFO, blocked in a native read of that
 * FIFO, which terminate() cannot interrupt), or hold a batch in flight until the test releases it, so queueing, deadline,
 * abort and drain behaviour can be tested without depending on the machine's speed; and hold a
 * model swap's candidate in validation (TRADEFLOW_TEST_HOLD_VALIDATION=1, armed by
 * holdValidation()), so a test can look at the engine while a candidate is being validated.
 */
import { tfError } from '../errors';
import type { WorkerTestHooks } from './worker-protocol';

export interface TestHooks {
  worker: WorkerTestHooks;
  /** Lets held batches go (and every later one with the hold value, until `arm`). */
  release(): void;
  /** Holds batches with the hold value again. */
  arm(): void;
  /** The gate candidate workers wait on before they report warm (null unless TRADEFLOW_TEST_HOLD_VALIDATION=1). */
  validationGate: SharedArrayBuffer | null;
  /** From now on a swap's candidate workers stay in validation until releaseValidation(). */
  holdValidation(): void;
  releaseValidation(): void;
  /** A /predict with this `id` makes the front-end thread that took it fail once it is queued (TRADEFLOW_TEST_FRONTEND_CRASH_ON_ID; HTTP_THREADS ≥ 2). */
  frontEndCrashOnId: string | null;
}

function numberVar(name: string, env: NodeJS.ProcessEnv): number | null {
  const raw = env[name];
  if (raw === undefined || raw === '') return null;
  const v = Number(raw);
  if (!Number.isFinite(v)) throw tfError('CONFIG_INVALID', `${name} must be a number, got "${raw}"`);
  return v;
}

export function testHooksFromEnv(env: NodeJS.ProcessEnv = process.env): TestHooks {
  const crash = numberVar('TRADEFLOW_TEST_CRASH_ON_FEATURE', env);
  const hold = numberVar('TRADEFLOW_TEST_HOLD_ON_FEATURE', env);
  const hang = numberVar('TRADEFLOW_TEST_HANG_ON_FEATURE', env);
  const holdMs = numberVar('TRADEFLOW_TEST_HOLD_MS', env) ?? 30_000;
  const gate = hold === null ? null : new SharedArrayBuffer(4);
  const view = gate ? new Int32Array(gate) : null;
  const validationGate = env['TRADEFLOW_TEST_HOLD_VALIDATION'] === '1' ? new SharedArrayBuffer(4) : null;
  const validation = validationGate ? new Int32Array(validationGate) : null;
  // Open until armed: the workers started with the engine must not wait.
  if (validation) Atomics.store(validation, 0, 1);
  return {
    worker: {
      crashOnFeature: crash === null ? null : Math.fround(crash),
      holdOnFeature: hold === null ? null : Math.fround(hold),
      holdMs,
      hangOnFeature: hang === null ? null : Math.fround(hang),
      hangFifo: env['TRADEFLOW_TEST_HANG_FIFO'] || null,
      gate,
      warmGate: null,
    },
    release() {
      if (view) {
        Atomics.store(view, 0, 1);
        Atomics.notify(view, 0);
      }
    },
    arm() {
      if (view) Atomics.store(view, 0, 0);
    },
    validationGate,
    frontEndCrashOnId: env['TRADEFLOW_TEST_FRONTEND_CRASH_ON_ID'] || null,
    holdValidation() {
      if (!validation) throw tfError('INTERNAL', 'holdValidation() needs TRADEFLOW_TEST_HOLD_VALIDATION=1 when the engine starts');
      Atomics.store(validation, 0, 0);
    },
    releaseValidation() {
      if (validation) {
        Atomics.store(validation, 0, 1);
        Atomics.notify(validation, 0);
      }
    },
  };
}
