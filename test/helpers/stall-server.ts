/**
 * A uWS server whose latency the test controls (the constant-answer baseline of the load
 * benchmark, bench/baselines/constant-server.ts, with a hold the test switches): it answers
 * every POST at once, except during a stall, when it holds every answer for `holdMs`. A stall is
 * armed before a run and starts a fixed time after the next request arrives, so two runs (open
 * and closed loop) meet the same stall at the same point of their own timelines.
 */
import { startConstantServer, type ConstantServer } from '../../bench/baselines/constant-server';

export interface StallPlan {
  /** Milliseconds after the first request of the run at which the stall starts. */
  afterMs: number;
  /** How long the stall lasts. */
  forMs: number;
  /** How long each answer is held while it lasts. */
  holdMs: number;
}

export interface StallServer {
  port: number;
  readonly answered: number;
  /** Arms one stall; resolves when it has ended. */
  arm(plan: StallPlan): Promise<void>;
  close(): void;
}

export async function startStallServer(): Promise<StallServer> {
  let hold = 0;
  let armed: { plan: StallPlan; ended: () => void } | null = null;
  const onRequest = (): number => {
    if (armed) {
      const { plan, ended } = armed;
      armed = null;
      setTimeout(() => {
        hold = plan.holdMs;
        setTimeout(() => {
          hold = 0;
          ended();
        }, plan.forMs);
      }, plan.afterMs);
    }
    return hold;
  };
  const server: ConstantServer = await startConstantServer({ holdMs: onRequest });
  return {
    port: server.port,
    get answered() {
      return server.answered;
    },
    arm(plan) {
      return new Promise<void>((ended) => (armed = { plan, ended }));
    },
    close: () => server.close(),
  };
}
