"""`starch demo` fitted to the machine (search.demo_plan): the epochs chosen from a measured speed."""

from __future__ import annotations

import pytest

from search.demo_plan import MIN_EPOCHS, Sizes, evaluations, fit_to_budget, predict_seconds, scaled_lr_step
from trainers.recipe import Recipe

# the demo preset's schedule (search/presets/demo.yaml) and data (1,200 train / 400 test videos)
RECIPE = Recipe(epochs=12, eval_every=2, lr=0.05, lr_step_epochs=10, warmup_epochs=1)
SIZES = Sizes(train_videos=1200, test_videos=400, eval_clips=2)
NETWORKS = ["f-R2D", "MC3", "rMC3", "R3D-18", "R(2+1)D", "R3D k/2"]
TRIALS = [n for n in NETWORKS for _ in range(3)]  # 3 seeds each


def speeds(train: float, *, setup: float = 2.0, cold: float = 0.0) -> dict[str, dict[str, float]]:
    """Every network at `train` clips/s (evaluation 3× faster: forward only), set up in `setup` s;
    the first one measured also read its 40 videos from a cold cache at `cold` s each."""
    return {
        n: {
            "train_clips_per_s": train,
            "eval_clips_per_s": 3 * train,
            "setup_s": setup + (cold * 40 if i == 0 else 0),
            "videos_read": 40,
        }
        for i, n in enumerate(NETWORKS)
    }


def test_a_fast_machine_keeps_the_presets_epochs():
    s = fit_to_budget(RECIPE, TRIALS, speeds(400.0), SIZES, budget_s=14 * 60, concurrency=2)
    assert (s.epochs, s.lr_step_epochs, s.scaled) == (12, 10, False)
    assert s.predicted_s < 0.85 * 14 * 60
    assert "the preset's 12 epochs fit" in s.sentence() and "400 training clips/s" in s.sentence()


def test_a_slow_machine_trains_every_trial_for_fewer_epochs():
    fast = fit_to_budget(RECIPE, TRIALS, speeds(400.0), SIZES, budget_s=14 * 60, concurrency=2)
    s = fit_to_budget(RECIPE, TRIALS, speeds(150.0), SIZES, budget_s=14 * 60, concurrency=2, startup_s=30)
    assert MIN_EPOCHS <= s.epochs < 12 and s.scaled and s.trials == len(TRIALS) == 18
    assert s.predicted_s <= 0.85 * 14 * 60 < predict_seconds(TRIALS, s.speeds, SIZES, RECIPE, s.epochs + 1, 2, 30)
    assert "a Ray worker starts in 30 s" in s.sentence()
    assert s.overrides() == {"schedule.epochs": s.epochs, "schedule.lr_step_epochs": s.lr_step_epochs}
    assert f"{s.epochs} epochs instead of 12 to fit 14.0 min" in s.sentence()
    assert s.to_dict()["sentence"] == s.sentence() and fast.predicted_s < s.predicted_s


def test_the_lr_step_moves_with_the_epochs():
    # 12 epochs, 1 of warm-up, step after 10 more: the drop comes for the last epoch; at 8 it still does
    assert scaled_lr_step(RECIPE, 12) == 10 and scaled_lr_step(RECIPE, 8) == 6
    from tests.trainers.test_schedule import lrs  # torch: the schedule the trials get

    scaled = Recipe(**{**RECIPE.to_dict(), "epochs": 8, "lr_step_epochs": 6})
    assert [lr < 0.05 * 0.5 for lr in lrs(scaled)] == [True] + [False] * 6 + [True]  # warm-up, drop


def test_more_slots_and_a_cold_cache_change_the_prediction():
    one, two = (predict_seconds(TRIALS, speeds(100.0), SIZES, RECIPE, 12, c) for c in (1, 2))
    assert two == pytest.approx(one / 2 + 20 / 2, rel=0.05)  # the report's fixed 20 s is not shared
    cold = predict_seconds(TRIALS, speeds(100.0, cold=0.01), SIZES, RECIPE, 12, 2)
    assert cold == pytest.approx(two + 0.01 * 1600)
    slow_setup = predict_seconds(TRIALS, speeds(100.0, setup=12.0), SIZES, RECIPE, 12, 2)
    assert slow_setup == pytest.approx(two + 10 * 18 / 2)  # 10 s more for each of 18 trials on 2 slots
    assert predict_seconds(TRIALS, speeds(100.0), SIZES, RECIPE, 12, 2, startup_s=40) == pytest.approx(two + 40)


def test_evaluations_follow_the_loop():
    assert [evaluations(e, 2) for e in (1, 2, 7, 8, 12)] == [1, 1, 4, 4, 6]
    assert evaluations(3, 1) == 3


def test_an_impossible_budget_is_refused_with_the_budget_that_would_do():
    with pytest.raises(ValueError, match=r"--budget-minutes (\d+) or more") as err:
        fit_to_budget(RECIPE, TRIALS, speeds(5.0), SIZES, budget_s=10 * 60, concurrency=2, spent_s=90)
    need = int(err.value.args[0].split("--budget-minutes ")[-1].split()[0])
    smallest = predict_seconds(TRIALS, speeds(5.0), SIZES, RECIPE, MIN_EPOCHS, 2)
    assert need * 60 >= 90 + smallest / 0.85 > (need - 1) * 60
    assert "5 training clips/s" in str(err.value) and "18 trials × 4 epochs" in str(err.value)
