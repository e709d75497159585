"""`starch promote`'s pure part: choose networks from a run's results, and the experiment that
trains exactly those networks again. No Ray, no torch: a promotion is planned and refused before Ray starts.

    trials  = analysis.load([PROXY])                        one row per trial of the proxy run
    choices = choose(trials, "video@1", front=True)         or top=K, or ids=[trial ids]; each says why
    exp     = promoted_experiment(proxy_exp, choices, …)    an ordinary grid experiment whose space is
                                                            the chosen ArchSpecs, as resolved in the proxy

The promoted experiment is the proxy's (data, schedule, resources, storage …) with its space replaced
by one `network` mapping per chosen network, holding every ArchSpec field (k, blocks, convs, frames,
sampling rate, crop, …) except the class count, which the new dataset decides. A YAML overlay and
`--set` then change the schedule, the data, seeds and resources as for `starch search`. The space
itself cannot be changed: the point is to train the networks that were chosen. Only the completed
trials of the proxy count (a trial stopped early by ASHA or still running has not seen the schedule
its peers saw); repeats (seeds) of one network are its mean ± std.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis import ACCURACY_METRICS
from analysis.tables import pareto_front, summarize
from search.config import Experiment
from spaces.validation import format_errors
from spaces.zoo import NETWORKS

LOCKED = ("space", "width_rule", "promoted_from")  # what an overlay or --set may not change


@dataclass(frozen=True)
class Choice:
    """One chosen network: its ArchSpec (without num_classes), its proxy results, and why."""

    key: str  # analysis.results.arch_key: the network across datasets and seeds
    label: str
    trials: tuple[str, ...]  # the proxy's trials of this network (completed ones, and any listed)
    mean: float  # final metric, mean over the completed trials (NaN: none completed)
    std: float
    n: int
    gflops: float
    why: str

    @property
    def arch(self) -> dict[str, Any]:
        return json.loads(self.key)


def _pm(mean: float, std: float) -> str:
    if mean != mean:
        return "—"
    return f"{mean * 100:.1f} ± {std * 100:.1f} %" if std == std else f"{mean * 100:.1f} %"


def choose(
    trials: pd.DataFrame,
    metric: str,
    *,
    front: bool = False,
    top: int | None = None,
    ids: list[str] | None = None,
    run: str = "the proxy run",
) -> list[Choice]:
    """The networks to promote: the Pareto front of `metric` vs GFLOPs, the `top` K by mean over
    seeds, or the networks of the trial `ids`. Raises ValueError with one line naming the run
    and what would be valid when there is nothing to choose."""
    if sum([front, top is not None, bool(ids)]) != 1:
        raise ValueError("choose the networks with exactly one of --front, --top K or --trials ID[,ID…]")
    if metric not in ACCURACY_METRICS:
        raise ValueError(
            f"--metric {metric!r}: networks are ranked by an accuracy; valid: {', '.join(ACCURACY_METRICS)}"
        )
    real = trials[trials["status"] != "infeasible"] if len(trials) else trials
    done = real[real["status"] == "completed"]
    if done.empty:
        counts = ", ".join(f"{n} {s}" for s, n in real["status"].value_counts().items()) if len(real) else ""
        raise ValueError(
            f"{run} has no completed trial ({counts or 'no trial yet'}): nothing to promote; "
            f"wait for one to finish (starch status {run})"
        )
    column = f"final_{metric}"
    if column not in done or done[column].isna().all():
        recorded = [m for m in ACCURACY_METRICS if f"final_{m}" in done and done[f"final_{m}"].notna().any()]
        raise ValueError(
            f"--metric {metric}: no completed trial of {run} recorded it; valid: {', '.join(recorded) or 'none recorded'}"
        )
    table = summarize(done, metric)
    table = table[table["n"] > 0].sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
    ranks = table["mean"].rank(ascending=False, method="min").astype(int)
    count = len(table)

    def seeds(key: str) -> tuple[str, ...]:
        return tuple(done.loc[done["arch_key"] == key, "trial_id"].astype(str))

    def of(row, why: str, extra: tuple[str, ...] = ()) -> Choice:
        listed = tuple(dict.fromkeys(seeds(row["arch_key"]) + extra))
        return Choice(
            key=row["arch_key"],
            label=str(row["label"]),
            trials=listed,
            mean=float(row["mean"]),
            std=float(row["std"]),
            n=int(row["n"]),
            gflops=float(row["gflops"]),
            why=why,
        )

    if front:
        has = table[table["gflops"].notna()].reset_index(drop=True)
        picked = pareto_front(list(has["gflops"]), list(has["mean"])) if len(has) else []
        if not picked:
            raise ValueError(
                f"the Pareto front of {metric} vs GFLOPs of {run} is empty: no completed network has both; "
                "choose with --top K or --trials ID[,ID…]"
            )
        return [
            of(
                has.iloc[i],
                f"on the Pareto front of {metric} vs GFLOPs ({_pm(has['mean'][i], has['std'][i])} at "
                f"{has['gflops'][i]:.3g} GFLOPs; no cheaper network is as accurate)",
            )
            for i in picked
        ]
    if top is not None:
        if not 1 <= top <= count:
            raise ValueError(
                f"--top {top}: {run} has {count} network(s) with a completed trial reporting {metric}; "
                f"valid: --top 1 … {count}"
            )
        return [
            of(
                table.iloc[i],
                f"rank {ranks[i]} of {count} by mean {metric} over {int(table['n'][i])} seed(s) "
                f"({_pm(table['mean'][i], table['std'][i])})",
            )
            for i in range(top)
        ]
    chosen: dict[str, Choice] = {}
    known = list(dict.fromkeys(real["trial_id"].astype(str)))
    for tid in ids or []:
        rows = real[real["trial_id"].astype(str) == tid]
        if rows.empty:
            shown = ", ".join(known[:10]) + (" …" if len(known) > 10 else "")
            raise ValueError(f"--trials: {tid!r} is not a trial of {run}; its trials: {shown}")
        row = rows.iloc[0]
        key = row["arch_key"]
        if key in chosen:  # another seed of a network already listed
            prev = chosen[key]
            chosen[key] = dataclasses.replace(prev, trials=tuple(dict.fromkeys(prev.trials + (tid,))))
            continue
        ranked = table[table["arch_key"] == key]
        if len(ranked):
            i = ranked.index[0]
            chosen[key] = of(
                table.iloc[i],
                f"trial {tid} listed ({row['status']}; the network ranks {ranks[i]} of {count} by mean {metric}, "
                f"{_pm(table['mean'][i], table['std'][i])})",
                (tid,),
            )
        else:  # listed, but no completed trial of this network: it has no proxy result
            chosen[key] = Choice(
                key=key,
                label=str(row.get("label", row.get("family"))),
                trials=(tid,),
                mean=math.nan,
                std=math.nan,
                n=0,
                gflops=float(row["gflops"]) if pd.notna(row.get("gflops")) else math.nan,
                why=f"trial {tid} listed ({row['status']}: no completed trial of this network, so no proxy {metric})",
            )
    return list(chosen.values())


def base_network(arch: dict[str, Any]) -> str:
    """A zoo name for the `network:` key of a mapping (every other field is given, so any would do;
    the one whose label matches reads best)."""
    return next((name for name, spec in NETWORKS.items() if spec.name == arch.get("name")), "r3d_18")


def network_entry(arch: dict[str, Any]) -> dict[str, Any]:
    """The space's `network` mapping that resolves to exactly `arch` (its class count from the data)."""
    fields = {k: v for k, v in arch.items() if k != "num_classes"}
    return {"network": base_network(arch), **fields}


