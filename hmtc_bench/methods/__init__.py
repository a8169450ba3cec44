"""Methods: the contract, the registry, and the built-in methods.

Built-in and third-party methods are registered alike, in the entry-point group
``hmtc_bench.methods`` (``name = "package.module:Class"``). Listing reads names without
importing; a method is imported when used; a broken plugin is reported as unavailable with
its reason.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from hmtc_bench.errors import MethodUnavailableError
from hmtc_bench.methods.base import HMTCMethod
from hmtc_bench.methods.params import InvalidParameterError
from hmtc_bench.plugins import list_plugins, unknown

GROUP = "hmtc_bench.methods"


@dataclass
class MethodInfo:
    name: str
    value: str
    distribution: str
    available: bool
    reason: str = ""
    cls: type | None = None

    @property
    def family(self) -> str:
        return self.cls.tags()["family"] if self.cls else "?"

    def build(self, params: dict | None = None, random_state: int | None = None):
        """A fresh estimator with ``params`` and, when the method has one, ``random_state``,
        checked by ``set_params`` (against the method's ``PARAM_SPECS``) before any work:
        an unknown name or a refused value raises ``ParameterError`` naming the method by
        its registered name."""
        if not self.available:
            raise MethodUnavailableError(f"method {self.name!r} is unavailable: {self.reason}")
        method = self.cls()
        params = dict(params or {})
        if random_state is not None and "random_state" in method.get_params():
            params["random_state"] = random_state
        try:
            method.set_params(**params)
        except InvalidParameterError as err:
            raise err.for_owner(self.name) from None
        return method


def method_names() -> list[str]:
    """Registered method names; imports nothing."""
    return list(list_plugins(GROUP))


def inspect_method(name: str) -> MethodInfo:
    """Import one method's class (light: modules defer heavy imports) and check that the
    modules its ``requires`` tag names can be found, without importing them."""
    plugins = list_plugins(GROUP)
    if name not in plugins:
        raise unknown("method", name, plugins)
    plugin = plugins[name]
    try:
        cls = plugin.load()
    except Exception as err:  # a broken plugin is reported, not fatal
        return MethodInfo(name, plugin.value, plugin.distribution, False,
                          f"import failed: {type(err).__name__}: {err}")
    if not (isinstance(cls, type) and issubclass(cls, HMTCMethod)):
        return MethodInfo(name, plugin.value, plugin.distribution, False,
                          f"{plugin.value} is not an HMTCMethod subclass")
    missing = [m for m in cls.tags()["requires"] if importlib.util.find_spec(m) is None]
    if missing:
        return MethodInfo(name, plugin.value, plugin.distribution, False,
                          f"missing modules: {', '.join(missing)}", cls)
    return MethodInfo(name, plugin.value, plugin.distribution, True, "", cls)


def list_methods() -> list[MethodInfo]:
    return [inspect_method(name) for name in method_names()]


def get_method(name: str) -> type[HMTCMethod]:
    """The class registered under ``name``; a clear error when unknown or unavailable."""
    info = inspect_method(name)
    if not info.available:
        raise MethodUnavailableError(f"method {name!r} is unavailable: {info.reason}")
    return info.cls


def make_method(name: str, params: dict | None = None, random_state: int | None = None):
    return inspect_method(name).build(params, random_state)


def import_object(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def registered_name(cls: type) -> str | None:
    """The name ``cls`` is registered under in the method registry, or None."""
    plugins = list_plugins(GROUP)
    path = f"{cls.__module__}:{cls.__qualname__}"
    for name, plugin in plugins.items():
        if plugin.value.replace(" ", "") == path:
            return name
    for name, plugin in plugins.items():  # registered under another path (a re-export)
        if plugin.value.rpartition(":")[2].strip() == cls.__qualname__:
            try:
                if plugin.load() is cls:
                    return name
            except Exception:  # a broken plugin is not this class
                continue
    return None


__all__ = ["HMTCMethod", "GROUP", "MethodInfo", "method_names", "inspect_method",
           "list_methods", "get_method", "make_method", "import_object",
           "registered_name"]
