"""Moved to ``hmtc_bench.data.formats.newsgroups``; kept for the imports outside
``hmtc_bench/data/`` (``benchmarks/bench_hiclass.py``, ``tests/test_local.py``)."""

from hmtc_bench.data.formats.newsgroups import (ARCHIVE, DEFAULT_SEED, DEV_FRACTION, NAME,
                                                default_path, group_path, load, read, recognise)

__all__ = ["ARCHIVE", "DEFAULT_SEED", "DEV_FRACTION", "NAME", "default_path", "group_path",
           "load", "read", "recognise"]
