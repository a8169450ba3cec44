"""The project's own error types: what the user got wrong, or what the user's environment
refuses. The command line reports these as one line; any other exception is a bug and shows
as one (its traceback under ``--debug``, or in the log file the message names)."""

from __future__ import annotations


class HMTCError(Exception):
    """Base of every error hmtc-bench reports to the user as one line."""


class ParameterError(HMTCError, ValueError):
    """A method parameter that does not exist or has a value the method refuses."""


class MethodUnavailableError(HMTCError, RuntimeError):
    """A registered method whose plugin failed to import or misses a module."""


class StoreError(HMTCError, RuntimeError):
    """A results store that cannot be opened, read or written."""


class CheckpointError(HMTCError, ValueError):
    """A neural checkpoint that cannot be used: written for other data, parameters or
    hierarchy, or a file that is missing, unreadable or fails its SHA-256 checksum."""


class TrainingError(HMTCError, RuntimeError):
    """Training that cannot go on, such as a non-finite (NaN or infinite) loss."""
