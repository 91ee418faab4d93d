/**
 * Initialising a CAV-MAE Sync model from CAV-MAE weights (spec 8.5): `IN-initial.pth` (the
 * ImageNet MAE adapted to CAV-MAE, `cavmae adapt-mae`) or any CAV-MAE / Sync checkpoint.
 *
 * Contract:
 * - `adaptToSyncGrid` drops `pos_embed_a` and `decoder_pos_embed_a` (the recipe deletes them
 *   before loading: their 8 × 64 grid does not fit the 8 × L/16 segment grid, and the fresh
 *   model already holds the sin-cos tables of its own grid), and the visual tables only when
 *   their grid differs. Nothing else is changed.
 * - `loadSyncInit` loads the rest with strict=False semantics: the Sync-only parameters
 *   (`register_tokens`, `cls_token_a/_v`, `constrative_head_*`) and the dropped tables keep their
 *   fresh initialisation; any other missing key is refused (it means the encoder sizes differ:
 *   check the config). Unexpected keys are reported, not refused.
 */
import { compareKeys, formatKeyReport, loadStateDict, type KeyReport } from '../io/checkpoint.js';
import { fileError } from '../util/errors.js';
import { loadInto } from './registry.js';
import { HEAD_AUDIO, HEAD_VISUAL, type CAVMAESync } from './sync.js';
import type { CAVMAESyncFT } from './sync-ft.js';

type StateDict = Map<string, { shape: number[]; data: Float32Array }>;

const AUDIO_TABLES = ['pos_embed_a', 'decoder_pos_embed_a'];
const VISUAL_TABLES = ['pos_embed_v', 'decoder_pos_embed_v'];

/** Parameters a CAV-MAE checkpoint cannot provide (fresh in a Sync model). */
export function isSyncOnlyParam(name: string): boolean {
  return (
    name === 'register_tokens' ||
    name === 'cls_token_a' ||
    name === 'cls_token_v' ||
    name.startsWith(`${HEAD_AUDIO}.`) ||
    name.startsWith(`${HEAD_VISUAL}.`)
  );
}

/**
 * The state dict without the position tables the Sync model recomputes (audio always, visual
 * on a grid change), given the model's expected shapes.
 */
export function adaptToSyncGrid(
  tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
  expected: ReadonlyMap<string, readonly number[]>,
): { tensors: StateDict; dropped: string[] } {
  const out: StateDict = new Map(tensors);
  const dropped: string[] = [];
  const sameShape = (k: string): boolean => {
    const a = tensors.get(k)!.shape;
    const b = expected.get(k);
    return b !== undefined && a.length === b.length && a.every((d, i) => d === b[i]);
  };
  for (const k of [...AUDIO_TABLES, ...VISUAL_TABLES]) {
    if (!tensors.has(k)) continue;
    if (AUDIO_TABLES.includes(k) || !sameShape(k)) {
      out.delete(k);
      dropped.push(k);
    }
  }
  return { tensors: out, dropped };
}

export interface SyncInitReport extends KeyReport {
  /** Position tables left at the model's own sin-cos values. */
  dropped: string[];
  reportText: string;
}

/** Loads CAV-MAE / IN-initial weights into a freshly built Sync model (see the contract). */
export function loadSyncInit(model: CAVMAESync | CAVMAESyncFT, path: string): SyncInitReport {
  const { tensors } = loadStateDict(path);
  const expected = new Map(model.arena.params.map((p) => [p.name, p.shape]));
  const { tensors: adapted, dropped } = adaptToSyncGrid(tensors, expected);
  const mismatch = compareKeys(expected, adapted).shapeMismatch;
  if (mismatch.length > 0) {
    const m = mismatch[0];
    throw fileError(
      path,
      `does not fit the Sync model (check the encoder sizes in the config): ${m.key} is [${m.got.join(',')}], the model has [${m.expected.join(',')}]`,
    );
  }
  const droppedSet = new Set(dropped);
  const report = loadInto(model, adapted, path, {
    allowMissing: (name) => isSyncOnlyParam(name) || droppedSet.has(name),
  });
  return { ...report, dropped, reportText: formatKeyReport(report) };
}
