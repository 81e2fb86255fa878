/**
 * POST /learn in a front-end thread: the caller, the headers and the body are checked and the
 * body decoded here (src/http/learn.ts's own checks and decoder), and the decoded feedback goes to
 * the main thread, which alone writes the learning state (the store, the feedback log, the SGD
 * weights, the detectors) and answers once it is durable.
 */
import type { HttpRequest } from 'uWebSockets.js';
import { adminCheck } from '../auth';
import { readBody } from '../body';
import { LearnDecoder, refuseLearnEarly, type LearnInput } from '../learn';
import type { Exchange, Responder } from '../respond';
import type { Forwarder } from './forwarded';
import type { FrontEndData } from './protocol';

export function frontLearnHandler(data: FrontEndData, responder: Responder, forwarder: Forwarder, isDraining: () => boolean): (x: Exchange, req: HttpRequest) => void {
  const deps = { admin: adminCheck(data.adminToken), isDraining, options: data.options };
  const decoder = new LearnDecoder(data.features, data.options.maxRequestRows);
  const max = data.options.maxBodyBytes;
  return function learn(x: Exchange, req: HttpRequest): void {
    const contentLength = refuseLearnEarly(x, req, deps);
    readBody(
      x.res,
      contentLength,
      max,
      (bytes) => {
        if (x.aborted) return;
        let input: LearnInput;
        try {
          input = decoder.decode(bytes);
        } catch (err) {
          responder.corked(x, () => responder.error(x, err));
          return;
        }
        forwarder.forwardDecoded(x, (id, remote) => ({ t: 'learn', id, remote, input }));
      },
      (err) => responder.corked(x, () => responder.error(x, err, true)),
    );
  };
}
