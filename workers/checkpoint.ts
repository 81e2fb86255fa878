/**
 * Checkpoint writer thread: started by src/learning/checkpoint-writer.ts, it encodes each learning
 * state it is sent (the replay buffer's arrays arrive transferred) and writes it atomically with
 * src/learning/checkpoint.ts, off the event loop that serves requests. One request at a time, in
 * order; each gets one reply.
 */
import { parentPort } from 'node:worker_threads';
import { isTradeflowError } from '../src/errors';
import { writeCheckpoint } from '../src/learning/checkpoint';
import type { CheckpointReply, CheckpointRequest } from '../src/learning/checkpoint-writer';

const port = parentPort;
if (!port) throw new Error('workers/checkpoint.js is a worker thread: start it with new Worker()');

let chain: Promise<void> = Promise.resolve();

port.on('message', (m: CheckpointRequest) => {
  chain = chain.then(async () => {
    let reply: CheckpointReply;
    try {
      await writeCheckpoint(m.dir, m.name, m.state);
      reply = { id: m.id, ok: true };
    } catch (err) {
      reply = isTradeflowError(err)
        ? { id: m.id, ok: false, code: err.code, message: err.message }
        : { id: m.id, ok: false, code: 'INTERNAL', message: `checkpoint writer: ${(err as Error).message}` };
    }
    port.postMessage(reply);
  });
});
