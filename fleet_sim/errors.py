"""Errors the simulator raises on purpose, each with a message a user can act on."""

from __future__ import annotations


class FleetSimError(Exception):
    """Base class of every error fleet_sim raises deliberately."""


class ConfigError(FleetSimError):
    """A scenario file or override is invalid.

    The message names the file, the key path and what is allowed.
    """

    def __init__(self, file: str, key_path: str, problem: str, allowed: str | None = None):
        self.file, self.key_path, self.problem, self.allowed = file, key_path, problem, allowed
        msg = f"{file}: {key_path}: {problem}"
        if allowed:
            msg += f" (allowed: {allowed})"
        super().__init__(msg)


class ConfigErrors(FleetSimError):
    """Several ConfigErrors found at once (pydantic reports all problems together)."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class CapacityError(FleetSimError):
    """Something does not fit: admission refused, or the fleet is too small."""


class ConflictError(FleetSimError):
    """Two apps on one shared OS need different versions of one dependency."""


class TraceError(FleetSimError):
    """A trace file is malformed; the message names the file, row and column."""
