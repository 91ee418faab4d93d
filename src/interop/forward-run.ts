/**
 * The golden-value harness: the `cavmae forward` contract as a library function, what the
 * golden tests and the PyTorch interop (scripts/golden, ../shared/peer) run: a checkpoint + a safetensors file of
 * inputs → a map of named output tensors (the golden fixtures' names), optionally with the
 * gradients of the loss. Used by the CLI and by interop tests with PyTorch.
 *
 * Inputs: `audio` [B,T,128], `image` [B,3,H,W]; optional `noise_a` [B,La], `noise_v` [B,Lv]
 * (mask replay), `ids_shuffle_a` / `ids_shuffle_v` (exact permutations), `labels` [B,K]
 * (fine-tuning loss for gradients).
 * Outputs: pretrain → loss, loss_mae, loss_mae_a, loss_mae_v, loss_c, c_acc (shape [1]),
 * mask_a, mask_v, pred_a, pred_v; feat → audio_tokens, video_tokens; ft → logits (+ loss);
 * `grad.<name>` for every requested parameter.
 * CAV-MAE Sync (`"model": "cavmae-sync"`): audio is the segment [B, L, 128]; pretrain adds cls_a,
 * cls_v (the contrastive inputs [B, D]: global tokens with cls_token, else local-token means)
 * and, with cls_token + global_local_losses, loss_c_global, loss_c_local (weighted); feat gives
 * the patch tokens (global token and registers removed) and, with cls_token, cls_a, cls_v.
 * A Sync fine-tuning model (`cavmae-sync-ft`) takes B clips as [B·total_frame, ...] pairs and
 * gives logits [B, K]; its modalities are fixed by its config's `mode`.
 */
import * as ops from '../autograd/ops.js';
import { Tape } from '../autograd/tape.js';
import { readSafetensors } from '../io/safetensors.js';
import { toFloat32 } from '../io/dtypes.js';
import {
  CAVMAE,
  CAVMAEFT,
  FT_MODES,
  MASK_MODES,
  kindTraits,
  loadModel,
  type AnyModel,
  type CavmaeConfig,
  type FtMode,
  type MaskMode,
} from '../models/index.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError, fileError } from '../util/errors.js';

export type ForwardTask = 'pretrain' | 'feat' | 'ft';

export interface ForwardRunOptions {
  model: string;
  config?: string;
  inputs: string;
  task?: ForwardTask;
  mode?: string;
  /** Parameter names, or ['all'] for every trainable parameter. */
  grads?: string[];
  maskRatio?: number;
  contrastWeight?: number;
  maskMode?: string;
  /** Fine-tuning loss for gradients: 'bce' (default) or 'ce'. */
  loss?: 'bce' | 'ce';
  bf16?: boolean;
  /** Seed for mask noise the inputs do not provide. */
  seed?: number;
}

export interface OutTensor {
  shape: number[];
  data: Float32Array;
}

export interface ForwardRunResult {
  outputs: Map<string, OutTensor>;
  config: CavmaeConfig;
  task: ForwardTask;
  /** Keys of the checkpoint the model ignored. */
  unexpected: string[];
}

const scalar = (x: number): OutTensor => ({ shape: [1], data: Float32Array.of(x) });
const copy = (t: Tensor): OutTensor => ({ shape: [...t.shape], data: Float32Array.from(t.data) });

