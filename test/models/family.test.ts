/**
 * One model family: a CAV-MAE Sync model with every Sync part switched off (no register tokens,
 * no global tokens, no contrastive heads, no global/local losses, single-ratio masking, one
 * frame per clip) IS CAV-MAE. On the same weights and the same masking noise it gives the same
 * losses, masks, predictions, every gradient and (where the two references agree) the same
 * forward_feat outputs, bit for bit.
 *
 * The two behaviours that differ on purpose are named and tested here:
 * - Which shared layers forward_feat runs. CAV-MAE's forward_feat chains every shared layer
 *   (src/models/cav_mae.py: CAVMAE.forward_feat); Sync's forward_feat is its contrastive stream,
 *   whose loop keeps only the LAST shared layer's output (cav_mae_sync.py: forward_feat, the same
 *   `for blk in self.blocks_u: ca = blk(a, 'a')` as CAVMAE.forward_encoder). They agree with one
 *   shared layer or chain_shared_layers.
 * - State-dict key order. The Sync-only parameters sit where the release declares them:
 *   register_tokens after the position tables, cls_token_a/_v after the decoder's own tensors,
 *   the contrastive heads between blocks_u and norm_a. With the parts off the key lists are equal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tape } from '../../src/autograd/tape.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { resolveConfig, type CavmaeConfig } from '../../src/models/config.js';
import { buildModel } from '../../src/models/registry.js';
import type { FeatOutput, PretrainOptions, PretrainOutput } from '../../src/models/index.js';

/** Small enough for any kernels: 2x2 image patches, 8x2 audio patches. */
const BASE = {
  img_size: 32,
  audio_length: 32,
  embed_dim: 16,
  num_heads: 2,
  modality_specific_depth: 1,
  decoder_embed_dim: 8,
  decoder_depth: 1,
  decoder_num_heads: 2,
  norm_pix_loss: true,
  contrast_loss_weight: 0.05,
};

/** Every Sync part off. */
const SYNC_OFF = {
  num_register_tokens: 0,
  cls_token: false,
  contrastive_heads: false,
  global_local_losses: false,
  multi_ratio_masking: false,
  keep_register_tokens: false,
  total_frame: 1,
};

function pair(extra: Record<string, unknown>): { cav: CavmaeConfig; sync: CavmaeConfig } {
  return {
    cav: resolveConfig({ model: 'cavmae', ...BASE, ...extra }),
    sync: resolveConfig({ model: 'cavmae-sync', ...BASE, ...SYNC_OFF, ...extra }),
  };
}

function batch(c: CavmaeConfig, B: number, seed: number): { audio: Tensor; image: Tensor } {
  const rng = new Rng(seed);
  return {
    audio: new Tensor([B, c.audio_length, 128], rng.fillNormal(new Float32Array(B * c.audio_length * 128))),
    image: new Tensor(
      [B, 3, c.img_size, c.img_size],
      rng.fillNormal(new Float32Array(B * 3 * c.img_size ** 2)),
    ),
  };
}

/** Bit-for-bit equality of two float arrays (NaN payloads and -0 included). */
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
  }
}

type Input = { audio: Tensor; image: Tensor };
/** What both pretraining classes offer (the test must compile against either layout of the code). */
type Pretrainer = Pick<ReturnType<typeof buildModel>, 'arena'> & {
  forward(tp: Tape, b: Input, o: PretrainOptions): PretrainOutput;
  forwardFeat(tp: Tape, b: Input): FeatOutput & { clsA?: Tensor };
};

/** The two models on the same weights (the CAV-MAE model's initialisation copied by name). */
function twins(extra: Record<string, unknown>): { cav: Pretrainer; sync: Pretrainer; cfg: CavmaeConfig } {
  const { cav, sync } = pair(extra);
  const a = buildModel(cav, { seed: 3, grad: true }) as Pretrainer;
  const b = buildModel(sync, { seed: 99, grad: true }) as Pretrainer;
  assert.deepEqual(b.arena.names(), a.arena.names(), 'Sync parts off: the same keys in the same order');
  b.arena.load(a.arena.stateDict(), 'cavmae weights');
  sameBits(b.arena.data, a.arena.data, 'weights');
  return { cav: a, sync: b, cfg: cav };
}

function comparePretrain(
  extra: Record<string, unknown>,
  opts: (B: number, c: CavmaeConfig) => PretrainOptions,
): void {
  const { cav, sync, cfg } = twins(extra);
  const B = 3;
  const input = batch(cfg, B, 11);
  const run = (m: Pretrainer) => {
    const tp = new Tape({ grad: true });
    m.arena.zeroGrad();
    const out = m.forward(tp, input, opts(B, cfg));
    tp.backward(out.loss);
    return out;
  };
  const x = run(cav);
  const y = run(sync);
  const field = (o: PretrainOutput, k: string): Float32Array => {
    const t = (o as unknown as Record<string, Tensor | undefined>)[k];
    assert.ok(t, `${k} is computed`);
    return t.data;
  };
  for (const k of [
    'loss',
    'lossMae',
    'lossMaeA',
    'lossMaeV',
    'lossC',
    'predA',
    'predV',
    'latent',
    'latentCA',
    'latentCV',
    'audioRep',
    'videoRep',
  ])
    sameBits(field(y, k), field(x, k), k);
  assert.equal(y.cAcc, x.cAcc, 'cAcc');
  sameBits(y.maskA!.mask, x.maskA!.mask, 'mask_a');
  sameBits(y.maskV!.mask, x.maskV!.mask, 'mask_v');
  assert.deepEqual(
    y.logits!.map((r) => Array.from(r)),
    x.logits!.map((r) => Array.from(r)),
    'NCE logits',
  );
  for (const p of cav.arena.params) {
    if (!p.requiresGrad) continue;
    sameBits(sync.arena.get(p.name).grad!, p.grad!, `grad.${p.name}`);
  }
}

