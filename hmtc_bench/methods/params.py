"""Method parameters: declared types and ranges, checked before any work.

A method declares what each hyper-parameter accepts in the class attribute ``PARAM_SPECS``,
next to its defaults (name -> ``Param``), built with the small constructors below::

    PARAM_SPECS = {"C": number(gt=0), "ngram_max": integer(ge=1),
                   "class_weight": choice("balanced", none=True),
                   "kernel_sizes": sequence(integer(ge=1), none=True)}

``PARAM_SPECS`` are merged along the class hierarchy (a subclass adds or overrides); a spec
naming something that is not a parameter of the class is ignored (a base class may declare
parameters only some subclasses have). A parameter without a spec is checked against the
type of its default: a bool default takes a bool, an int default an integer, a float
default a number (ints too), a str default a string, a list or tuple default a list, a dict
default a mapping; a None default takes anything. A plain Python type (``float``, ``int``,
``bool``, ``str``, ``list``, ``dict``) may stand for the spec in ``PARAM_SPECS``.

Checks convert what reads as the declared type: a string that parses as a number is that
number for a number or integer parameter (``"1e-3"`` -> 0.001, ``"2"`` -> 2), an integral
float is an integer for an integer parameter (``2.0`` -> 2); ints stay ints for number
parameters (a run's identity tells 1 from 1.0). Booleans are never numbers, and numbers
must be finite. ``HMTCMethod.set_params`` checks every value it is given, so
``MethodInfo.build`` / ``make_method`` and the command line check before any data is loaded;
``__init__`` stores its arguments as given (scikit-learn's convention). A refused value is an
``InvalidParameterError`` (a ``ParameterError``), one line naming the method, the
parameter, the value and what is allowed::

    flat-svm: parameter C=-1: must be a number > 0

Also here: ``THRESHOLD`` and ``SEED`` (the specs of a decision threshold and of a seed), and
``load_yaml``, the YAML reader of grid files and ``--param`` values, in which ``1e-3`` is a
number (PyYAML's YAML 1.1 reads it as a string).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

from hmtc_bench.errors import ParameterError


class InvalidParameterError(ParameterError):
    """A parameter name or value a method refuses; the message is ``owner + problem``, e.g.
    ``"FlatSVM" + ": parameter C=-1: must be a number > 0"``. ``for_owner(name)`` gives the
    same error naming another owner (``MethodInfo.build``: the registered method name)."""

    def __init__(self, owner: str, problem: str):
        self.owner, self.problem = owner, problem
        super().__init__(f"{owner}{problem}")

    def for_owner(self, owner: str) -> InvalidParameterError:
        return InvalidParameterError(owner, self.problem)

    def __reduce__(self):
        return type(self), (self.owner, self.problem)


_KINDS = ("number", "integer", "flag", "string", "choice", "list", "mapping", "any", "union")


@dataclass(frozen=True)
class Param:
    """What one parameter accepts. Build it with ``number``, ``integer``, ``flag``,
    ``string``, ``choice``, ``sequence``, ``mapping``, ``one_of`` or ``ANY``."""

    kind: str
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple = ()
    none: bool = False              # None accepted as well
    items: Param | None = None      # sequence: the spec of each item
    options: tuple = ()             # one_of: the alternatives, tried in order
    pattern: str | None = None      # string: a regular expression the whole value matches
    text: str = ""                  # a description replacing the generated one

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise TypeError(f"unknown parameter kind {self.kind!r}; choose one of {_KINDS}")

    # ------------------------------------------------------------------ describing
    def describe(self) -> str:
        """What the parameter accepts, as in ``must be <describe()>``."""
        if self.text:
            text = self.text
        elif self.kind in ("number", "integer"):
            text = ("a number" if self.kind == "number" else "an integer") + self._bounds()
        elif self.kind == "choice":
            text = _either([show(c) for c in self.choices] + (["None"] if self.none else []))
            return text
        elif self.kind == "list":
            text = "a list" if self.items is None else f"a list (each item {self.items.describe()})"
        elif self.kind == "union":
            text = _either([o.describe() for o in self.options])
        else:
            text = {"flag": "true or false", "string": "a string", "mapping": "a mapping",
                    "any": "any value"}[self.kind]
        return f"{text} or None" if self.none and self.kind != "any" else text

    def _bounds(self) -> str:
        low = (self.ge, "[") if self.ge is not None else (self.gt, "(")
        high = (self.le, "]") if self.le is not None else (self.lt, ")")
        if low[0] is not None and high[0] is not None:
            return f" in {low[1]}{_num(low[0])}, {_num(high[0])}{high[1]}"
        if low[0] is not None:
            return f" {'>=' if low[1] == '[' else '>'} {_num(low[0])}"
        if high[0] is not None:
            return f" {'<=' if high[1] == ']' else '<'} {_num(high[0])}"
        return ""

    # ------------------------------------------------------------------ checking
    def check(self, value):
        """``value`` converted to the declared type (see the module docstring); a
        ``ValueError("must be ...")`` when it is refused."""
        try:
            return self._convert(value)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"must be {self.describe()}") from None

    def _convert(self, value):
        if value is None and (self.none or self.kind == "any"):
            return None
        kind = self.kind
        if kind in ("number", "integer"):
            return self._in_bounds(_integer(value) if kind == "integer" else _number(value))
        if kind == "flag":
            if isinstance(value, bool) or type(value).__name__ == "bool_":
                return bool(value)
        elif kind == "string":
            if isinstance(value, str) and (self.pattern is None
                                           or re.fullmatch(self.pattern, value)):
                return value
        elif kind == "choice":
            if any(value == c and type(value) is type(c) for c in self.choices):
                return value
        elif kind == "list":
            if isinstance(value, (list, tuple)):
                if self.items is None:
                    return value
                converted = [self.items._convert(v) for v in value]
                same = all(a is b for a, b in zip(converted, value))
                return value if same else type(value)(converted)
        elif kind == "mapping":
            if isinstance(value, dict):
                return value
        elif kind == "any":
            return value
        elif kind == "union":
            for option in self.options:
                try:
                    return option._convert(value)
                except (ValueError, TypeError, OverflowError):
                    continue
        raise ValueError(value)

    def _in_bounds(self, x):
        if ((self.gt is not None and not x > self.gt) or (self.ge is not None and not x >= self.ge)
                or (self.lt is not None and not x < self.lt)
                or (self.le is not None and not x <= self.le)):
            raise ValueError(x)
        return x


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _number(value):
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, str):
        value = parse_number(value)
    if not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(value)
    return value


def _integer(value):
    value = _number(value)
    if isinstance(value, numbers.Integral):
        return value
    if float(value).is_integer():
        return int(value)
    raise ValueError(value)


def parse_number(text: str):
    """The number a string spells (``"2"`` -> 2, ``"1e-3"`` -> 0.001); ``ValueError`` if
    none."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


