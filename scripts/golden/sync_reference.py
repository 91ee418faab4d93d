"""CAV-MAE Sync (Araujo et al., CVPR 2025) in PyTorch: the reference the TypeScript port is checked against.

Written from the reference notes (docs/reference.md#model, #sync) and a
reading of the released `src/models/cav_mae_sync.py` (edsonroteia/cav-mae-sync, commit 21d15c2);
no code is copied from it. Every behavioural decision is argued in docs/sync-reference.md.

Contract:
- Parameter names, shapes and state-dict order are the released ones (including the misspelled
  `constrative_head_*`), so a released checkpoint loads with strict=True.
- Constructor arguments are the released names and defaults. One extra, keyword-only:
  `shared_depth` (number of shared "unified" layers; None = the released 12 - modality_specific_depth),
  the same knob the TypeScript config has, so that golden configs can be shallow.
- Two released bugs are not copied: unpatchify uses the real image grid (the release hard-codes
  14 x 14, so recon_v breaks for img_size != 224), and the CLS outputs are taken with [:, 0]
  instead of `.squeeze()` (which turns [1, D] into [D] and breaks batch size 1).
- Masking can be replayed: forward / forward_encoder accept `noise_a`, `noise_v` ([B, La], [B, Lv]);
  without them noise is drawn with torch.rand exactly like the release.
- The building blocks (Attention, Mlp, PatchEmbed, sin-cos tables) come from the PyTorch peer
  (../shared/peer/torch_cavmae.py, bit-exact with the official CAV-MAE); Block is re-declared
  here only to register its sub-modules in the released order (state-dict key order).
"""
import os
import random
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get('CAVMAE_SHARED', os.path.join(os.path.dirname(ROOT), 'shared'))
sys.path.insert(0, os.path.join(SHARED, 'peer'))
from torch_cavmae import Attention, Mlp, PatchEmbed, sincos_2d  # noqa: E402

MEL_BINS = 128
PATCH = 16
FREQ_ROWS = MEL_BINS // PATCH  # 8 frequency rows of audio patches
TEMPERATURE = 0.05  # fixed InfoNCE temperature (docs/reference.md#contrastive-loss)


