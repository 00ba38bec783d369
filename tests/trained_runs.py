"""Short real training runs shared by the evaluation, plotting and export tests.

Each is trained at most once per test session (a module-level cache, since several test modules
need the same checkpoint and a module-scoped fixture would train once per module)."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY_PPO, make_trainer

_RUNS: dict[str, Path] = {}

STUB_OVERRIDES = [*TINY_PPO, "trainer.iterations=20", "trainer.log_every=10", "trainer.eval_every=10",
                  "trainer.checkpoint_every=10"]


def trained_run(tmp_path_factory, name: str, overrides: list[str]) -> Path:
    if name not in _RUNS:
        run_dir = tmp_path_factory.mktemp(name) / "run"
        code = make_trainer(overrides, run_dir).run()
        assert code == 0
        _RUNS[name] = run_dir
    return _RUNS[name]


def stub_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, "stub_run", STUB_OVERRIDES)


# The smallest WildRobot run that writes a checkpoint: one PPO iteration on two envs (the cost is
# compiling the env's programs, not training).
WILDROBOT_OVERRIDES = [
    "env=wildrobot", "algo=ppo", "trainer.num_envs=2", "algo.unroll_length=2", "algo.num_minibatches=1",
    "algo.num_epochs=1", "algo.policy.hidden_sizes=[16]", "algo.value.hidden_sizes=[16]", "trainer.iterations=1",
    "trainer.log_every=1", "trainer.eval_every=0", "trainer.checkpoint_every=1", "trainer.progress=false",
]


def wildrobot_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, "wildrobot_run", WILDROBOT_OVERRIDES)


def wildrobot_deploy_ready() -> tuple[bool, str]:
    """Whether the WildRobot env exposes what export and sim-to-sim read (observation layout,
    deployment info, the plain-MuJoCo observer)."""
    from wildrobot.envs.wildrobot import WildRobotEnv

    missing = [a for a in ("observation_layout", "deployment_info", "mujoco_observer") if not hasattr(WildRobotEnv, a)]
    return not missing, f"WildRobotEnv lacks {', '.join(missing)}"
