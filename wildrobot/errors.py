"""The error every layer raises for a configuration value that cannot work, and its one check.

At the bottom of the package: env and algorithm schemas validate themselves with ``require``,
and the command line turns a ``ConfigError`` into exit code 2 before anything is compiled.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration value that cannot work; the message says which key and what is allowed."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a ``ConfigError`` naming ``key``, its ``value`` and what is ``allowed`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"invalid value for '{key}': {value!r}. Allowed: {allowed}.")