class Block(nn.Module):
    """Three-LayerNorm pre-norm transformer block (docs/reference.md#building-blocks), sub-modules in the released order."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.norm1_a = norm_layer(dim)
        self.norm1_v = norm_layer(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = norm_layer(dim)
        self.norm2_a = norm_layer(dim)
        self.norm2_v = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, modality=None):
        s = '' if modality is None else '_' + modality
        x = x + self.attn(getattr(self, 'norm1' + s)(x))
        return x + self.mlp(getattr(self, 'norm2' + s)(x))


class CAVMAESync(nn.Module):
    def __init__(self, img_size=224, audio_length=1024, patch_size=16, in_chans=3,
                 embed_dim=768, modality_specific_depth=11, num_heads=12,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, num_register_tokens=4,
                 mlp_ratio=4., norm_layer=nn.LayerNorm, norm_pix_loss=False, tr_pos=False,
                 cls_token=False, global_local_losses=False, total_frame=16, contrastive_heads=True,
                 multi_ratio_masking=False, keep_register_tokens=False, *, shared_depth=None):
        super().__init__()
        if patch_size != PATCH or in_chans != 3:
            raise ValueError('patch_size must be 16 and in_chans 3 (the released patch embedding)')
        if img_size % PATCH or audio_length % PATCH:
            raise ValueError(f'img_size ({img_size}) and audio_length ({audio_length}) must be multiples of 16')
        self.img_size, self.audio_length = img_size, audio_length
        self.t_cols = audio_length // PATCH          # audio grid: 8 frequency rows x t_cols time columns
        self.v_grid = img_size // PATCH              # visual grid: v_grid x v_grid
        self.num_patches_a = FREQ_ROWS * self.t_cols
        self.num_patches_v = self.v_grid ** 2
        self.num_register_tokens = num_register_tokens
        self.cls_token = cls_token
        self.global_local_losses = global_local_losses  # no effect without cls_token (as released)
        self.total_frame = total_frame
        self.contrastive_heads = contrastive_heads
        self.multi_ratio_masking = multi_ratio_masking
        self.keep_register_tokens = keep_register_tokens
        self.norm_pix_loss = norm_pix_loss
        shared_depth = 12 - modality_specific_depth if shared_depth is None else shared_depth

        # Registration order below = the released state-dict order (own parameters first, then
        # sub-modules, each in the order the release creates them).
        self.patch_embed_a = PatchEmbed(1, embed_dim)
        self.patch_embed_v = PatchEmbed(in_chans, embed_dim)
        self.modality_a = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.modality_v = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed_a = nn.Parameter(torch.zeros(1, self.num_patches_a, embed_dim), requires_grad=tr_pos)
        self.pos_embed_v = nn.Parameter(torch.zeros(1, self.num_patches_v, embed_dim), requires_grad=tr_pos)
        if num_register_tokens > 0:
            # rows 0..R-1 audio, R..2R-1 visual; N(0, 1) and never re-initialised (docs/reference.md#sync-architecture)
            self.register_tokens = nn.Parameter(torch.randn(num_register_tokens * 2, embed_dim))
        self.blocks_a = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, norm_layer) for _ in range(modality_specific_depth)])
        self.blocks_v = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, norm_layer) for _ in range(modality_specific_depth)])
        self.blocks_u = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, norm_layer) for _ in range(shared_depth)])
        if contrastive_heads:
            self.constrative_head_audio = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, norm_layer) for _ in range(2)])
            self.constrative_head_visual = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, norm_layer) for _ in range(2)])
        self.norm_a, self.norm_v, self.norm = norm_layer(embed_dim), norm_layer(embed_dim), norm_layer(embed_dim)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_modality_a = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_modality_v = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed_a = nn.Parameter(torch.zeros(1, self.num_patches_a, decoder_embed_dim), requires_grad=tr_pos)
        self.decoder_pos_embed_v = nn.Parameter(torch.zeros(1, self.num_patches_v, decoder_embed_dim), requires_grad=tr_pos)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, norm_layer) for _ in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred_a = nn.Linear(decoder_embed_dim, PATCH * PATCH * 1)
        self.decoder_pred_v = nn.Linear(decoder_embed_dim, PATCH * PATCH * in_chans)

        if cls_token:
            self.cls_token_a = nn.Parameter(torch.randn(1, 1, embed_dim))
            self.cls_token_v = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.initialize_weights()

    def initialize_weights(self):
        with torch.no_grad():
            self.pos_embed_a.copy_(sincos_2d(self.pos_embed_a.shape[-1], FREQ_ROWS, self.t_cols))
            self.pos_embed_v.copy_(sincos_2d(self.pos_embed_v.shape[-1], self.v_grid, self.v_grid))
            self.decoder_pos_embed_a.copy_(sincos_2d(self.decoder_pos_embed_a.shape[-1], FREQ_ROWS, self.t_cols))
            self.decoder_pos_embed_v.copy_(sincos_2d(self.decoder_pos_embed_v.shape[-1], self.v_grid, self.v_grid))
        for pe in (self.patch_embed_a, self.patch_embed_v):
            w = pe.proj.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # like a Linear over the [D, C*16*16] view
        if self.cls_token:
            nn.init.normal_(self.cls_token_a, std=0.02)
            nn.init.normal_(self.cls_token_v, std=0.02)
        for p in (self.modality_a, self.modality_v, self.decoder_modality_a, self.decoder_modality_v, self.mask_token):
            nn.init.normal_(p, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ---- patches -------------------------------------------------------------------------

    @staticmethod
    def patchify(imgs, c, h, w, p=PATCH):
        x = imgs.reshape(imgs.shape[0], c, h, p, w, p)         # [N, c, h, p, w, q]
        x = torch.einsum('nchpwq->nhwpqc', x)
        return x.reshape(imgs.shape[0], h * w, p * p * c)       # [N, h*w, p*q*c], channel innermost

    @staticmethod
    def unpatchify(x, c, h, w, p=PATCH):
        assert h * w == x.shape[1], f'unpatchify: {x.shape[1]} tokens for a {h}x{w} grid'
        x = x.reshape(x.shape[0], h, w, p, p, c)                # [N, h, w, p, q, c]
        x = torch.einsum('nhwpqc->nchpwq', x)
        return x.reshape(x.shape[0], c, h * p, w * p)           # [N, c, h*p, w*p]

    def audio_to_image(self, audio):
        return audio.unsqueeze(1).transpose(2, 3)              # [B, L, 128] -> [B, 1, 128, L]

    def embed(self, a, v):
        a = self.patch_embed_a(self.audio_to_image(a))          # [B, 8*L/16, D], token f*t_cols + t
        a = a + self.pos_embed_a + self.modality_a
        v = self.patch_embed_v(v)                               # [B, (H/16)^2, D]
        v = v + self.pos_embed_v + self.modality_v
        return a, v

    # ---- masking -------------------------------------------------------------------------

    def random_masking(self, x, mask_ratio, noise=None, mode='unstructured'):
        """Per-sample shuffle by argsort of noise (small = keep). Returns visible tokens in
        shuffled order, the 0/1 mask (1 = removed) and ids_restore. `mode` time/freq/tf is the
        audio-only structured ablation on the real 8 x t_cols grid."""
        if mode not in ('unstructured', 'time', 'freq', 'tf'):
            raise ValueError(f'unknown mask_mode {mode!r}')
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        noise = torch.rand(N, L, device=x.device) if noise is None else noise.to(x.device).clone()
        if noise.shape != (N, L):
            raise ValueError(f'masking noise has shape {tuple(noise.shape)}, expected {(N, L)}')
        if mode != 'unstructured':
            f, t = FREQ_ROWS, L // FREQ_ROWS
            grid = noise.view(N, f, t)                          # token index f*t + t'
            for i in range(N):
                if mode in ('time', 'tf'):
                    for k in random.sample(range(t), int(t * mask_ratio * (0.7 if mode == 'tf' else 1))):
                        grid[i, :, k] = 1.1
                if mode in ('freq', 'tf'):
                    for k in random.sample(range(f), int(f * mask_ratio * (0.7 if mode == 'tf' else 1))):
                        grid[i, k, :] = 1.1
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
        mask = torch.ones(N, L, device=x.device, dtype=x.dtype)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return x_masked, mask, ids_restore

    # ---- encoder -------------------------------------------------------------------------

    def add_special_tokens(self, a, v):
        """[CLS] + patches + [registers] per modality (docs/reference.md#sync-architecture)."""
        B = a.shape[0]
        if self.cls_token:
            a = torch.cat([self.cls_token_a.expand(B, -1, -1), a], 1)
            v = torch.cat([self.cls_token_v.expand(B, -1, -1), v], 1)
        R = self.num_register_tokens
        if R > 0:
            a = torch.cat([a, self.register_tokens[:R].unsqueeze(0).expand(B, -1, -1)], 1)
            v = torch.cat([v, self.register_tokens[R:].unsqueeze(0).expand(B, -1, -1)], 1)
        return a, v

    def drop_registers(self, x):
        R = self.num_register_tokens
        return x[:, :-R] if R > 0 else x

    def contrastive_streams(self, a, v):
        """Shared layers with the modality LayerNorms, then the optional contrastive heads.
        As in the release, each shared block is applied to the stream's INPUT (only the last
        one counts, docs/reference.md#shared-layer-loop); with one shared layer this is an ordinary pass."""
        ca, cv = a, v
        for blk in self.blocks_u:
            ca = blk(a, 'a')
        for blk in self.blocks_u:
            cv = blk(v, 'v')
        if self.contrastive_heads:
            for blk in self.constrative_head_audio:
                ca = blk(ca)
            for blk in self.constrative_head_visual:
                cv = blk(cv)
        return ca, cv

    def split_outputs(self, ca, cv):
        """Final modality LayerNorms; with CLS, token 0 is the global token and the rest local."""
        if self.cls_token:
            return self.norm_a(ca[:, 1:]), self.norm_v(cv[:, 1:]), self.norm_a(ca[:, 0]), self.norm_v(cv[:, 0])
        return self.norm_a(ca), self.norm_v(cv), None, None

    def forward_encoder(self, a, v, mask_ratio_a, mask_ratio_v, mask_mode='unstructured', noise_a=None, noise_v=None):
        a, v = self.embed(a, v)
        a, mask_a, ids_restore_a = self.random_masking(a, mask_ratio_a, noise_a, mask_mode)
        v, mask_v, ids_restore_v = self.random_masking(v, mask_ratio_v, noise_v)
        n_vis_a, n_vis_v = a.shape[1], v.shape[1]
        a, v = self.add_special_tokens(a, v)                   # [B, cls + n_vis + R, D]
        for blk in self.blocks_a:
            a = blk(a)
        for blk in self.blocks_v:
            v = blk(v)
        if not self.keep_register_tokens:
            a, v = self.drop_registers(a), self.drop_registers(v)
        c = 1 if self.cls_token else 0
        x = torch.cat([a[:, c:], v[:, c:]], 1)                  # joint stream: no CLS
        for blk in self.blocks_u:
            x = blk(x)
        x = self.norm(x)
        ca, cv = self.contrastive_streams(a, v)
        if self.keep_register_tokens and self.num_register_tokens > 0:
            R = self.num_register_tokens
            ca, cv = ca[:, :-R], cv[:, :-R]
            # joint layout [audio patches, audio registers, visual patches, visual registers]
            x = torch.cat([x[:, :n_vis_a], x[:, n_vis_a + R:n_vis_a + R + n_vis_v]], 1)
        local_a, local_v, cls_a, cls_v = self.split_outputs(ca, cv)
        return dict(latent=x, mask_a=mask_a, ids_restore_a=ids_restore_a, mask_v=mask_v,
                    ids_restore_v=ids_restore_v, latent_c_a=local_a, latent_c_v=local_v, cls_a=cls_a, cls_v=cls_v)

    # ---- decoder and losses --------------------------------------------------------------

    def forward_decoder(self, x, mask_a, ids_restore_a, mask_v, ids_restore_v):
        x = self.decoder_embed(x)                                # [B, n_vis_a + n_vis_v, Dd]
        B, _, Dd = x.shape
        n_vis_a = self.num_patches_a - int(mask_a[0].sum())
        n_vis_v = self.num_patches_v - int(mask_v[0].sum())
        xa = torch.cat([x[:, :n_vis_a], self.mask_token.expand(B, self.num_patches_a - n_vis_a, -1)], 1)
        xa = torch.gather(xa, 1, ids_restore_a.unsqueeze(-1).expand(-1, -1, Dd))   # [B, Na, Dd]
        xv = torch.cat([x[:, n_vis_a:], self.mask_token.expand(B, self.num_patches_v - n_vis_v, -1)], 1)
        xv = torch.gather(xv, 1, ids_restore_v.unsqueeze(-1).expand(-1, -1, Dd))   # [B, Nv, Dd]
        x = torch.cat([xa + self.decoder_pos_embed_a + self.decoder_modality_a,
                       xv + self.decoder_pos_embed_v + self.decoder_modality_v], 1)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return self.decoder_pred_a(x[:, :self.num_patches_a]), self.decoder_pred_v(x[:, self.num_patches_a:])

    def forward_mae_loss(self, inp, pred, mask, modality):
        if modality == 'a':
            target = self.patchify(self.audio_to_image(inp), 1, FREQ_ROWS, self.t_cols)
        else:
            target = self.patchify(inp, 3, self.v_grid, self.v_grid)
        if self.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)  # unbiased var
            target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(-1)                  # [B, N] per patch
        return (loss * mask).sum() / mask.sum()

    @staticmethod
    def forward_contrastive(audio_rep, video_rep, bidirect_contrast=False):
        """InfoNCE at tau 0.05, visual->audio direction (softmax over audios per video column)."""
        a = F.normalize(audio_rep, dim=-1)
        v = F.normalize(video_rep, dim=-1)
        logits = a @ v.t() / TEMPERATURE                      # [B, B]
        target = torch.arange(logits.shape[0], device=logits.device)

        def one(t):
            return -torch.mean(torch.diag(F.log_softmax(t, dim=0))), (t.argmax(0) == target).float().mean()
        nce, acc = one(logits)
        if bidirect_contrast:
            nce2, acc2 = one(logits.t())
            nce, acc = (nce + nce2) / 2, (acc + acc2) / 2
        return nce, acc, logits

    def draw_mask_ratios(self):
        r = torch.rand(2)
        return 0.6 + 0.3 * float(r[0]), 0.6 + 0.3 * float(r[1])

    def forward_outputs(self, audio, imgs, mask_ratio_a=0.75, mask_ratio_v=0.75, mae_loss_weight=1.,
                        contrast_loss_weight=0.01, mask_mode='unstructured', mode='train', noise_a=None, noise_v=None):
        """Everything one pretraining step computes, by name (forward() packs the released tuple)."""
        if mode != 'train':
            raise NotImplementedError("only mode='train' (the release's eval-mode NCE is never used in training)")
        if self.multi_ratio_masking:
            mask_ratio_a, mask_ratio_v = self.draw_mask_ratios()
        enc = self.forward_encoder(audio, imgs, mask_ratio_a, mask_ratio_v, mask_mode, noise_a, noise_v)
        out = dict(enc, mask_ratio_a=mask_ratio_a, mask_ratio_v=mask_ratio_v)
        zero = audio.new_zeros(())
        if mae_loss_weight != 0:
            pred_a, pred_v = self.forward_decoder(enc['latent'], enc['mask_a'], enc['ids_restore_a'], enc['mask_v'], enc['ids_restore_v'])
            loss_mae_a = self.forward_mae_loss(audio, pred_a, enc['mask_a'], 'a')
            loss_mae_v = self.forward_mae_loss(imgs, pred_v, enc['mask_v'], 'v')
            loss_mae = mae_loss_weight * (loss_mae_a + loss_mae_v)
            recon_a = torch.einsum('nchw->nhwc', self.unpatchify(pred_a, 1, FREQ_ROWS, self.t_cols))   # [B, 128, L, 1]
            recon_v = torch.einsum('nchw->nhwc', self.unpatchify(pred_v, 3, self.v_grid, self.v_grid))  # [B, H, W, 3]
        else:
            pred_a = pred_v = recon_a = recon_v = None
            loss_mae_a = loss_mae_v = loss_mae = zero
        mean_a, mean_v = enc['latent_c_a'].mean(1), enc['latent_c_v'].mean(1)   # [B, D] local means
        if self.cls_token:
            rep_a, rep_v = enc['cls_a'], enc['cls_v']
        else:
            rep_a, rep_v = mean_a, mean_v
        loss_c_global = loss_c_local = None
        logits = None
        if contrast_loss_weight != 0:
            nce, c_acc, logits = self.forward_contrastive(rep_a, rep_v)
            if self.cls_token and self.global_local_losses:
                nce_local, acc_local, _ = self.forward_contrastive(mean_a, mean_v)
                loss_c_global, loss_c_local = contrast_loss_weight * nce, contrast_loss_weight * nce_local
                nce, c_acc = (nce + nce_local) / 2, (c_acc + acc_local) / 2
            loss_c = contrast_loss_weight * nce
        else:
            loss_c, c_acc = zero, zero
        out.update(loss=loss_mae + loss_c, loss_mae=loss_mae, loss_mae_a=loss_mae_a, loss_mae_v=loss_mae_v,
                   loss_c=loss_c, c_acc=c_acc, pred_a=pred_a, pred_v=pred_v, recon_a=recon_a, recon_v=recon_v,
                   rep_a=rep_a, rep_v=rep_v, mean_a=mean_a, mean_v=mean_v, logits=logits,
                   loss_c_global=loss_c_global, loss_c_local=loss_c_local)
        return out

    def forward(self, audio, imgs, mask_ratio_a=0.75, mask_ratio_v=0.75, mae_loss_weight=1., contrast_loss_weight=0.01,
                mask_mode='unstructured', mode='train', noise_a=None, noise_v=None):
        """The released return tuple; cls_a / cls_v are the contrastive representations
        (global tokens with cls_token, else mean-pooled tokens)."""
        o = self.forward_outputs(audio, imgs, mask_ratio_a, mask_ratio_v, mae_loss_weight, contrast_loss_weight,
                                 mask_mode, mode, noise_a, noise_v)
        head = (o['loss'], o['loss_mae'], o['loss_mae_a'], o['loss_mae_v'], o['loss_c'], o['mask_a'], o['mask_v'],
                o['c_acc'], o['recon_a'], o['recon_v'])
        if self.cls_token and self.global_local_losses:
            return head + (o['mean_a'], o['mean_v'], o['cls_a'], o['cls_v'], o['loss_c_global'], o['loss_c_local'])
        return head + (o['rep_a'], o['rep_v'])

    def forward_inpaint(self, audio, imgs, mask_ratio_a=0.75, mask_ratio_v=0.75, mask_mode='unstructured', noise_a=None, noise_v=None):
        enc = self.forward_encoder(audio, imgs, mask_ratio_a, mask_ratio_v, mask_mode, noise_a, noise_v)
        pred_a, pred_v = self.forward_decoder(enc['latent'], enc['mask_a'], enc['ids_restore_a'], enc['mask_v'], enc['ids_restore_v'])
        return (pred_a, pred_v, enc['mask_a'], enc['mask_v'],
                self.forward_mae_loss(audio, pred_a, enc['mask_a'], 'a'), self.forward_mae_loss(imgs, pred_v, enc['mask_v'], 'v'))

    def forward_feat(self, a, v):
        """No masking. Returns patch tokens only (CLS and registers removed) after the modality
        LayerNorms: (audio [B, Na, D], video [B, Nv, D]) plus (cls_a [B, D], cls_v [B, D]) with CLS."""
        a, v = self.embed(a, v)
        a, v = self.add_special_tokens(a, v)
        for blk in self.blocks_a:
            a = blk(a)
        for blk in self.blocks_v:
            v = blk(v)
        if not self.keep_register_tokens:
            a, v = self.drop_registers(a), self.drop_registers(v)
        ca, cv = self.contrastive_streams(a, v)
        if self.keep_register_tokens:
            ca, cv = self.drop_registers(ca), self.drop_registers(cv)
        local_a, local_v, cls_a, cls_v = self.split_outputs(ca, cv)
        if self.cls_token:
            return local_a, local_v, cls_a, cls_v
        return local_a, local_v


