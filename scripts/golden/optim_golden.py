#!/usr/bin/python3
"""Golden data for src/train/optim.ts + src/train/schedule.ts, from Debian's PyTorch.

Records a short Adam run with the reference's settings (betas (0.95, 0.999), eps 1e-8, L2 weight
decay) over two parameter groups with different learning rates ("base" and a "mlp" head at
head_lr x), one frozen parameter (requires_grad False, skipped by torch), and a MultiStepLR
stepped once per epoch after the epoch's batches, exactly as traintest_ft.py does. A second file
records AdamW and a strong L2 decay under a constant lr.

Output: test/fixtures/optim/{adam_multistep,adam_decay}.json
  params_init: {name: [...]}, groups: [{name, params: [names], lr_scale, requires_grad}],
  steps: [{epoch, iteration, lrs: {group: lr}, grads: {name: [...]}, params: {name: [...]}}]
Run: /usr/bin/python3 scripts/golden/optim_golden.py
"""
import json
import os
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'fixtures', 'optim')


def f32list(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def record(name, optim_cls, optim_kwargs, base_lr, head_lr, epochs, steps_per_epoch, milestones, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    shapes = {'w1': (3, 4), 'b1': (4,), 'frozen': (5,), 'head_w': (2, 3), 'head_b': (2,)}
    params = {n: torch.nn.Parameter(torch.randn(*s, generator=g)) for n, s in shapes.items()}
    params['frozen'].requires_grad_(False)
    groups = [
        {'name': 'base', 'params': ['w1', 'b1'], 'lr_scale': 1.0, 'requires_grad': True},
        {'name': 'frozen', 'params': ['frozen'], 'lr_scale': 1.0, 'requires_grad': False},
        {'name': 'mlp', 'params': ['head_w', 'head_b'], 'lr_scale': head_lr, 'requires_grad': True},
    ]
    torch_groups = [{'params': [params[n] for n in gr['params']], 'lr': base_lr * gr['lr_scale']} for gr in groups]
    opt = optim_cls(torch_groups, lr=base_lr, **optim_kwargs)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=gamma) if milestones is not None else None
    out = {
        'description': f'{optim_cls.__name__} {optim_kwargs} base_lr {base_lr} head_lr {head_lr}; '
                       f'MultiStepLR milestones {milestones} gamma {gamma} stepped after each epoch',
        'torch_version': torch.__version__,
        'optimizer': {'kind': optim_cls.__name__, **optim_kwargs},
        'base_lr': base_lr, 'head_lr': head_lr,
        'schedule': None if milestones is None else {'milestones': list(milestones), 'gamma': gamma},
        'epochs': epochs, 'steps_per_epoch': steps_per_epoch,
        'shapes': {n: list(s) for n, s in shapes.items()},
        'params_init': {n: f32list(p) for n, p in params.items()},
        'groups': groups,
        'steps': [],
    }
    it = 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            opt.zero_grad()
            grads = {}
            for n, p in params.items():
                if not p.requires_grad:
                    continue
                # Mixed magnitudes so that eps and the bias corrections matter.
                gr = torch.randn(p.shape, generator=g) * (10.0 ** float(torch.randint(-4, 2, (1,), generator=g)))
                p.grad = gr.clone()
                grads[n] = f32list(gr)
            lrs = {gr['name']: opt.param_groups[i]['lr'] for i, gr in enumerate(groups)}
            opt.step()
            out['steps'].append({
                'epoch': epoch, 'iteration': it, 'lrs': lrs, 'grads': grads,
                'params': {n: f32list(p) for n, p in params.items()},
            })
            it += 1
        if sched is not None:
            sched.step()  # after validation, once per epoch
    path = os.path.join(OUT, name)
    with open(path, 'w') as f:
        json.dump(out, f, indent=None, separators=(',', ':'))
    print(path, len(out['steps']), 'steps', file=sys.stderr)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    # The reference recipe's optimiser; gamma 0.3 (not a power of two) checks the chained
    # multiplication, milestones include 0 (fires at construction) and a repeated one.
    record('adam_multistep.json', torch.optim.Adam,
           {'betas': (0.95, 0.999), 'eps': 1e-8, 'weight_decay': 5e-7},
           base_lr=1e-3, head_lr=100.0, epochs=7, steps_per_epoch=3,
           milestones=[0, 2, 4, 4, 5] + list(range(6, 1000, 3)), gamma=0.3, seed=1)
    # Weight-decay semantics: L2 (Adam) vs decoupled (AdamW), strong enough to show.
    record('adam_decay.json', torch.optim.Adam,
           {'betas': (0.9, 0.999), 'eps': 1e-8, 'weight_decay': 0.1},
           base_lr=1e-2, head_lr=3.0, epochs=2, steps_per_epoch=4, milestones=None, gamma=None, seed=2)
    record('adamw_decay.json', torch.optim.AdamW,
           {'betas': (0.9, 0.98), 'eps': 1e-6, 'weight_decay': 0.05},
           base_lr=1e-2, head_lr=3.0, epochs=2, steps_per_epoch=4, milestones=None, gamma=None, seed=3)


if __name__ == '__main__':
    main()
