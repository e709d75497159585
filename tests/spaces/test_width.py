import pytest

from spaces import cost, named
from spaces.width import parse_count, solve_width


@pytest.mark.parametrize("text, value", [("33.2M", 33_200_000), ("500k", 500_000), (1e6, 1_000_000), ("42", 42)])
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("bad", ["33.2X", "", "-5M", "abc", True])
def test_parse_count_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="budget"):
        parse_count(bad)


@pytest.mark.parametrize("name", ["sr18", "mc4", "rmc3", "r2plus1d_18", "d26", "p3d_a_50"])
@pytest.mark.parametrize("budget", [2_000_000, 33_200_000])
def test_rules_bracket_the_budget(name, budget):
    spec = named(name)
    under = solve_width(spec, budget, "under")
    nearest = solve_width(spec, budget, "nearest")
    params = lambda k: cost(spec.replace(width=k)).params  # noqa: E731
    assert params(under) <= budget < params(under + 1)
    assert nearest in (under, under + 1)
    other = 2 * under + 1 - nearest  # the one of (under, under + 1) the rule did not pick
    assert abs(params(nearest) - budget) <= abs(params(other) - budget)


def test_impossible_budgets_are_clear_errors():
    with pytest.raises(ValueError, match="below the smallest SR18 network.*valid: budget >="):
        solve_width(named("sr18"), 1000, "under")
    with pytest.raises(ValueError, match="below the smallest SR18 network.*valid: budget >="):
        solve_width(named("sr18"), 1000, "nearest")  # k = 1 would be many times the budget
    with pytest.raises(ValueError, match="width above"):
        solve_width(named("sr18"), "1e15", "under")
    with pytest.raises(ValueError, match="rule must be one of"):
        solve_width(named("sr18"), "1M", "closest")
