"""The Hydra edge: the schemas registered in Hydra's ConfigStore, composition for tools and tests,
and ``main`` (from Hydra's DictConfig to a finished run: typed config -> dispatcher -> trainer).

Nothing below this module imports Hydra (a test checks it); ``run.py`` is its entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from wildrobot.config import ALGO_SCHEMAS, RENAMED_KEYS, Config, ConfigError, TrainerConfig, env_schemas, to_typed

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def register_configs() -> None:
    """Each YAML under conf/ starts from one of these (``defaults: [base_<name>, _self_]``)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name, schema in env_schemas().items():
        cs.store(group="env", name=f"base_{name}", node=schema)
        if not (CONF_DIR / "env" / f"{name}.yaml").exists():  # a registered outside env: env=<name> as is
            cs.store(group="env", name=name, node=schema)
    for name, schema in ALGO_SCHEMAS.items():
        cs.store(group="algo", name=f"base_{name}", node=schema)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The DictConfig ``run.py`` would see for these overrides (for tests, benchmarks and tools)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    message = renamed_key_error(list(overrides or []))
    if message:
        raise ConfigError(message)
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides or []))


def load_config(overrides: list[str] | None = None) -> Config:
    """The typed, validated Config ``run.py`` would run for these overrides."""
    return to_typed(compose_config(overrides))


def renamed_key_error(overrides: list[str]) -> str | None:
    """The message for the first override of a key an earlier version had (``config.RENAMED_KEYS``),
    which Hydra itself would only say it cannot override; None when there is none."""
    for arg in overrides:
        key = arg.lstrip("+~").split("=", 1)[0]
        if key in RENAMED_KEYS:
            return f"'{key}' is now {RENAMED_KEYS[key]}. Override that key instead."
    return None


GROUPS = ("env", "algo", "trainer", "algo_env", "experiment")  # conf/ folders: group=option overrides


def _known_paths(schema: type) -> tuple[set[str], set[str]]:
    """(every key path of a dataclass schema, the paths under which any key goes: dict or Any fields)."""
    import dataclasses
    import typing

    keys, open_ = set(), set()
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        keys.add(f.name)
        t = hints.get(f.name)
        inner = [a for a in typing.get_args(t) if a is not type(None)]
        if typing.get_origin(t) is typing.Union and len(inner) == 1:  # Optional[X]
            t = inner[0]
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            sub, sub_open = _known_paths(t)
            keys |= {f"{f.name}.{k}" for k in sub}
            open_ |= {f"{f.name}.{k}" for k in sub_open}
        elif t is Any or typing.get_origin(t) in (dict, list, tuple, typing.Union) or t in (dict, list, tuple):
            open_.add(f.name)  # any key (or list index) below it
    return keys, open_


def _group_paths(schemas: list[type]) -> tuple[set[str], set[str]]:
    """``_known_paths`` over every option of a group: the union of their keys and open paths."""
    known, open_ = set(), set()
    for schema in schemas:
        k, o = _known_paths(schema)
        known |= k
        open_ |= o
    return known, open_


def unknown_key_error(overrides: list[str]) -> str | None:
    """The message for the first override of a key that no schema has (``trainer.num_env=8``), with
    the nearest keys; Hydra itself would only say it is not in the struct and suggest adding it with
    '+', which the typed config then refuses. Keys of every env and algorithm option count, so an
    override is checked before the groups are composed; None when every key is known."""
    import difflib

    import dataclasses

    if any(a.split("=", 1)[0] in ("-sc", "--shell-completion", "-cd", "--config-dir", "-cp", "--config-path", "-cn",
                                  "--config-name") or a.startswith("hydra.searchpath") for a in overrides):
        return None  # shell completion, or configs from elsewhere: Hydra's own checks
    schemas = {"env": list(env_schemas().values()), "algo": list(ALGO_SCHEMAS.values()), "trainer": [TrainerConfig]}
    root = {f.name for f in dataclasses.fields(Config)} | set(GROUPS)
    paths: dict[str, tuple[set[str], set[str]]] = {}  # each group's schemas walked once, when an override needs them
    for arg in overrides:
        if arg.startswith("-") or "=" not in arg or arg[:1] in "+~":
            continue
        key = arg.split("=", 1)[0]
        if "/" in key or key.startswith("hydra") or "@" in key:
            continue
        group, _, rest = key.partition(".")
        if key in GROUPS:
            value = arg.split("=", 1)[1]
            folder = CONF_DIR / key
            options = sorted({str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml")}
                             | (set(env_schemas()) if key == "env" else set()))
            schema_nodes = {f"base_{n}" for n in (env_schemas() if key == "env" else ALGO_SCHEMAS if key == "algo"
                                                  else ["trainer"] if key == "trainer" else [])}
            if "(" in value or "$" in value or value in ("null", ""):
                continue  # a sweep function, an interpolation, or no option
            for option in value.split(","):
                option = option.strip().strip("'\"")
                if option not in options and option not in schema_nodes:
                    near = difflib.get_close_matches(option, options, n=1)
                    return (f"{key}={option}: there is no {key} option '{option}'."
                            + (f" Did you mean {key}={near[0]}?" if near else "")
                            + f" Options: {', '.join(options)}.")
            continue
        if not rest:
            if key in root:
                continue
            near = difflib.get_close_matches(key, sorted(root), n=2)
            return (f"unknown config key '{key}'." + (f" Did you mean {' or '.join(near)}?" if near else "")
                    + f" Top-level keys: {', '.join(sorted(root))}.")
        if group not in schemas:
            continue  # a key under another top-level node: the typed config checks it after composing
        known, open_ = paths[group] if group in paths else paths.setdefault(group, _group_paths(schemas[group]))
        parts = rest.split(".")
        if any(p.isdigit() for p in parts):  # an element of a list: its list must be a key
            rest = ".".join(parts[: next(i for i, p in enumerate(parts) if p.isdigit())])
        if rest in known or any(rest.startswith(o + ".") for o in open_):
            continue
        parent = rest.rpartition(".")[0]
        siblings = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent)
        near = difflib.get_close_matches(rest, sorted(known), n=2)
        where = f"{group}.{parent}" if parent else group
        return (f"unknown config key '{key}'." + (f" Did you mean {' or '.join(f'{group}.{n}' for n in near)}?"
                                                  if near else "")
                + (f" Keys under '{where}': {', '.join(siblings)}." if siblings else "")
                + " (docs/configuration.md lists every key.)")
    return None


