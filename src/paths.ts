/** Where the project's own files are, whether we run from dist/ or from sources (tests). */
import * as fs from 'node:fs';
import * as path from 'node:path';

let root: string | null = null;

export function projectRoot(): string {
  if (root !== null) return root;
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the project root (package.json) above ' + __dirname);
    dir = up;
  }
  root = dir;
  return dir;
}