export function runForward(o: ForwardRunOptions): ForwardRunResult {
  const wantGrads = (o.grads?.length ?? 0) > 0;
  const { model, config, report } = loadModel(o.model, { config: o.config, grad: wantGrads });
  const kt = kindTraits(config);
  const task: ForwardTask = o.task ?? (kt.task === 'finetune' ? 'ft' : 'pretrain');
  const inputs = readInputs(o.inputs);
  const batch = { audio: inputs.get('audio')?.tensor, image: inputs.get('image')?.tensor };
  const tp = new Tape({ grad: wantGrads, bf16: o.bf16 ?? false });
  const out = new Map<string, OutTensor>();
  let loss: Tensor | undefined;

  if (task === 'pretrain') {
    if (!(model instanceof CAVMAE))
      throw new UserError(
        `${o.model}: --task pretrain needs a pretraining (CAVMAE) checkpoint; this one is a fine-tuning model`,
      );
    if (o.mode !== undefined)
      throw new UserError('--mode applies to --task ft (and feat of a fine-tuning model)');
    if (o.maskMode !== undefined && !MASK_MODES.includes(o.maskMode as MaskMode)) {
      throw new UserError(`--mask-mode must be one of ${MASK_MODES.join(', ')}, got "${o.maskMode}"`);
    }
    const r = model.forward(tp, batch, {
      maskRatioA: o.maskRatio,
      maskRatioV: o.maskRatio,
      maskMode: o.maskMode as MaskMode | undefined,
      contrastLossWeight: o.contrastWeight,
      noiseA: inputs.get('noise_a')?.tensor.data,
      noiseV: inputs.get('noise_v')?.tensor.data,
      idsShuffleA: ints(inputs.get('ids_shuffle_a')),
      idsShuffleV: ints(inputs.get('ids_shuffle_v')),
      rng: new Rng(o.seed ?? 0),
    });
    out.set('loss', scalar(r.loss.item()));
    out.set('loss_mae', scalar(r.lossMae.item()));
    out.set('loss_mae_a', scalar(r.lossMaeA.item()));
    out.set('loss_mae_v', scalar(r.lossMaeV.item()));
    out.set('loss_c', scalar(r.lossC.item()));
    out.set('c_acc', scalar(r.cAcc));
    if (r.maskA) out.set('mask_a', { shape: [r.maskA.B, r.maskA.L], data: r.maskA.mask });
    if (r.maskV) out.set('mask_v', { shape: [r.maskV.B, r.maskV.L], data: r.maskV.mask });
    if (r.predA) out.set('pred_a', copy(r.predA));
    if (r.predV) out.set('pred_v', copy(r.predV));
    if (kt.sync) {
      // The Sync reference's extra outputs: the contrastive inputs and the two NCE terms.
      if (r.clsA) out.set('cls_a', copy(r.clsA));
      if (r.clsV) out.set('cls_v', copy(r.clsV));
      if (r.lossCGlobal) out.set('loss_c_global', scalar(r.lossCGlobal.item()));
      if (r.lossCLocal) out.set('loss_c_local', scalar(r.lossCLocal.item()));
    }
    loss = r.loss;
  } else if (task === 'feat') {
    let f;
    if (kt.head === 'aggregator')
      throw new UserError(
        `${o.model}: --task feat needs a pretraining model; a Sync fine-tuning model gives --task ft`,
      );
    if (model instanceof CAVMAEFT) {
      const mode = o.mode ?? (batch.image ? 'av' : 'a');
      if (mode !== 'av' && mode !== 'a')
        throw new UserError(`--task feat of a fine-tuning model takes --mode av or a, got "${mode}"`);
      f = model.forwardFeat(tp, batch, mode);
    } else {
      if (o.mode !== undefined)
        throw new UserError(
          `--mode does not apply to --task feat of a ${kt.sync ? 'Sync' : 'pretraining'} model`,
        );
      f = model.forwardFeat(tp, batch);
      if (f.clsA) out.set('cls_a', copy(f.clsA));
      if (f.clsV) out.set('cls_v', copy(f.clsV));
    }
    if (f.audioTokens) out.set('audio_tokens', copy(f.audioTokens));
    if (f.videoTokens) out.set('video_tokens', copy(f.videoTokens));
    if (wantGrads)
      throw new UserError(
        '--grads needs a loss: use --task pretrain, or --task ft with "labels" in the inputs',
      );
  } else if (task === 'ft') {
    if (!(model instanceof CAVMAEFT)) {
      throw new UserError(
        `${o.model}: --task ft needs a fine-tuning (CAVMAEFT) checkpoint; convert a pretrained one by fine-tuning, or use --task pretrain / feat`,
      );
    }
    let mode = model.mode;
    if (kt.head === 'aggregator') {
      if (o.mode !== undefined && o.mode !== model.mode)
        throw new UserError(
          `${o.model}: this Sync fine-tuning model reads "${model.mode}" (its config's "mode"); --mode ${o.mode} does not apply`,
        );
    } else {
      mode = (o.mode ?? 'multimodal') as FtMode;
      if (!FT_MODES.includes(mode))
        throw new UserError(`--mode must be one of ${FT_MODES.join(', ')}, got "${o.mode}"`);
    }
    const logits = model.forward(tp, batch, mode);
    out.set('logits', copy(logits));
    loss = ftLoss(o, inputs, tp, logits, out, wantGrads);
  } else {
    throw new UserError(`--task must be pretrain, feat or ft, got "${task as string}"`);
  }

  if (wantGrads && loss) {
    const names = gradNames(model, o.grads!);
    tp.backward(loss);
    for (const n of names) {
      const p = model.arena.get(n);
      out.set(`grad.${n}`, { shape: [...p.shape], data: Float32Array.from(p.grad!) });
    }
  }
  return { outputs: out, config, task, unexpected: report.unexpected };
}

