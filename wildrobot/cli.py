"""From Hydra's DictConfig to a finished run: typed config -> dispatcher -> trainer."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from wildrobot.config import ConfigError, to_typed


def main(cfg: DictConfig) -> None:
    try:
        config = to_typed(cfg)
    except ConfigError as e:
        print(f"Config error: {e}", file=sys.stderr)
        sys.exit(2)

    from wildrobot.dispatch import trainer_class
    from wildrobot.jax_setup import configure_jax
    from wildrobot.train.checkpoint import CheckpointError

    configure_jax()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        code = trainer_class(config)(config, run_dir).run()
    except (ConfigError, CheckpointError) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    if code:
        sys.exit(code)
