"""Entry point: ``uv run run.py [overrides]`` (see README.md)."""

import sys

import hydra
from omegaconf import DictConfig

from wildrobot.cli import main as wildrobot_main
from wildrobot.cli import refuse_renamed_keys, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return wildrobot_main(cfg)  # the run's best evaluation: what hydra/sweeper=optuna maximises


if __name__ == "__main__":
    refuse_renamed_keys(sys.argv[1:])
    main()
