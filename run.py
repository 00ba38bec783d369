"""Entry point: ``uv run run.py [overrides]`` (see README.md)."""

import sys

from wildrobot.train.signals import EarlyInterrupt

# Ctrl-C from here on is noted, and the run stops before it trains; not in the process that launches a
# sweep (its jobs take their own) or completes a shell command line
if __name__ == "__main__" and not {"-m", "--multirun", "-sc", "--shell-completion"} & set(sys.argv[1:]):
    EarlyInterrupt.install()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from wildrobot.cli import main as wildrobot_main  # noqa: E402
from wildrobot.cli import refuse_renamed_keys, register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return wildrobot_main(cfg)  # the run's best evaluation: what hydra/sweeper=optuna maximises


if __name__ == "__main__":
    refuse_renamed_keys(sys.argv[1:])
    main()