const noiseOf = (B: number, L: number, seed: number): Float32Array =>
  new Rng(seed).fillUniform(new Float32Array(B * L));
const tokens = (c: CavmaeConfig) => ({ La: 8 * (c.audio_length / 16), Lv: (c.img_size / 16) ** 2 });

test('Sync with its parts off = CAV-MAE: losses, masks, predictions, every gradient (given noise)', () => {
  for (const extra of [
    { shared_depth: 1 },
    { shared_depth: 2 },
    { shared_depth: 2, chain_shared_layers: true },
  ]) {
    comparePretrain(extra, (B, c) => ({
      noiseA: noiseOf(B, tokens(c).La, 1),
      noiseV: noiseOf(B, tokens(c).Lv, 2),
      bidirectional: true,
    }));
  }
});

test('Sync with its parts off = CAV-MAE: masks drawn from the same generator, structured audio masking, groups', () => {
  comparePretrain({ shared_depth: 1 }, () => ({ rng: new Rng(7) }));
  comparePretrain({ shared_depth: 2, mask_mode: 'time' }, () => ({ rng: new Rng(8), contrastiveGroups: 1 }));
  comparePretrain({ shared_depth: 1 }, () => ({
    rng: new Rng(9),
    maskRatioA: 0.5,
    maskRatioV: 0.25,
    maskMode: 'tf',
  }));
});

test('forward_feat: equal where the references agree (one shared layer, or chained layers)', () => {
  for (const extra of [{ shared_depth: 1 }, { shared_depth: 2, chain_shared_layers: true }]) {
    const { cav, sync, cfg } = twins(extra);
    const input = batch(cfg, 2, 5);
    const x = cav.forwardFeat(new Tape({ grad: false }), input);
    const y = sync.forwardFeat(new Tape({ grad: false }), input);
    sameBits(y.audioTokens!.data, x.audioTokens!.data, 'audio_tokens');
    sameBits(y.videoTokens!.data, x.videoTokens!.data, 'video_tokens');
    assert.equal(y.clsA, undefined);
  }
});

test('forward_feat differs on purpose with several unchained shared layers: Sync runs the last one only', () => {
  const { cav, sync, cfg } = twins({ shared_depth: 2 });
  const B = 2;
  const input = batch(cfg, B, 5);
  const feat = sync.forwardFeat(new Tape({ grad: false }), input);
  const chained = cav.forwardFeat(new Tape({ grad: false }), input);
  // Sync's feature is CAV-MAE's contrastive stream on every token: mask ratio 0 with increasing
  // noise keeps all tokens in their own order.
  const { La, Lv } = tokens(cfg);
  const increasing = (L: number): Float32Array => Float32Array.from({ length: B * L }, (_, i) => (i % L) / L);
  const stream = cav.forward(new Tape({ grad: false }), input, {
    maskRatioA: 0,
    maskRatioV: 0,
    noiseA: increasing(La),
    noiseV: increasing(Lv),
    maeLossWeight: 0,
  });
  sameBits(feat.audioTokens!.data, stream.latentCA!.data, 'Sync audio_tokens = last shared layer + norm_a');
  sameBits(feat.videoTokens!.data, stream.latentCV!.data, 'Sync video_tokens = last shared layer + norm_v');
  const a = chained.audioTokens!.data;
  const b = feat.audioTokens!.data;
  const differs = a.some((v, i) => v !== b[i]);
  assert.ok(differs, 'CAV-MAE forward_feat chains both shared layers');
});

test('state-dict key order: the Sync parts sit where the release declares them', () => {
  const { cav } = pair({ shared_depth: 1 });
  const names = buildModel(cav, { allocate: false }).arena.names();
  const on = resolveConfig({
    model: 'cavmae-sync',
    ...BASE,
    shared_depth: 1,
    num_register_tokens: 2,
    cls_token: true,
    contrastive_heads: true,
  });
  const got = buildModel(on, { allocate: false }).arena.names();
  const heads = got.filter((n) => n.startsWith('constrative_head_'));
  assert.ok(heads.length > 0);
  assert.deepEqual(
    got,
    names.flatMap((n) => {
      if (n === 'pos_embed_v') return [n, 'register_tokens'];
      if (n === 'decoder_pos_embed_v') return [n, 'cls_token_a', 'cls_token_v'];
      if (n === 'norm_a.weight') return [...heads, n];
      return [n];
    }),
  );
  // Audio heads first, then visual, each in block order.
  const firstVisual = heads.findIndex((h) => h.startsWith('constrative_head_visual.'));
  assert.ok(heads[0].startsWith('constrative_head_audio.0.') && firstVisual === heads.length / 2);
  assert.ok(heads[firstVisual].startsWith('constrative_head_visual.0.'));
});
