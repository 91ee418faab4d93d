#!/usr/bin/python3
"""Golden data for src/eval/metrics.ts and src/eval/retrieval.ts, from Debian's sklearn/scipy/numpy.

stats.json: per-class AP (sklearn average_precision_score), AUC (roc_auc_score, -1 when sklearn
raises because a class lacks positives or negatives, as the reference stats.py stores it),
mAP / mAUC (np.mean over classes, -1 entries included as in the reference), d' =
scipy.stats.norm.ppf(mAUC) * sqrt(2), acc = accuracy_score(argmax(target), argmax(output)),
on recorded float32 predictions with ties, a class without positives, a class without
negatives and multi-label targets. Also norm.ppf on chosen probabilities.

retrieval.json: R@1/5/10 and median rank + 1 as the reference compute_metrics (retrieval.py)
defines them, on similarity matrices without ties (where a strict-inequality rank agrees with
it) and with ties (where it does not: both results recorded), plus CAV-MAE Sync clip-level
similarities (diagonal_mean, diagonal_max, mean, max) over per-clip [16, D] features.

Run: /usr/bin/python3 scripts/golden/metrics_golden.py
"""
import json
import os
import sys
import warnings

import numpy as np
from scipy import stats as sstats
from sklearn import metrics
import sklearn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'fixtures', 'metrics')


def f32s(x):
    """float32 values as their shortest float32 decimal (exact after Math.fround)."""
    return [float(str(t)) for t in np.asarray(x, dtype=np.float32).reshape(-1)]


def per_class_stats(output, target):
    n_cls = target.shape[1]
    ap, auc = [], []
    for k in range(n_cls):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            ap.append(float(metrics.average_precision_score(target[:, k], output[:, k], average=None)))
            try:
                auc.append(float(metrics.roc_auc_score(target[:, k], output[:, k], average=None)))
            except ValueError:
                auc.append(-1.0)
    acc = float(metrics.accuracy_score(np.argmax(target, 1), np.argmax(output, 1)))
    m_ap = float(np.mean(ap))
    m_auc = float(np.mean(auc))
    d_prime = float(sstats.norm().ppf(m_auc) * np.sqrt(2.0))
    return {'AP': ap, 'AUC': auc, 'mAP': m_ap, 'mAUC': m_auc, 'dprime': None if np.isnan(d_prime) else d_prime, 'acc': acc}


def case(name, output, target, note):
    output = output.astype(np.float32)
    target = target.astype(np.float32)
    r = per_class_stats(output, target)
    return {'name': name, 'note': note, 'N': int(output.shape[0]), 'K': int(output.shape[1]),
            'output': f32s(output), 'target': f32s(target),
            'expected': r}


