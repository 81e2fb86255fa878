/**
 * A progress line each second while a run goes (answers per second in that second, p95 so far,
 * errors so far), written only to a terminal: a run whose output goes to a file or a pipe stays
 * quiet, so its log holds the report alone.
 */
import { performance } from 'node:perf_hooks';
import type { Recorder } from './recorder';
import { formatMs } from './units';

export interface Progress {
  /** Starts reporting on these recorders (a new step of a sweep replaces the previous ones). */
  follow(label: string, warmup: Recorder, measured: Recorder): void;
  stop(): void;
}

const QUIET: Progress = { follow: () => {}, stop: () => {} };

export function progress(stream: NodeJS.WritableStream & { isTTY?: boolean }): Progress {
  if (!stream.isTTY) return QUIET;
  let timer: NodeJS.Timeout | null = null;
  return {
    follow(label, warmup, measured) {
      if (timer) clearInterval(timer);
      let lastAnswered = 0;
      let lastAt = performance.now();
      timer = setInterval(() => {
        const now = performance.now();
        const warming = now < measured.t0;
        const rec = warming ? warmup : measured;
        const answered = warmup.answered + measured.answered;
        const rate = ((answered - lastAnswered) * 1000) / (now - lastAt);
        lastAnswered = answered;
        lastAt = now;
        const t = ((now - measured.t0) / 1000).toFixed(0);
        const p95 = rec.answered ? formatMs(rec.percentileMs(95)) : '-';
        stream.write(`${label}${warming ? 'warm-up' : `${t} s`}  ${rate.toFixed(0)}/s  p95 ${p95}  errors ${rec.errors}\n`);
      }, 1000);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
