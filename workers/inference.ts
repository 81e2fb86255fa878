/**
 * Inference worker (Piscina). Owns one scorer per served model, built once at start-up from the
 * descriptors in workerData, warmed up before the worker reports ready. A task is only
 * `{ slot, rows, model }`: rows are read from and results written to the shared slab. The
 * messages it exchanges with the pool are in src/pool/worker-protocol.ts.
 */
import { MessageChannel, parentPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { checkWarmup } from '../src/models/model-loader';
import { SgdScorer } from '../src/learning/sgd-scorer';
import { OnnxScorer } from '../src/models/onnx-scorer';
import type { Scorer } from '../src/models/scorer';
import { viewSlab } from '../src/pool/slab';
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

async function init(): Promise<(task: InferenceTask) => Promise<TaskResult>> {
  const data = workerData as InferenceWorkerData;
  const slab = viewSlab(data.slab, data.layout);
  const fixed: (Scorer | null)[] = [];
  /** ONNX sessions by version id: the serving one, and those prepared for a swap or in flight. */
  const versions = new Map<number, Promise<Scorer>>();

  async function build(m: OnnxWorkerModel): Promise<Scorer> {
    // onnxruntime accepts only a plain ArrayBuffer: copy the shared model bytes once.
    const bytes = new Uint8Array(m.bytes.byteLength);
    bytes.set(new Uint8Array(m.bytes));
    const scorer = await OnnxScorer.create(bytes, m.contract, { intraOpNumThreads: data.ortThreads });
    await checkWarmup(scorer, m.contract.features, m.source);
    return scorer;
  }

  for (const m of data.models) {
    if (m.kind === 'sgd') {
      const scorer = new SgdScorer(m.weights);
      await checkWarmup(scorer, m.features, 'sgd');
      fixed.push(scorer);
      continue;
    }
    const om = m as OnnxWorkerModel;
    const scorer = await build(om);
    versions.set(om.id, Promise.resolve(scorer));
    fixed.push(null);
  }

  const { port1: control, port2 } = new MessageChannel();
  let nextReq = 1;
  const fetches = new Map<number, (m: OnnxWorkerModel | null) => void>();
  control.on('message', (msg: ControlRequest | FetchReply) => {
    if (msg.cmd === 'fetched') {
      fetches.get(msg.req)?.(msg.model);
      fetches.delete(msg.req);
      return;
    }
    const reply = (r: ControlReply): void => control.postMessage(r);
    if (msg.cmd === 'prepare') {
      let p = versions.get(msg.id);
      if (!p) {
        p = build(msg.model);
        versions.set(msg.id, p);
      }
      p.then(
        () => reply({ cmd: 'done', req: msg.req, ok: true }),
        (err: Error) => {
          versions.delete(msg.id);
          reply({ cmd: 'done', req: msg.req, ok: false, error: err.message });
        },
      );
    } else if (msg.cmd === 'release') {
      const p = versions.get(msg.id);
      versions.delete(msg.id);
      if (p) p.then((sc) => sc.release(), () => undefined).catch(() => undefined);
      reply({ cmd: 'done', req: msg.req, ok: true });
    }
  });

  /** A version this worker has not prepared (it was started after the swap): ask for it. */
  function scorerFor(id: number): Promise<Scorer> {
    let p = versions.get(id);
    if (p) return p;
    p = new Promise<OnnxWorkerModel | null>((resolve) => {
      const req = nextReq++;
      fetches.set(req, resolve);
      const ask: ControlReply = { cmd: 'fetch', req, id };
      control.postMessage(ask);
    }).then((m) => {
      if (!m) throw new Error(`model version ${id} is not known to the engine`);
      return build(m);
    });
    versions.set(id, p);
    p.catch(() => versions.delete(id));
    return p;
  }

  const { crashOnFeature: crashOn, holdOnFeature: holdOn, holdMs } = data.hooks;
  const gate = data.hooks.gate ? new Int32Array(data.hooks.gate) : null;
  const warm: WarmMessage = { type: 'warm', threadId, control: port2 };
  parentPort!.postMessage(warm, [port2]);

  return async function infer(task: InferenceTask): Promise<TaskResult> {
    const input = slab.inputs[task.slot]!;
    if (crashOn !== null && input[0] === crashOn) process.exit(3);
    if (holdOn !== null && gate !== null && input[0] === holdOn) Atomics.wait(gate, 0, 0, holdMs);
    const own = fixed[task.model];
    if (own === undefined) throw new Error(`no model with index ${task.model} in this worker`);
    const scorer = own ?? (await scorerFor(task.version));
    const version = await scorer.score(input, task.rows, slab.probabilities[task.slot]!, slab.labels[task.slot]!);
    return { version: own ? version : task.version };
  };
}

module.exports = init();