def stats_cases(rng):
    cases = []
    # Multi-label, mixed score styles per class, with ties, a class with no positives and one
    # with no negatives.
    N, K = 240, 10
    target = (rng.random((N, K)) < rng.uniform(0.05, 0.4, size=K)).astype(np.float32)
    target[:, 3] = 0  # no positives: AUC undefined (-1), AP = 0 per sklearn
    target[:, 6] = 1  # no negatives: AUC undefined (-1), AP = 1
    target[:5, 8] = 0
    target[5:7, 8] = 1  # only 2 positives
    target[7:, 8] = 0
    logits = rng.normal(size=(N, K)) + 1.5 * target
    out = logits.copy()
    out[:, 0] = np.round(out[:, 0] * 2) / 2  # heavy ties (few distinct values)
    out[:, 1] = np.round(out[:, 1], 1)
    out[:, 2] = 0.25  # all tied: AP = prevalence, AUC = 0.5
    out[:, 4] = 1 / (1 + np.exp(-out[:, 4]))  # probabilities
    out[::7, 5] = out[0, 5]  # one large tie group mixing labels
    cases.append(case('multilabel_ties', out, target, 'multi-label; ties; class 3 no positives; class 6 no negatives; class 2 constant scores'))

    # Single-label (one-hot) with softmax probabilities; some rows have tied maxima, so argmax
    # must pick the first maximum; a row of the target has its label in the last column.
    N, K = 150, 7
    labels = rng.integers(0, K, size=N)
    target = np.eye(K, dtype=np.float32)[labels]
    z = rng.normal(size=(N, K)) + 2.0 * target
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    p = p.astype(np.float32)
    p[:10, :] = np.float32(1.0 / K)  # all tied: argmax = 0
    p[10:20, 2] = p[10:20, 5] = p[10:20].max(1)  # tie between columns 2 and 5 -> 2
    cases.append(case('singlelabel_softmax', p, target, 'one-hot targets, softmax outputs, rows with tied maxima'))

    # Larger, with scores quantised to 2 decimals (many ties spread over many thresholds).
    N, K = 3000, 4
    target = (rng.random((N, K)) < np.array([0.01, 0.1, 0.5, 0.0004])).astype(np.float32)
    target[17, 3] = 1
    out = np.round(rng.normal(size=(N, K)) + target, 2)
    cases.append(case('quantised_3000', out, target, 'N=3000, scores rounded to 0.01; class 3 has one or two positives'))

    # A batch whose mean AUC is negative (most classes undefined) makes d' NaN in the reference.
    N, K = 20, 4
    target = np.zeros((N, K), dtype=np.float32)
    target[:3, 0] = 1
    out = rng.normal(size=(N, K))
    cases.append(case('mostly_undefined', out, target, 'three classes without positives: mAUC < 0, d prime NaN (null)'))
    return cases


def ppf_cases():
    ps = [1e-300, 1e-100, 1e-20, 1e-10, 1e-5, 0.001, 0.02425, 0.0243, 0.1, 0.25, 0.4, 0.5, 0.5 + 1e-12, 0.6,
          0.8, 0.9, 0.95, 0.97575, 0.98, 0.99, 0.999, 0.9999, 1 - 1e-9, 1 - 1e-12, 1 - 2 ** -52]
    return [{'p': p, 'ppf': float(sstats.norm.ppf(p))} for p in ps]


# ---------------------------------------------------------------- retrieval

def reference_rank_metrics(x):
    """The reference compute_metrics semantics: positions (0-based, in the row sorted by
    decreasing similarity) of EVERY entry equal to the diagonal one; R@k = share of those
    positions < k over all of them; MR = median position + 1."""
    sorted_neg = np.sort(-x, axis=1)
    hits = np.nonzero(sorted_neg == -np.diag(x)[:, None])[1]
    return {'R1': float(np.mean(hits == 0)), 'R5': float(np.mean(hits < 5)), 'R10': float(np.mean(hits < 10)),
            'MR': float(np.median(hits) + 1), 'hits': int(hits.size)}


def strict_rank_metrics(x):
    """Rank = number of candidates with a strictly greater similarity than the diagonal."""
    ranks = (x > np.diag(x)[:, None]).sum(1)
    return {'R1': float(np.mean(ranks < 1)), 'R5': float(np.mean(ranks < 5)), 'R10': float(np.mean(ranks < 10)),
            'MR': float(np.median(ranks) + 1), 'ranks': [int(r) for r in ranks]}


