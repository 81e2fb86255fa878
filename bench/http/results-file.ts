/** `--write`: the report goes at the end of bench/RESULTS.md's "HTTP end to end" section. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../lib/engine-proc';

const SECTION = '## HTTP end to end';

const SECTION_INTRO = `${SECTION}

\`npm run bench:http\` (bench/http.ts) starts the engine and the naive baseline
(bench/baselines/naive-server.ts: uWS + one onnxruntime \`session.run\` per request on the main
thread, \`JSON.parse\`, same model and JSON contract) on the same model, checks their answers, and
drives both with the same load generator, interleaved. Each run below was appended by
\`npm run bench:http -- --write\`; the newest is last.
`;

/** Appends `markdown` to the section, creating it if needed; answers the file's path. */
export function writeResults(markdown: string): string {
  const file = path.join(ROOT, 'bench', 'RESULTS.md');
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n';
  const start = text.indexOf(`\n${SECTION}\n`);
  const block = '\n' + markdown.trimEnd() + '\n';
  if (start === -1) {
    text = text.trimEnd() + '\n\n' + SECTION_INTRO + block;
  } else {
    const next = text.indexOf('\n## ', start + SECTION.length + 2);
    const end = next === -1 ? text.length : next;
    text = text.slice(0, end).trimEnd() + '\n' + block + (next === -1 ? '' : '\n' + text.slice(next + 1));
  }
  fs.writeFileSync(file, text.endsWith('\n') ? text : text + '\n');
  return file;
}
