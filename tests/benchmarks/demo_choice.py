"""What `starch demo` would plan (search.demo_plan) if every network trained at TRAIN clips/s per
trial and evaluated at RATIO × that, with BUDGET seconds left for the search (no torch, no Ray):

    python -m tests.benchmarks.demo_choice TRAIN RATIO BUDGET

The demo's sizes (8 classes × 200 videos: 1,200 train, 400 test, 2 eval clips), its 18 trials on 2
slots, a 5 s worker start-up and 3 s of set-up per trial. A model with one speed for all six
networks: it says how the choice moves with the speed, not what a particular run measured.
"""

import sys

from search.config import load_experiment
from search.demo_plan import Sizes, fit_to_budget, predict_seconds


def main(train: float, ratio: float, budget_s: float) -> None:
    recipe = load_experiment("demo", overrides={"data.root": "/nonexistent"}).schedule
    sizes, trials = Sizes(1200, 400, 2), [f"n{i % 6}" for i in range(18)]
    speeds = {
        f"n{i}": {"train_clips_per_s": train, "eval_clips_per_s": train * ratio, "setup_s": 3.0, "videos_read": 40}
        for i in range(6)
    }
    for epochs in (8, 12):
        minutes = predict_seconds(trials, speeds, sizes, recipe, epochs, 2, 5.0) / 60
        print(f"{epochs} epochs: predicted {minutes:.2f} min")
    print("chosen:", fit_to_budget(recipe, trials, speeds, sizes, budget_s, 2, startup_s=5.0).epochs, "epochs")


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:4]))
