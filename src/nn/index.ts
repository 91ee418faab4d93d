/** Neural-network modules with the official parameter names. */
export { Linear } from './linear.js';
export { LayerNorm } from './layer-norm.js';
export { Attention } from './attention.js';
export { Mlp } from './mlp.js';
export { Block, runBlocks, type Modality } from './block.js';
export {
  PatchEmbed,
  imagePatches,
  audioPatches,
  patchifyImage,
  patchifyAudio,
  unpatchifyImage,
  unpatchifyAudio,
  normalizePatches,
} from './patch-embed.js';
export * as init from './init.js';
