/**
 * Inference worker (Piscina). Owns one scorer per served model, built once at start-up from the
 * descriptors in workerData, warmed up before the worker reports ready. A task is only
 * `{ slot, rows, model }`: rows are read from and results written to the shared slab. The
 * messages it exchanges with the pool are in src/pool/worker-protocol.ts.
 */
import { openSync, readSync } from 'node:fs';
import { MessageChannel, parentPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { checkWarmup } from '../src/models/model-loader';
import { ArfScorer } from '../src/learning/arf/arf-scorer';
import { SgdScorer } from '../src/learning/sgd-scorer';
import { OnnxScorer } from '../src/models/onnx-scorer';
import type { Scorer } from '../src/models/scorer';
import { slabClock, viewSlab, type SlabViews } from '../src/pool/slab';
import type {
  ControlReply,
  ControlRequest,
  FetchReply,
  InferenceTask,
  InferenceWorkerData,
  OnnxWorkerModel,
  TaskResult,
  WarmMessage,
} from '../src/pool/worker-protocol';

/** A scorer for one ONNX version, warmed up. */
async function buildOnnx(m: OnnxWorkerModel, ortThreads: number): Promise<Scorer> {
  // onnxruntime accepts only a plain ArrayBuffer: copy the shared model bytes once.
  const bytes = new Uint8Array(m.bytes.byteLength);
  bytes.set(new Uint8Array(m.bytes));
  const scorer = await OnnxScorer.create(bytes, m.contract, { intraOpNumThreads: ortThreads });
  await checkWarmup(scorer, m.contract.features, m.source);
  return scorer;
}

/**
 * ONNX sessions by version id: the serving one, and those prepared for a swap or in flight. The
 * main thread drives it over the control port (prepare, release); a task naming a version this
 * worker never prepared (it started after the swap) fetches the model over the same port.
 */
class OnnxVersions {
  private readonly versions = new Map<number, Promise<Scorer>>();
  private readonly fetches = new Map<number, (m: OnnxWorkerModel | null) => void>();
  private nextReq = 1;

  constructor(
    private readonly control: MessagePort,
    private readonly ortThreads: number,
    serving: Map<number, Scorer>,
  ) {
    for (const [id, scorer] of serving) this.versions.set(id, Promise.resolve(scorer));
    control.on('message', (msg: ControlRequest | FetchReply) => this.onMessage(msg));
  }

  private onMessage(msg: ControlRequest | FetchReply): void {
    if (msg.cmd === 'fetched') {
      this.fetches.get(msg.req)?.(msg.model);
      this.fetches.delete(msg.req);
    } else if (msg.cmd === 'prepare') {
      this.prepare(msg.req, msg.id, msg.model);
    } else if (msg.cmd === 'release') {
      this.release(msg.req, msg.id);
    }
  }

  private reply(r: ControlReply): void {
    this.control.postMessage(r);
  }

  private prepare(req: number, id: number, model: OnnxWorkerModel): void {
    let p = this.versions.get(id);
    if (!p) {
      p = buildOnnx(model, this.ortThreads);
      this.versions.set(id, p);
    }
    p.then(
      () => this.reply({ cmd: 'done', req, ok: true }),
      (err: Error) => {
        this.versions.delete(id);
        this.reply({ cmd: 'done', req, ok: false, error: err.message });
      },
    );
  }

  private release(req: number, id: number): void {
    const p = this.versions.get(id);
    this.versions.delete(id);
    if (p) p.then((sc) => sc.release(), () => undefined).catch(() => undefined);
    this.reply({ cmd: 'done', req, ok: true });
  }

  /** The scorer of a version, prepared, in flight, or asked for now. */
  scorerFor(id: number): Promise<Scorer> {
    let p = this.versions.get(id);
    if (p) return p;
    p = new Promise<OnnxWorkerModel | null>((resolve) => {
      const req = this.nextReq++;
      this.fetches.set(req, resolve);
      this.reply({ cmd: 'fetch', req, id });
    }).then((m) => {
      if (!m) throw new Error(`model version ${id} is not known to the engine`);
      return buildOnnx(m, this.ortThreads);
    });
    this.versions.set(id, p);
    p.catch(() => this.versions.delete(id));
    return p;
  }
}

/**
 * One scorer per served model, in the engine's model order, all warmed up: the online model's
 * (`fixed`: it reads the shared weights, whatever their version) or null for an ONNX model, whose
 * scorer goes by version id into `onnx`.
 */
async function startScorers(data: InferenceWorkerData): Promise<{ fixed: (Scorer | null)[]; onnx: Map<number, Scorer> }> {
  const fixed: (Scorer | null)[] = [];
  const onnx = new Map<number, Scorer>();
  for (const m of data.models) {
    if (m.kind === 'sgd' || m.kind === 'arf') {
      const scorer = m.kind === 'sgd' ? new SgdScorer(m.weights) : new ArfScorer(m.weights);
      await checkWarmup(scorer, m.features, m.kind);
      fixed.push(scorer);
      continue;
    }
    const om = m as OnnxWorkerModel;
    onnx.set(om.id, await buildOnnx(om, data.ortThreads));
    fixed.push(null);
  }
  return { fixed, onnx };
}

/**
 * Lets one batch at a time run in this worker and says which, in the slab's per-slot records.
 * Piscina hands a worker up to BATCHES_PER_WORKER tasks; the second one waits here for its turn
 * rather than starting while the first is inside onnxruntime (session.run yields to the event
 * loop before its native call). So when the worker dies or hangs, exactly one batch reads as
 * started: that one fails, and the others are dispatched again by the pool.
 */
class Turns {
  private busy = false;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly slab: SlabViews,
    private readonly thread: number,
  ) {}

  /** Null when the batch may start at once (no promise made on the common path). */
  take(): Promise<void> | null {
    if (!this.busy) {
      this.busy = true;
      return null;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Marks the slot's batch running in this thread, from now (the watchdog times it from here). */
  start(slot: number): void {
    this.slab.startedAt[slot] = slabClock();
    Atomics.store(this.slab.runningIn, slot, this.thread);
  }

  end(slot: number): void {
    // Only our own mark: after a fault the pool clears the record and the slot may be running elsewhere.
    Atomics.compareExchange(this.slab.runningIn, slot, this.thread, 0);
    const next = this.waiting.shift();
    if (next) next();
    else this.busy = false;
  }
}

/**
 * Test hook: never returns by itself. Atomics.wait on a value nobody notifies ends only when
 * worker.terminate() interrupts it; a read of a FIFO without a writer is a native call that
 * terminate() cannot interrupt (the test writes to the FIFO to let the thread go).
 */
function hang(fifo: string | null): void {
  if (fifo === null) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  else readSync(openSync(fifo, 'r'), new Uint8Array(1));
}

async function init(): Promise<(task: InferenceTask) => Promise<TaskResult>> {
  const data = workerData as InferenceWorkerData;
  const slab = viewSlab(data.slab, data.layout);
  const { fixed, onnx } = await startScorers(data);
  const { port1: control, port2 } = new MessageChannel();
  const versions = new OnnxVersions(control, data.ortThreads, onnx);

  const { crashOnFeature: crashOn, holdOnFeature: holdOn, hangOnFeature: hangOn, holdMs } = data.hooks;
  const gate = data.hooks.gate ? new Int32Array(data.hooks.gate) : null;
  const turns = new Turns(slab, threadId);
  // Test hook: a swap's candidate worker stays in validation (not warm) until the test releases it.
  if (data.hooks.warmGate) Atomics.wait(new Int32Array(data.hooks.warmGate), 0, 0, holdMs);
  const warm: WarmMessage = { type: 'warm', threadId, control: port2 };
  parentPort!.postMessage(warm, [port2]);

  return async function infer(task: InferenceTask): Promise<TaskResult> {
    const input = slab.inputs[task.slot]!;
    // The hold comes before the batch starts: a held batch stands for one waiting in a busy
    // worker, so tests that hold batches for long do not meet the BATCH_TIMEOUT_MS watchdog.
    if (holdOn !== null && gate !== null && input[0] === holdOn) Atomics.wait(gate, 0, 0, holdMs);
    const turn = turns.take();
    if (turn !== null) await turn;
    turns.start(task.slot);
    try {
      if (crashOn !== null && input[0] === crashOn) process.exit(3);
      if (hangOn !== null && input[0] === hangOn) hang(data.hooks.hangFifo);
      const own = fixed[task.model];
      if (own === undefined) throw new Error(`no model with index ${task.model} in this worker`);
      const scorer = own ?? (await versions.scorerFor(task.version));
      const version = await scorer.score(input, task.rows, slab.probabilities[task.slot]!, slab.labels[task.slot]!);
      return { version: own ? version : task.version };
    } finally {
      turns.end(task.slot);
    }
  };
}

module.exports = init();
