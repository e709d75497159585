"""One fast experiment on the synthetic motion benchmark (issue 10): in-memory frames, one thread.

The frames come from trainers.data.synth.generate_video with some of its module constants overridden
(--synth '{"_N_MOVING": 24}'; "texture": N makes every sprite binary noise of N-px cells), are kept
in memory (no H.264 round trip: faster, and the decoded frames differ only by x264's loss), and a
network of spaces is trained with trainers' Recipe and optimiser at the demo's clip geometry
(8 frames every 2nd, random 32x32 crops, test: 2 evenly spaced centre clips per video, video@1).
One JSON line per run is appended to --log. Run from the repository root:

    python docs/benchmark/reliability.py --net r2plus1d_18 --width 8 --seed 1 \
        --synth '{"_N_MOVING":24,"_N_STATIC_SPRITES":0,"_N_RECTS":20}' --zero-init --recipe '{"warmup_epochs":1}'
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.getcwd())
from spaces import build, named
from trainers.data import synth
from trainers.data.transforms import to_tensor
from trainers.loop import make_optimizer, make_scheduler
from trainers.recipe import Recipe

p = argparse.ArgumentParser()
p.add_argument("--net", default="r3d_18")
p.add_argument("--width", type=int, default=8)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--synth", default="{}")  # module constants, e.g. {"_N_RECTS": 10}
p.add_argument("--vpc", type=int, default=200)
p.add_argument("--data-seed", type=int, default=0)
p.add_argument("--recipe", default="{}")
p.add_argument("--zero-init", action="store_true")
p.add_argument("--batch", type=int, default=16)
p.add_argument("--tag", default="")
p.add_argument("--cl", type=int, default=1)
p.add_argument("--log", default="docs/benchmark/log.jsonl")
p.add_argument("--level", type=int, default=synth.DEFAULT_LEVEL)  # VERSION 3: the difficulty level
p.add_argument("--eval-every", type=int, default=2)
p.add_argument("--cache-dir", default="/tmp")
a = p.parse_args()
torch.set_num_threads(1)
syn = json.loads(a.synth)
for k, v in syn.items():
    if k == "texture":  # experiment: every sprite texture is binary noise of cell v px (non-periodic)

        def _tex(rng, h, w, scale, cell=v):
            rng.integers(0, 5)
            rng.integers(1, 3)  # the draws of the original, so the rest stays aligned
            hh, ww = -(-h // cell), -(-w // cell)
            return np.kron(rng.random((hh, ww)) < 0.5, np.ones((cell, cell), bool))[:h, :w]

        synth._texture = _tex
        continue
    setattr(synth, k, tuple(v) if isinstance(v, list) else v)
key = hashlib.md5(
    json.dumps([syn, a.vpc, a.data_seed, synth.VERSION, synth.LEVELS[a.level].to_dict()], sort_keys=True).encode()
).hexdigest()[:10]
cache = f"{a.cache_dir}/starch_reliability_{key}.npz"
names = synth.class_names(8)
motions = synth.class_motions(8)
if os.path.exists(cache):
    d = np.load(cache)
    X, Y = d["X"], d["Y"]
else:
    X = np.empty((8 * a.vpc, 48, 32, 44, 3), np.uint8)
    Y = np.empty(8 * a.vpc, np.int64)
    i = 0
    for label, (_name, (dr, pr)) in enumerate(motions.items()):
        for idx in range(a.vpc):
            rng = synth._video_rng(a.data_seed, dr, pr, idx)
            X[i] = synth.generate_video(rng, direction=dr, profile=pr, level=a.level, classes=8)
            Y[i] = label
            i += 1
    tmp = f"{cache}.{os.getpid()}.npz"
    np.savez(tmp, X=X, Y=Y)
    os.replace(tmp, cache)
n_test = synth._n_test(a.vpc, 0.25)
is_test = np.tile(np.arange(a.vpc) < n_test, 8)
Xtr, Ytr, Xte, Yte = X[~is_test], Y[~is_test], X[is_test], Y[is_test]
L, S, C = 8, 2, 32
span = (L - 1) * S + 1


def clip(v, t0, y0, x0):
    return v[t0 : t0 + span : S, y0 : y0 + C, x0 : x0 + C]


rc = dict(epochs=12, lr=0.05, lr_step_epochs=10, seed=a.seed)
rc.update(json.loads(a.recipe))
recipe = Recipe(**rc)
torch.manual_seed(a.seed)
rng = np.random.default_rng(a.seed)
spec = named(a.net, width=a.width, frames=L, sampling_rate=S, crop=C, num_classes=8)
model = build(spec, zero_init_residual=a.zero_init)
fmt = torch.channels_last_3d if a.cl else torch.contiguous_format
model = model.to(memory_format=fmt)
opt = make_optimizer(model, recipe)


def batchify(frames):
    return torch.stack([to_tensor(f) for f in frames]).contiguous(memory_format=fmt)


# eval set: 2 evenly spaced clips, centre crop
starts = np.linspace(0, 48 - span, 2).round().astype(int)
ev = [batchify([clip(v, t, 0, (44 - C) // 2) for v in Xte]) for t in starts]


def evaluate():
    model.eval()
    probs = 0
    with torch.no_grad():
        for e in ev:
            probs = probs + torch.cat([model(e[i : i + 64]).softmax(1) for i in range(0, len(e), 64)])
    model.train()
    return (probs.argmax(1).numpy() == Yte).mean()


hist = []
t0 = time.time()
scheduler = make_scheduler(opt, recipe)
for epoch in range(recipe.epochs):
    order = rng.permutation(len(Xtr))
    losses = []
    for b in range(0, len(order) - a.batch + 1, a.batch):
        ids = order[b : b + a.batch]
        frames = [
            clip(Xtr[i], rng.integers(0, 48 - span + 1), rng.integers(0, 32 - C + 1), rng.integers(0, 44 - C + 1))
            for i in ids
        ]
        x = batchify(frames)
        y = torch.from_numpy(Ytr[ids])
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    acc = evaluate() if ((epoch + 1) % a.eval_every == 0 or epoch == recipe.epochs - 1) else None
    hist.append((round(float(np.mean(losses)), 3), None if acc is None else round(100 * acc, 1)))
    scheduler.step()
out = dict(
    tag=a.tag,
    net=a.net,
    width=a.width,
    seed=a.seed,
    synth=syn,
    version=synth.VERSION,
    level=a.level,
    eval_every=a.eval_every,
    vpc=a.vpc,
    recipe=json.loads(a.recipe),
    zero_init=a.zero_init,
    batch=a.batch,
    cl=a.cl,
    final=hist[-1][1],
    curve=[h[1] for h in hist if h[1] is not None],
    loss=[h[0] for h in hist],
    minutes=round((time.time() - t0) / 60, 2),
)
print(json.dumps(out))
open(a.log, "a").write(json.dumps(out) + "\n")
