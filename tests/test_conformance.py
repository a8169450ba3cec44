"""The public conformance suite over every registered method (built-in or installed)."""

import pytest

from hmtc_bench.methods import inspect_method, method_names
from hmtc_bench.testing import CHECKS


@pytest.mark.parametrize("name", method_names())
def test_registered_method_is_available(name):
    info = inspect_method(name)
    assert info.available, f"{name}: {info.reason}"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", method_names())
def test_conformance(name, check):
    info = inspect_method(name)
    if not info.available:
        pytest.skip(info.reason)
    check(info.cls)
