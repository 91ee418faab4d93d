/**
 * Loads the model engine from the inference API (`src/api/engine.ts`, `createEngine`). The
 * import is resolved at run time so that this layer builds and tests without it; when it is
 * absent the commands that need a model say so plainly instead of faking results.
 */
import { UserError } from '../util/errors.js';
import type { CreateEngine, Engine } from './engine.js';

export async function loadEngine(modelPath: string, indexPath?: string): Promise<Engine> {
  const spec = new URL('../api/engine.js', import.meta.url).href;
  let mod: { createEngine?: CreateEngine };
  try {
    mod = (await import(spec)) as { createEngine?: CreateEngine };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes('api/engine')) {
      throw new UserError(
        'model engine not available yet: this build has no src/api/engine (the inference API); embedding, search and serving need it',
      );
    }
    throw e;
  }
  if (typeof mod.createEngine !== 'function')
    throw new UserError('model engine not available yet: src/api/engine does not export createEngine');
  return mod.createEngine(modelPath, indexPath);
}
