"""The Hydra edge: the schemas registered in Hydra's ConfigStore, composition for tools and tests,
and ``main`` (from Hydra's DictConfig to a finished run: typed config -> dispatcher -> trainer).

Nothing below this module imports Hydra (a test checks it); ``run.py`` is its entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def refuse_renamed_keys(argv: list[str]) -> None:
    """``run.py``'s check of its command line before Hydra composes it: exit 2 with the new name."""
    message = renamed_key_error(argv)
    if message:
        print(f"Config error: {message}", file=sys.stderr)
        sys.exit(2)


def record_hydra_files(cfg: DictConfig, run_dir: Path) -> None:
    """Hydra's record of the run (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``, as Hydra
    writes them), written by the trainer once it may train in ``run_dir``. Hydra's own writing is off
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


def main(cfg: DictConfig) -> float:
    """One run; returns its best evaluation (what ``hydra/sweeper=optuna`` maximises; NaN without one)."""
    try:
        config = to_typed(cfg)
    except ConfigError as e:
        print(f"Config error: {e}", file=sys.stderr)
        sys.exit(2)

    from wildrobot.dispatch import trainer_class
    from wildrobot.jax_setup import configure_jax, start_distributed
    from wildrobot.train.checkpoint import CheckpointError
    from wildrobot.train.lock import RunDirBusy

    configure_jax()
    start_distributed()  # a run of several processes (wildrobot.launch, srun) joins up here
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    trainer = trainer_class(config)(config, run_dir)
    trainer.on_started = lambda: record_hydra_files(cfg, run_dir)
    try:
        code = trainer.run()
    except (ConfigError, CheckpointError, RunDirBusy) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    if code:
        sys.exit(code)
    return trainer.objective()
