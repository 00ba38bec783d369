"""The trainers: each only says which algorithm runs; the loop lives in ``runner.Trainer``."""

from __future__ import annotations

from typing import Any

from wildrobot.algos.amp import PPOAMP
from wildrobot.algos.ppo import PPO
from wildrobot.algos.smoke import SmokeAlgorithm
from wildrobot.envs.core import Env
from wildrobot.envs.factory import evaluation_config, make_env
from wildrobot.envs.wrappers import wrap_for_training
from wildrobot.train.runner import Trainer


class SmokeTrainer(Trainer):
    def make_algorithm(self, env: Env) -> SmokeAlgorithm:
        return SmokeAlgorithm(self.cfg.algo)

    def on_finish(self, carry: Any, metrics: dict[str, float]) -> None:
        print(f"Updated param w mean: {float(carry['params']['w'].mean()):.6g}")


class PPOTrainer(Trainer):
    def make_algorithm(self, env: Env) -> PPO:
        t = self.cfg.trainer
        eval_env = make_env(evaluation_config(self.cfg.env)) if t.eval_every else None
        return PPO(self.cfg.algo, wrap_for_training(env), t.num_envs, t.iterations, eval_env=eval_env)


class AMPTrainer(Trainer):
    """PPO+AMP: the reference dataset is loaded (and refused with the loader's message) before
    anything compiles. A relative ``algo.motion_dataset`` is made absolute, so that the checkpoints'
    config finds it from any directory (evaluation, export, resume). The motion tools (MuJoCo's
    kinematics, SciPy) load only for this trainer, not at every run's start-up."""

    def __init__(self, cfg, run_dir, *args, **kwargs):
        from wildrobot.train.reference import dataset_path

        if cfg.algo.motion_dataset:
            cfg.algo.motion_dataset = str(dataset_path(cfg))
        super().__init__(cfg, run_dir, *args, **kwargs)

    def make_algorithm(self, env: Env) -> PPOAMP:
        from wildrobot.train.reference import GaitProbe, load_reference

        cfg, t = self.cfg.algo, self.cfg.trainer
        reference = load_reference(self.cfg, env)
        eval_env = make_env(evaluation_config(self.cfg.env)) if t.eval_every else None
        share = cfg.reference_start_share
        # (an env without a command: PPOAMP refuses the widths with a ConfigError)
        by_command = bool(cfg.style_command_widths) and bool(env.command_labels)
        training = wrap_for_training(env, features=True, starts=reference.starts if share > 0 else None,
                                     start_share=share, command=by_command)
        algo = PPOAMP(cfg, training, t.num_envs, t.iterations, reference.transitions, reference.weights,
                      eval_env=eval_env, reference_commands=reference.commands if by_command else None)
        self.gait = None
        if eval_env is not None and hasattr(eval_env, "desc") and reference.clips:
            self.gait = GaitProbe(eval_env, reference.clips, algo.deterministic_action)
        return algo

    def evaluate(self, carry: Any, it: int) -> dict[str, float]:
        """PPO's evaluation, and the gait next to the reference clips (``GaitProbe``)."""
        out = super().evaluate(carry, it)
        if self.gait is not None:
            began = self.clock()
            out.update(self.gait(carry.params, carry.obs_stats))
            out["perf/gait_seconds"] = self.clock() - began
        return out
