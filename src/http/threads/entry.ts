/**
 * The entry file of a front-end thread (dist/src/http/threads/entry.js). It lives beside the
 * code it runs rather than in workers/: a front-end thread is the HTTP face itself, and the
 * layer table keeps workers/ from importing src/http/.
 */
import { workerData } from 'node:worker_threads';
import { runFrontEnd } from './front-end';
import type { FrontEndData } from './protocol';

runFrontEnd(workerData as FrontEndData, (code) => process.exit(code));