def refuse_renamed_keys(argv: list[str]) -> None:
    """``run.py``'s check of its command line before Hydra composes it: exit 2 with the new name of a
    renamed key, or the nearest keys to an unknown one."""
    message = renamed_key_error(argv) or unknown_key_error(argv)
    if message:
        print(f"Config error: {message}", file=sys.stderr)
        sys.exit(2)


def record_hydra_files(cfg: DictConfig, run_dir: Path) -> None:
    """Hydra's record of the run (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``, as Hydra
    writes them), written by the trainer once it may train in ``run_dir`` (and at once into a new
    directory, which holds no other run's record). Hydra's own writing is off
    (``hydra.output_subdir: null`` in conf/config.yaml): it writes before the run starts, so a start
    refused in the directory of another run (a typo, another config, a directory in use) replaced
    that run's record, which the sweep report and the plots read."""
    from omegaconf import OmegaConf

    hydra = HydraConfig.get()
    out = run_dir / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    task = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]) if "hydra" in cfg else cfg
    for name, node in (("config.yaml", task), ("hydra.yaml", OmegaConf.create({"hydra": hydra})),
                       ("overrides.yaml", hydra.overrides.task)):
        (out / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")


def sweeper_direction_note(hydra: Any) -> str | None:
    """A warning for an Optuna search left to minimise (the sweeper's default): what a run returns,
    its best evaluation, is better when higher."""
    sweeper = getattr(hydra, "sweeper", None)
    target = str(getattr(sweeper, "_target_", "") or "") if sweeper is not None else ""
    if "optuna" not in target.lower():
        return None
    direction = getattr(sweeper, "direction", None)
    several = not isinstance(direction, str) and hasattr(direction, "__iter__")  # a multi-objective list
    if any("min" in str(d).lower() for d in (direction if several else [direction])):
        return ("Warning: hydra.sweeper.direction is minimize, so Optuna searches for the LOWEST best evaluation "
                "(a run returns its eval/return, higher is better): pass hydra.sweeper.direction=maximize")
    return None


def main(cfg: DictConfig) -> float:
    """One run; returns its best evaluation (what ``hydra/sweeper=optuna`` maximises; NaN without one)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    note = sweeper_direction_note(HydraConfig.get())
    if note:
        print(note, file=sys.stderr)
    if not (run_dir / ".hydra").exists():  # a new directory: recorded at once, so a job that fails early
        record_hydra_files(cfg, run_dir)     # still shows in the sweep report with its overrides
    try:
        config = to_typed(cfg)
    except ConfigError as e:
        refuse(f"Config error: {e}")

    from wildrobot.dispatch import trainer_class
    from wildrobot.jax_setup import configure_jax, start_distributed
    from wildrobot.train.checkpoint import CheckpointError
    from wildrobot.train.lock import RunDirBusy

    configure_jax()
    start_distributed()  # a run of several processes (wildrobot.launch, srun) joins up here
    trainer = trainer_class(config)(config, run_dir)
    trainer.on_started = lambda: record_hydra_files(cfg, run_dir)
    try:
        code = trainer.run()
    except (ConfigError, CheckpointError, RunDirBusy) as e:
        refuse(f"Error: {e}")
    if code:
        sys.exit(code)  # a stop signal: in a sweep too, it ends the sweep
    return trainer.objective()


class JobRefused(Exception):
    """A job of a sweep that could not run (its message is printed already): the other jobs of its
    batch still run and the sweep fails after them, as Hydra does for a job that raises; an Optuna
    search records the trial as failed (and stops after the batch)."""


def refuse(message: str) -> NoReturn:
    """Print why the run cannot go on; exit 2, or, for a job of a sweep, raise ``JobRefused`` (an exit
    would end the whole sweep and every job after this one)."""
    from hydra.types import RunMode

    print(message, file=sys.stderr)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise JobRefused(message.splitlines()[0])
    sys.exit(2)