/** The fine-tuning loss of the logits against "labels" [B, K] (when given). */
function ftLoss(
  o: ForwardRunOptions,
  inputs: Map<string, InputTensor>,
  tp: Tape,
  logits: Tensor,
  out: Map<string, OutTensor>,
  wantGrads: boolean,
): Tensor | undefined {
  const labels = inputs.get('labels');
  if (!labels) {
    if (wantGrads)
      throw fileError(
        o.inputs,
        '--grads with --task ft needs a "labels" tensor [B, label_dim] in the inputs',
      );
    return undefined;
  }
  if (labels.tensor.size !== logits.size)
    throw fileError(o.inputs, `"labels" has shape [${labels.tensor.shape}], expected [${logits.shape}]`);
  const loss =
    o.loss === 'ce'
      ? ops.crossEntropy(tp, logits, labels.tensor.data)
      : ops.bceWithLogits(tp, logits, labels.tensor.data);
  out.set('loss', scalar(loss.item()));
  return loss;
}

function gradNames(model: AnyModel, requested: string[]): string[] {
  if (requested.length === 1 && requested[0] === 'all')
    return model.arena.params.filter((p) => p.requiresGrad).map((p) => p.name);
  const unknown = requested.filter((n) => !model.arena.has(n));
  if (unknown.length)
    throw new UserError(
      `--grads: no parameter named ${unknown.join(', ')} (e.g. ${model.arena.names().slice(0, 3).join(', ')}; or "all")`,
    );
  const frozen = requested.filter((n) => !model.arena.get(n).requiresGrad);
  if (frozen.length) throw new UserError(`--grads: ${frozen.join(', ')} is fixed (requires no gradient)`);
  return requested;
}

interface InputTensor {
  tensor: Tensor;
}

const KNOWN_INPUTS = new Set([
  'audio',
  'image',
  'noise_a',
  'noise_v',
  'ids_shuffle_a',
  'ids_shuffle_v',
  'labels',
]);

function readInputs(path: string): Map<string, InputTensor> {
  const { tensors } = readSafetensors(path);
  const out = new Map<string, InputTensor>();
  for (const [name, t] of tensors) {
    if (!KNOWN_INPUTS.has(name))
      throw fileError(path, `unknown input tensor "${name}" (known: ${[...KNOWN_INPUTS].join(', ')})`);
    const data = toFloat32(t.dtype, t.data);
    for (let i = 0; i < data.length; i++)
      if (!Number.isFinite(data[i]))
        throw fileError(path, `input "${name}" contains a non-finite value at ${i}`);
    out.set(name, { tensor: new Tensor(t.shape, data) });
  }
  if (!out.has('audio') && !out.has('image'))
    throw fileError(path, 'needs an "audio" and/or an "image" tensor');
  return out;
}

function ints(t: InputTensor | undefined): Int32Array | undefined {
  if (!t) return undefined;
  return Int32Array.from(t.tensor.data);
}
