"""``trainer=verify``: quick-verify the configured env without training; with ``algo=ppo_amp``, also
its reference dataset and the feature parity between reference frames and env states."""

from __future__ import annotations

import signal

from wildrobot.envs.factory import make_env
from wildrobot.train.runner import Trainer


class VerifyTrainer(Trainer):
    def run(self) -> int:
        from wildrobot.envs.verify import CheckResult, format_report, run_checks

        from wildrobot.train.signals import EarlyInterrupt

        if EarlyInterrupt.release():  # Ctrl-C since run.py began: stop now; from here on Python's handler
            print("Stopped by SIGINT before quick-verify started")
            return 128 + signal.SIGINT
        self.on_started()
        env = make_env(self.cfg.env)
        results = run_checks(env, seed=self.cfg.seed, num_envs=self.cfg.trainer.num_envs)
        if self.cfg.algo.name == "ppo_amp":
            from wildrobot.train.reference import PARITY_TOLERANCE, feature_parity, load_reference

            reference = load_reference(self.cfg, env)  # a bad dataset stops here with the loader's message
            results.append(CheckResult(
                "reference dataset", True,
                f"{len(reference.clips)} clip(s), {reference.seconds:.1f} s, {len(reference.transitions)} transitions "
                f"of {reference.transitions.shape[-1]} features at the env's {1 / env.dt:g} Hz"))
            error = feature_parity(env, reference)
            results.append(CheckResult(
                "feature parity", error <= PARITY_TOLERANCE,
                f"a reference frame set into the physics gives the dataset's features to {error:.1e} "
                f"(tolerance {PARITY_TOLERANCE:g})"))
        print(format_report(results))
        return 0 if all(r.passed for r in results) else 1
