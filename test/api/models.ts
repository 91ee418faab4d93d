/**
 * Models for the API tests: the `tiny` preset (random init, seed 0) saved with saveModel, a
 * `tiny-ft` classifier with stored label names and training loss, and the official small
 * fixture (.pth and .safetensors).
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { CAVMAE, CAVMAEFT, presetConfig, saveModel, type AnyModel } from '../../src/models/index.js';
import { fixture } from '../helpers.js';

export const FIXTURE_PTH = fixture('model_small', 'cavmae_small.pth');
export const FIXTURE_ST = fixture('model_small', 'cavmae_small.safetensors');
export const FIXTURE_FT = fixture('model_small', 'cavmaeft_small.safetensors');
export const FIXTURE_IO = fixture('model_small', 'cavmae_small_io.safetensors');
export const FIXTURE_FT_IO = fixture('model_small', 'cavmaeft_small_io.safetensors');

export const DIGIT_NAMES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

export interface TestModels {
  tiny: string;
  tinyFt: string;
  /** A label CSV for tiny-ft with other names. */
  labelCsv: string;
}

/** saveModel with string metadata pairs. */
export function saveForTest(path: string, model: AnyModel, extra: Record<string, string> = {}): void {
  saveModel(path, model, { extra });
}

export function writeTestModels(dir: string, opts: { normPixLoss?: boolean } = {}): TestModels {
  const tiny = join(dir, 'tiny.safetensors');
  saveForTest(
    tiny,
    CAVMAE.create(
      // 64 px: these API tests were written for 4 x 4 image patches (the tiny preset is 32 px now)
      presetConfig('tiny', {
        img_size: 64,
        ...(opts.normPixLoss === undefined ? {} : { norm_pix_loss: opts.normPixLoss }),
      }),
      { seed: 0 },
    ),
  );
  const tinyFt = join(dir, 'tiny-ft.safetensors');
  saveForTest(tinyFt, CAVMAEFT.create(presetConfig('tiny-ft', { img_size: 64 }), { seed: 1 }), {
    'cavmae.labels': JSON.stringify({ mids: DIGIT_NAMES.map((_, i) => `/d/${i}`), names: DIGIT_NAMES }),
    'cavmae.ft_loss': 'ce',
  });
  const labelCsv = join(dir, 'labels.csv');
  writeFileSync(
    labelCsv,
    'index,mid,display_name\n' + DIGIT_NAMES.map((n, i) => `${i},/m/${i},"Digit ${n}"`).join('\n') + '\n',
  );
  return { tiny, tinyFt, labelCsv };
}