# ---------------------------------------------------------------------- constructors
def number(gt=None, ge=None, lt=None, le=None, none: bool = False, text: str = "") -> Param:
    """A finite real number (an int is accepted) within the bounds given."""
    return Param("number", gt=gt, ge=ge, lt=lt, le=le, none=none, text=text)


def integer(gt=None, ge=None, lt=None, le=None, none: bool = False, text: str = "") -> Param:
    """An integer within the bounds given (an integral float or a numeric string converts)."""
    return Param("integer", gt=gt, ge=ge, lt=lt, le=le, none=none, text=text)


def flag() -> Param:
    """True or False."""
    return Param("flag")


def string(pattern: str | None = None, none: bool = False, text: str = "") -> Param:
    """A string; with ``pattern``, one the regular expression matches as a whole."""
    return Param("string", pattern=pattern, none=none, text=text)


def choice(*choices, none: bool = False) -> Param:
    """One of ``choices`` (None too with ``none=True``)."""
    return Param("choice", choices=tuple(choices), none=none)


def sequence(items: Param | None = None, none: bool = False, text: str = "") -> Param:
    """A list (or tuple), each item checked against ``items`` when given."""
    return Param("list", items=items, none=none, text=text)


def mapping(none: bool = False, text: str = "") -> Param:
    """A dict (its entries are checked by the method, e.g. in ``_check_params``)."""
    return Param("mapping", none=none, text=text)