def promoted_experiment(
    proxy: Experiment,
    choices: list[Choice],
    *,
    run: str,
    selection: str,
    metric: str,
    overlay: dict[str, Any] | None = None,
    overlay_source: str = "the overlay",
    overrides: dict[str, Any] | None = None,
) -> Experiment:
    """The experiment that trains `choices` again: the proxy's, with its space the chosen networks,
    a grid (every network × search.repeats seeds), FIFO (every trial to the end) and the name
    PROXY-promoted; then the overlay's sections and the `--set`-style overrides on top."""
    raw = proxy.model_dump(mode="json")
    raw["name"] = f"{proxy.name}-promoted"
    space: dict[str, Any] = {"network": [network_entry(c.arch) for c in choices]}
    for axis in ("num_classes", "budget"):  # one budget: its tolerance is checked on the networks as they are
        if len(proxy.space.get(axis, ())) == 1:
            space[axis] = proxy.space[axis]
    raw["space"] = space
    raw["search"] = {**raw["search"], "algorithm": "grid", "num_samples": 1}
    raw["scheduler"] = {"type": "fifo"}
    raw["promoted_from"] = {
        "run": run,
        "selection": selection,
        "metric": metric,
        "networks": [{"label": c.label, "trials": list(c.trials), "why": c.why} for c in choices],
    }
    if overlay is not None:
        if not isinstance(overlay, dict):
            raise ValueError(
                f"{overlay_source}: must be a mapping of sections (schedule:, data:, …), got {type(overlay).__name__}"
            )
        for section, value in overlay.items():
            _refuse_locked(section, overlay_source)
            if isinstance(value, dict) and isinstance(raw.get(section), dict):
                raw[section] = {**raw[section], **value}
            else:
                raw[section] = value
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        _refuse_locked(section, f"--set {key}")
        if name:
            raw[section] = {**(raw.get(section) or {}), name: value}
        else:
            raw[section] = value
    if raw["search"].get("algorithm") != "grid":
        raise ValueError(
            f"search.algorithm = {raw['search'].get('algorithm')!r}: a promoted run trains a fixed list of networks, "
            "which is a grid; remove the override"
        )
    from pydantic import ValidationError

    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(format_errors(exc, f"promoted experiment {raw['name']}")) from None


def _refuse_locked(section: str, source: str) -> None:
    if section in LOCKED:
        raise ValueError(
            f"{source}: a promoted run trains the chosen networks as the proxy resolved them, so {section} "
            "cannot be changed; write a new experiment for other networks"
        )


def class_count_note(proxy: Experiment, promoted: Experiment) -> str | None:
    """One line when the new dataset has another class count (fine: only the classifier changes)."""
    old, new = proxy.space.get("num_classes"), promoted.space.get("num_classes")
    if not old or not new or list(old) == list(new):
        return None
    return (
        f"note: the new dataset has {new[0]} classes, the proxy's had {old[0]}: each network keeps its layers "
        f"and width, only its classifier (the final fc layer) changes size"
    )
