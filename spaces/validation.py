"""One validation style for every config object starch reads, and one error format.

Every object a user's YAML, JSON or command line becomes is validated by pydantic, once, where it
enters: the specs (`ArchSpec`, `DataSpec`, `Recipe`) are pydantic dataclasses — still frozen
dataclasses for the code that uses them (`dataclasses.fields`, `asdict`, `replace`, hashing) — and
the experiment (`search.config.Experiment`) is a pydantic model whose sections are those specs.
Field types say what is valid (`Int` rejects `true` and `"3"`, `Literal[...]` lists the choices,
`Field(ge=…)` the range); rules between fields are `model_validator`s that raise `ValueError`.

Errors read the same wherever they come from (`format_errors`)::

    experiments/x.yaml: schedule.epochs: Input should be greater than or equal to 1 (got 0)
    ArchSpec: convs.0: conv1 kind 'x' is not valid; valid: 3d, 2d, … (got 'x')

Pure Python (pydantic only): spaces, trainers and search all use it.
"""

from __future__ import annotations

import functools
import reprlib
from typing import Annotated, Any, TypeVar

import pydantic.dataclasses
from pydantic import AllowInfNan, ConfigDict, Strict, ValidationError

# Field types of the specs: no silent coercion (YAML's `true` is not 1, "3" is not 3, 1.5 is not 1)
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Number = Annotated[float, Strict(), AllowInfNan(False)]  # an int is a number too; NaN and inf are not

# The specs' pydantic config: unknown fields are errors (a typo is not a default)
SPEC = ConfigDict(extra="forbid")

T = TypeVar("T")


def spec(cls: type[T]) -> type[T]:
    """Class decorator: a frozen pydantic dataclass whose constructor (and `dataclasses.replace`)
    raises its errors in the format below, naming the class. Nested in another spec or in the
    experiment, its errors carry the outer field path instead (pydantic validates it there)."""
    cls = pydantic.dataclasses.dataclass(frozen=True, config=SPEC)(cls)
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            raise ValueError(format_errors(exc, cls.__name__)) from None

    cls.__init__ = __init__
    return cls


# The bad value as an error shows it: a few levels, items and characters (an input of a million
# values, e.g. a YAML alias bomb, would otherwise be repr()'d whole into a message nobody reads)
_SHOWN = reprlib.Repr()  # Python 3.11's takes no keyword arguments
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 120, 120
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 6


def format_errors(exc: ValidationError, source: str) -> str:
    """One line per error: `source: field.path: what is wrong (got value)`, the value's repr bounded."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        shown = err.get("input")
        value = (
            ""
            if isinstance(shown, dict) or err["type"] in ("missing", "value_error")
            else f" (got {_SHOWN.repr(shown)})"
        )
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg, value = "unknown key (typo?)", ""
        lines.append(f"{source}: {loc + ': ' if loc else ''}{msg}{value}")
    return "\n".join(lines)


def from_dict(cls: type[T], data: Any, source: str | None = None) -> T:
    """Validate `data` (a mapping) into `cls`; a ValueError in the format above, naming `source`
    (default: the class's name), if it is not valid."""
    source = source or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{source}: needs a mapping of fields, got {type(data).__name__}")
    try:
        return cls.__pydantic_validator__.validate_python(data)
    except ValidationError as exc:
        raise ValueError(format_errors(exc, source)) from None
