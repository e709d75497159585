"""The LR schedule: torch's schedulers (trainers.loop.make_scheduler) give, epoch by epoch, the
sequence of the formula they replaced, and a resumed trial continues it from its checkpoint."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch

from trainers.loop import make_optimizer, make_scheduler, resume_scheduler
from trainers.recipe import Recipe


def formula(r: Recipe, epoch: int) -> float:
    """The hand-written schedule that Recipe.lr_at computed before (kept here as the reference)."""
    if epoch < r.warmup_epochs:
        return r.lr * (0.1 + 0.9 * epoch / r.warmup_epochs)
    e = epoch - r.warmup_epochs
    if r.schedule == "step":
        return r.lr * r.lr_gamma ** (e // r.lr_step_epochs)
    if r.schedule == "cosine":
        return 0.5 * r.lr * (1 + math.cos(math.pi * e / max(1, r.epochs - r.warmup_epochs)))
    return r.lr


def lrs(recipe: Recipe, epochs: int | None = None) -> list[float]:
    optimizer = make_optimizer(torch.nn.Linear(2, 2), recipe)
    scheduler = make_scheduler(optimizer, recipe)
    out = []
    for _ in range(epochs or recipe.epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


RECIPES = [
    Recipe(epochs=45, lr=0.01, lr_step_epochs=10),  # R(2+1)D's
    Recipe(epochs=15, lr=0.01, lr_step_epochs=3),  # Res3D's
    Recipe(epochs=12, lr=0.05, lr_step_epochs=10, warmup_epochs=1),  # the demo's
    Recipe(epochs=8, lr=0.05, lr_step_epochs=6, warmup_epochs=1),  # the demo scaled to a busy machine
    Recipe(epochs=20, lr=0.1, lr_step_epochs=4, lr_gamma=0.5, warmup_epochs=3),
    Recipe(epochs=10, lr=0.1, schedule="cosine", warmup_epochs=2),
    Recipe(epochs=30, lr=0.1, schedule="cosine"),
    Recipe(epochs=3, lr=0.1, schedule="cosine", warmup_epochs=3),  # nothing left after warm-up
    Recipe(epochs=6, lr=0.02, schedule="constant", warmup_epochs=2),
    Recipe(epochs=4, lr=0.02, schedule="constant"),
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: f"{r.schedule}-{r.epochs}ep-warmup{r.warmup_epochs}")
def test_torch_schedulers_give_the_formulas_sequence(recipe):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated call on the way
        got = lrs(recipe)
    assert got == pytest.approx([formula(recipe, e) for e in range(recipe.epochs)], rel=1e-12, abs=1e-15)


def test_a_resumed_scheduler_continues_the_sequence():
    recipe = RECIPES[4]  # warm-up, then steps: the milestone of SequentialLR lies inside the run
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    for _ in range(5):  # 5 epochs, then the checkpoint the loop writes
        optimizer.step()
        scheduler.step()
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # as trainers.checkpoint loads it

    for saved in (state, {"optimizer": state["optimizer"], "epoch": 5}):  # the second: an older checkpoint
        optimizer = make_optimizer(model, recipe)
        scheduler = make_scheduler(optimizer, recipe)
        optimizer.load_state_dict(saved["optimizer"])
        resume_scheduler(scheduler, saved)
        rest = []
        for _ in range(5, recipe.epochs):
            rest.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert rest == pytest.approx(lrs(recipe)[5:], rel=1e-12)