def l2n(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def min_gap(x):
    d = np.diag(x)[:, None]
    g = np.abs(x - d)
    np.fill_diagonal(g, np.inf)
    return float(g.min())


def retrieval_cases(rng):
    out = {}
    # Pooled embeddings: audio = noisy copy of video so retrieval is far from chance.
    N, D = 64, 24
    v = l2n(rng.normal(size=(N, D))).astype(np.float32)
    a = l2n(v + 0.9 * rng.normal(size=(N, D))).astype(np.float32)
    a64, v64 = a.astype(np.float64), v.astype(np.float64)
    sim_av = a64 @ v64.T
    sim_va = v64 @ a64.T
    out['pooled'] = {
        'N': N, 'D': D, 'audio': f32s(a), 'video': f32s(v),
        'audio_to_video': reference_rank_metrics(sim_av), 'video_to_audio': reference_rank_metrics(sim_va),
        'audio_to_video_strict': strict_rank_metrics(sim_av), 'video_to_audio_strict': strict_rank_metrics(sim_va),
        'min_gap_av': min_gap(sim_av), 'min_gap_va': min_gap(sim_va),
    }
    # A similarity matrix with exact ties (values on a grid): the reference counts every tied
    # position as a hit, so R@k are computed over more than N hits; the strict rule gives one
    # rank per query.
    N = 30
    x = np.round(rng.random((N, N)) * 8) / 8
    for i in range(N):
        if i % 3 == 0:
            x[i, i] = x[i].max()  # the diagonal ties with the row maximum
    x[5, :] = 0.5  # a constant row: every position ties
    out['ties'] = {'N': N, 'sim': [float(t) for t in x.reshape(-1)], 'reference': reference_rank_metrics(x), 'strict': strict_rank_metrics(x)}

    # CAV-MAE Sync clip-level similarity: per-clip [F, D] L2-normalised features.
    N, F, D = 40, 16, 12
    vv = rng.normal(size=(N, F, D))
    aa = vv + 1.2 * rng.normal(size=(N, F, D))
    vv = l2n(vv).astype(np.float32)
    aa = l2n(aa).astype(np.float32)
    A, V = aa.astype(np.float64), vv.astype(np.float64)
    pair = np.einsum('ikd,jld->ijkl', A, V)  # [N, N, F, F] cosines
    diag = np.einsum('ikd,jkd->ijk', A, V)  # [N, N, F] time-aligned cosines
    sims = {
        'diagonal_mean': diag.mean(-1), 'diagonal_max': diag.max(-1),
        'mean': pair.mean((-1, -2)), 'max': pair.max((-1, -2)),
    }
    sync = {'N': N, 'F': F, 'D': D, 'audio': f32s(aa), 'video': f32s(vv), 'strategies': {}}
    for name, s in sims.items():
        sync['strategies'][name] = {
            'sim_av': [float(f'{t:.9g}') for t in s.reshape(-1)],
            'audio_to_video': reference_rank_metrics(s), 'video_to_audio': reference_rank_metrics(s.T),
            'audio_to_video_strict': strict_rank_metrics(s), 'video_to_audio_strict': strict_rank_metrics(s.T),
            'min_gap_av': min_gap(s), 'min_gap_va': min_gap(s.T),
        }
    out['sync'] = sync
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    versions = {'sklearn': sklearn.__version__, 'numpy': np.__version__}
    cases = stats_cases(rng)
    with open(os.path.join(OUT, 'stats.json'), 'w') as f:
        json.dump({'versions': versions, 'cases': cases, 'ppf': ppf_cases()}, f, separators=(',', ':'))
    # The same cases as files in the formats `cavmae eval` reads: np.save (.npy, float32 and
    # float64) and np.savetxt csv, as the reference writes predictions_<epoch>.csv / target.csv.
    single = next(c for c in cases if c['name'] == 'singlelabel_softmax')
    out = np.array(single['output'], dtype=np.float32).reshape(single['N'], single['K'])
    tgt = np.array(single['target'], dtype=np.float32).reshape(single['N'], single['K'])
    np.save(os.path.join(OUT, 'singlelabel_pred_f4.npy'), out)
    np.savetxt(os.path.join(OUT, 'singlelabel_target.csv'), tgt, delimiter=',')
    multi = next(c for c in cases if c['name'] == 'multilabel_ties')
    np.save(os.path.join(OUT, 'multilabel_target_f8.npy'), np.array(multi['target'], dtype=np.float64).reshape(multi['N'], multi['K']))
    with open(os.path.join(OUT, 'retrieval.json'), 'w') as f:
        json.dump({'versions': versions, **retrieval_cases(rng)}, f, separators=(',', ':'))
    print('wrote', OUT, file=sys.stderr)


if __name__ == '__main__':
    main()