# ---- data-side rules (docs/reference.md#sync-segments) -------------------------------------

def segment_bounds(frame_index, target_length, num_frames=16, spectrogram_length=1024):
    """Rows [start, end) of the audio segment paired with frame `frame_index`."""
    centre = int(round(frame_index * spectrogram_length / num_frames))
    start = max(0, centre - target_length // 2)
    end = start + target_length
    if end > spectrogram_length:
        end = spectrogram_length
        start = max(0, end - target_length)
    return start, end


def frame_indices(n_frames, count=16):
    """Indices of the frames extracted from a video of n_frames frames."""
    import numpy as np
    return [int(i) for i in np.linspace(0, n_frames - 1, count).astype(int)]


def clip_similarity(a, b, strategy):
    """Clip-to-clip similarity the straightforward way (as the released retrieval loop):
    a, b: [N, F, D] per-pair features (query clips, candidate clips). Returns [N, N] float64."""
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    N, Fr = a.shape[0], a.shape[1]

    def cos(x, y):
        return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    sim = np.empty((N, b.shape[0]))
    for i in range(N):
        for j in range(b.shape[0]):
            if strategy in ('mean', 'max'):
                s = [cos(a[i, k], b[j, l]) for k in range(Fr) for l in range(Fr)]
            elif strategy in ('diagonal_mean', 'diagonal_max'):
                s = [cos(a[i, k], b[j, k]) for k in range(Fr)]
            else:
                raise ValueError(f'unknown strategy {strategy!r}')
            sim[i, j] = np.max(s) if strategy.endswith('max') else np.mean(s)
    return sim