def one_of(*options: Param, none: bool = False, text: str = "") -> Param:
    """The first of ``options`` that accepts the value."""
    return Param("union", options=tuple(options), none=none, text=text)


ANY = Param("any")
THRESHOLD = number(ge=0, le=1)      # a decision threshold
SEED = integer(ge=0)                # a random seed (random_state)

_TYPES = {bool: flag(), int: integer(), float: number(), str: string(), list: sequence(),
          tuple: sequence(), dict: mapping()}


def as_param(spec) -> Param:
    """A ``PARAM_SPECS`` value as a ``Param`` (a Python type stands for its spec)."""
    if isinstance(spec, Param):
        return spec
    if spec in _TYPES:
        return _TYPES[spec]
    raise TypeError(f"a parameter spec is a Param (see hmtc_bench.methods.params), or one of "
                    f"{', '.join(t.__name__ for t in _TYPES)}; got {spec!r}")


def inferred(default) -> Param:
    """The spec of an undeclared parameter: the type of its default (None: anything)."""
    return next((spec for kind, spec in _TYPES.items() if type(default) is kind), ANY)


def specs_of(cls) -> dict[str, Param]:
    """Every parameter of method class ``cls`` with its spec: declared in the
    ``PARAM_SPECS`` of ``cls`` or a base class (the nearest wins), else ``inferred``."""
    import inspect
    declared: dict = {}
    for klass in reversed(cls.__mro__):
        declared.update(vars(klass).get("PARAM_SPECS") or {})
    parameters = inspect.signature(cls.__init__).parameters
    names = cls._param_names()
    return {name: as_param(declared[name]) if name in declared else inferred(p.default)
            for name, p in parameters.items() if name in names}


def show(value) -> str:
    """A value as an error message shows it: strings bare when that is unambiguous."""
    if isinstance(value, str) and value and value == value.strip() and "\n" not in value:
        return value
    return repr(value)


def check_params(owner: str, params: dict, specs: dict[str, Param]) -> dict:
    """``params`` checked against ``specs`` and converted; the first refused value raises
    ``InvalidParameterError`` ("<owner>: parameter <name>=<value>: must be ...")."""
    checked = {}
    for name, value in params.items():
        try:
            checked[name] = specs.get(name, ANY).check(value)
        except ValueError as err:
            raise InvalidParameterError(owner, f": parameter {name}={show(value)}: {err}") \
                from None
    return checked


# ---------------------------------------------------------------------- YAML
_LOADER: list = []
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def load_yaml(text: str):
    """``yaml.safe_load`` where numbers with an exponent and no dot (``1e-3``, ``5E4``) are
    numbers, as in YAML 1.2 and JSON, not strings."""
    import yaml
    if not _LOADER:
        class Loader(yaml.SafeLoader):
            pass
        Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT,
                                     list("-+0123456789."))
        _LOADER.append(Loader)
    return yaml.load(text, Loader=_LOADER[0])  # noqa: S506 (a SafeLoader subclass)


__all__ = ["ANY", "InvalidParameterError", "Param", "SEED", "THRESHOLD", "as_param",
           "check_params", "choice", "flag", "inferred", "integer", "load_yaml", "mapping",
           "number", "one_of", "parse_number", "sequence", "show", "specs_of", "string"]
