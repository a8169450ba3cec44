"""hmtc-bench: a benchmark suite for hierarchical multi-label text classification."""

__version__ = "0.1.0"
