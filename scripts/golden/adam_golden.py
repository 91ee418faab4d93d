#!/usr/bin/python3
"""Golden values for the adamUpdate kernel from torch.optim.Adam / AdamW (Debian python3-torch).

Writes test/fixtures/adam_golden.json: for each optimiser case, the initial fp32 parameter,
the fp32 gradient used at every step, and the parameter and both moment buffers after every
step. Values are the exact fp32 numbers (printed as Python floats). Run from the repo root:
    /usr/bin/python3 scripts/golden/adam_golden.py
"""
import json
import os

import torch

STEPS = 5
INITIAL = [0.5, -1.25, 3.0e-3, 0.0, 2.0, -0.75, 1.0e-6, 10.0]


def grads_at(step):
    # Fixed, varied gradients: mixed signs, a zero, tiny and large magnitudes, changing per step.
    base = [0.1, -0.2, 1.0e-4, 0.0, 3.0, -1.0e-7, 0.05, -7.5]
    return [g * (1.0 + 0.3 * step) * (-1.0 if (step + i) % 3 == 0 else 1.0) for i, g in enumerate(base)]


def run(optimizer_cls, **kwargs):
    param = torch.nn.Parameter(torch.tensor(INITIAL, dtype=torch.float32))
    opt = optimizer_cls([param], **kwargs)
    steps = []
    for step in range(STEPS):
        grad = torch.tensor(grads_at(step), dtype=torch.float32)
        param.grad = grad.clone()
        opt.step()
        state = opt.state[param]
        steps.append({
            'grad': grad.tolist(),
            'param': param.detach().tolist(),
            'm': state['exp_avg'].tolist(),
            'v': state['exp_avg_sq'].tolist(),
        })
    return {
        'optimizer': optimizer_cls.__name__,
        'decoupled': optimizer_cls is torch.optim.AdamW,
        'lr': kwargs['lr'],
        'beta1': kwargs['betas'][0],
        'beta2': kwargs['betas'][1],
        'eps': kwargs['eps'],
        'weight_decay': kwargs['weight_decay'],
        'initial': torch.tensor(INITIAL, dtype=torch.float32).tolist(),
        'steps': steps,
    }


def main():
    torch.set_num_threads(1)
    cases = [
        run(torch.optim.Adam, lr=1e-3, betas=(0.95, 0.999), eps=1e-8, weight_decay=5e-7),
        run(torch.optim.AdamW, lr=1e-3, betas=(0.95, 0.999), eps=1e-8, weight_decay=0.05),
    ]
    out = {'torch_version': torch.__version__, 'cases': cases}
    path = os.path.join('test', 'fixtures', 'adam_golden.json')
    with open(path + '.tmp', 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    os.replace(path + '.tmp', path)
    print('wrote', path)


if __name__ == '__main__':
    main()
