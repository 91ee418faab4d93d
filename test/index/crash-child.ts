/**
 * Child process for the crash-safety test: adds synthetic items 0..n-1 to an index in commits
 * of `batch`, skipping items already indexed (resume), and prints "commit <count>" after each
 * commit. The parent kills it with SIGKILL at an arbitrary moment.
 * Usage: crash-child <indexDir> <n> <batch>
 */
import { MediaIndex, type NewItem } from '../../src/index/index.js';
import { crashItem, CRASH_ID } from './crash-items.js';

const [dir, nArg, batchArg] = process.argv.slice(2);
const n = Number(nArg);
const batch = Number(batchArg);
const idx = MediaIndex.openOrCreate(dir, CRASH_ID);
let pending: NewItem[] = [];
for (let i = 0; i < n; i++) {
  const it = crashItem(i);
  if (idx.isCurrent(it.path, it.mtimeMs, it.size)) continue;
  pending.push(it);
  if (pending.length === batch) {
    idx.add(pending);
    pending = [];
    process.stdout.write(`commit ${idx.count}\n`);
  }
}
if (pending.length) idx.add(pending);
idx.close();
process.stdout.write(`done ${idx.count}\n`);
