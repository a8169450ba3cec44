"""Search spaces: what ``hmtc-bench tune`` may try for each hyper-parameter.

A method declares its space in the class attribute ``SEARCH_SPACE``, next to its defaults
(name -> ``Dimension``), merged along the class hierarchy like ``PARAM_SPECS`` (a subclass
adds or overrides; ``None`` removes an inherited dimension)::

    SEARCH_SPACE = {"C": log_range(1e-2, 1e2), "ngram_max": int_range(1, 2),
                    "class_weight": any_of(None, "balanced")}

A tuning file overrides it, per method entry, under ``space`` (YAML)::

    space:
      lr_head: {low: 3.0e-4, high: 1.0e-2, log: true}   # a float range (log scale)
      top_k_layers: {low: 1, high: 4}                   # whole numbers: an integer range
      max_length: [64, 128]                             # a list: one of these values
      dropout: null                                     # not searched: the default

Every value a dimension can give is checked against the method's parameter spec when the
space is read (``check_space``), so a space that would give a refused value fails before any
trial runs, naming the parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hmtc_bench.errors import ParameterError


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: ``kind`` float (``low``..``high``, ``log`` scale), int
    (whole numbers ``low``..``high``) or choice (one of ``choices``)."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def describe(self) -> dict | list:
        """The dimension as a tuning file writes it."""
        if self.kind == "choice":
            return list(self.choices)
        out = {"low": self.low, "high": self.high}
        return {**out, "log": True} if self.log else out

    def bounds(self) -> list:
        """The values to check against the parameter's spec: both ends, or every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def contains(self, value) -> bool:
        """Whether ``value`` is one this dimension can give."""
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and value != int(value):
            return False
        return self.low <= value <= self.high

    def distribution(self):
        """The Optuna distribution of this dimension."""
        import optuna
        if self.kind == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high),
                                                        log=self.log)
        return optuna.distributions.CategoricalDistribution(list(self.choices))


def float_range(low: float, high: float) -> Dimension:
    return _range("float", low, high, False)


def log_range(low: float, high: float) -> Dimension:
    return _range("float", low, high, True)


def int_range(low: int, high: int, log: bool = False) -> Dimension:
    return _range("int", low, high, log)


def any_of(*choices) -> Dimension:
    if not choices:
        raise ValueError("a choice needs at least one value")
    return Dimension("choice", choices=tuple(choices))


def _range(kind: str, low, high, log: bool) -> Dimension:
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValueError(f"range ends must be finite numbers, got {value!r}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ValueError(f"an integer range needs whole ends, got {low!r}..{high!r}")
    if not low < high:
        raise ValueError(f"a range needs low < high, got {low!r}..{high!r}")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0, got {low!r}")
    if kind == "int":
        low, high = int(low), int(high)
    return Dimension(kind, low=low, high=high, log=log)


def space_of(cls) -> dict[str, Dimension]:
    """The search space a method class declares (``SEARCH_SPACE`` along its bases; the
    nearest wins, ``None`` removes), restricted to the class's parameters."""
    declared: dict = {}
    for klass in reversed(cls.__mro__):
        declared.update(vars(klass).get("SEARCH_SPACE") or {})
    names = set(cls._param_names())
    return {k: v for k, v in declared.items() if v is not None and k in names}


def parse_dimension(value, where: str) -> Dimension | None:
    """A dimension as a tuning file gives it (see the module docstring); ``where`` names it
    in errors."""
    if value is None:
        return None
    try:
        if isinstance(value, list):
            return any_of(*value)
        if isinstance(value, dict):
            extra = set(value) - {"low", "high", "log"}
            if extra or not {"low", "high"} <= set(value):
                raise ValueError("a range is {low: .., high: .., log: true|false} "
                                 f"(got keys {sorted(value)})")
            log = value.get("log", False)
            if not isinstance(log, bool):
                raise ValueError(f"log must be true or false, got {log!r}")
            whole = all(isinstance(value[k], int) and not isinstance(value[k], bool)
                        for k in ("low", "high"))
            return _range("int" if whole else "float", value["low"], value["high"], log)
    except ValueError as err:
        raise ParameterError(f"{where}: {err}") from None
    raise ParameterError(f"{where}: must be a list of values or a mapping "
                         f"{{low: .., high: .., log: ..}}, got {value!r}")


def check_space(method: str, cls, space: dict[str, Dimension], fixed: dict,
                where: str = "") -> None:
    """Refuse a space naming a parameter ``cls`` does not have, one also fixed in
    ``fixed``, or one that can give a value the parameter's spec refuses."""
    from hmtc_bench.methods.params import InvalidParameterError
    names = cls._param_names()
    prefix = f"{where}: " if where else ""
    for name, dimension in space.items():
        if name not in names:
            raise ParameterError(f"{prefix}{method} has no parameter {name!r} to search; "
                                 f"valid: {', '.join(names)}")
        if name in fixed:
            raise ParameterError(f"{prefix}{method}: parameter {name!r} is both fixed "
                                 "(params) and searched (space); give it in one of them")
        for value in dimension.bounds():
            try:
                cls().set_params(**fixed, **{name: value})
            except InvalidParameterError as err:
                raise ParameterError(f"{prefix}{method} search space{err.problem}") from None
