"""Every env the config and the factory know, by name: the built-in ones, and any a user registers.

An env is three things under one name: its typed config schema (a dataclass with a ``name`` field,
and optionally ``validate()``), a constructor from that config to an ``Env``, and the Hydra option
``env=<name>`` (``wildrobot.cli`` adds it to Hydra's ConfigStore; a YAML under ``conf/env/`` of the
same name, where there is one, sets its defaults).

Register an outside env before the config is composed, in one of two ways:

- in Python: ``register_env("myenv", MyEnvConfig, make_my_env)`` (then ``wildrobot.cli.load_config``
  and the trainers take ``env=myenv``);
- for the ``run.py`` command line: an entry point in the group ``wildrobot.envs`` of your package,
  naming a function that calls ``register_env`` (loaded the first time the registry is read).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the config reads the registry: it must not load JAX
    from wildrobot.envs.core import Env

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "wildrobot.envs"


@dataclass(frozen=True)
class EnvEntry:
    name: str
    schema: type  # the typed config dataclass; its ``name`` field defaults to ``name``
    make: Callable[[Any], "Env"]  # typed config -> Env (import heavy modules inside, not at registration)


_ENVS: dict[str, EnvEntry] = {}
_plugins_loaded = False


def register_env(name: str, schema: type, make: Callable[[Any], "Env"], *, replace: bool = False) -> None:
    """Make ``env=<name>`` an option of the config and of the env factory."""
    import dataclasses

    if not dataclasses.is_dataclass(schema) or "name" not in {f.name for f in dataclasses.fields(schema)}:
        raise TypeError(f"register_env('{name}'): the schema must be a dataclass with a 'name' field "
                        f"(defaulting to '{name}'), got {schema!r}")
    default = next(f.default for f in dataclasses.fields(schema) if f.name == "name")
    if default != name:
        raise ValueError(f"register_env('{name}'): the schema's 'name' field defaults to {default!r}; "
                         f"make it '{name}'")
    if name in _ENVS and not replace and _ENVS[name] != EnvEntry(name, schema, make):
        raise ValueError(f"an env named '{name}' is already registered; pass replace=True to replace it")
    _ENVS[name] = EnvEntry(name, schema, make)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()()
        except Exception as e:  # noqa: BLE001 - one broken plugin must not stop every run
            log.warning("the env plugin '%s' (%s) failed to register: %s", ep.name, ep.value, e)


def env_entries() -> dict[str, EnvEntry]:
    """The registered envs, built-in ones first."""
    _load_plugins()
    return dict(_ENVS)


def env_entry(name: str) -> EnvEntry:
    entries = env_entries()
    try:
        return entries[name]
    except KeyError:
        raise ValueError(f"unknown env '{name}'; available: {', '.join(entries)} "
                         f"(outside envs: wildrobot.envs.registry.register_env)") from None


# -- the built-in envs: schemas are light; each constructor imports its env only when asked ------
def _stub(cfg: Any) -> "Env":
    from wildrobot.envs.stub import StubEnv

    return StubEnv(cfg)


def _wildrobot(cfg: Any) -> "Env":
    # MJX and the robot model load only when this env is asked for
    from wildrobot.envs.wildrobot import WildRobotEnv

    return WildRobotEnv(cfg)


def _playground(cfg: Any) -> "Env":
    from wildrobot.envs.playground import PlaygroundEnv

    return PlaygroundEnv(cfg)


def _register_builtins() -> None:
    from wildrobot.envs.playground_config import PlaygroundEnvConfig
    from wildrobot.envs.stub_config import StubEnvConfig
    from wildrobot.envs.wildrobot_config import WildRobotEnvConfig

    register_env("stub", StubEnvConfig, _stub)
    register_env("wildrobot", WildRobotEnvConfig, _wildrobot)
    register_env("playground", PlaygroundEnvConfig, _playground)


_register_builtins()
