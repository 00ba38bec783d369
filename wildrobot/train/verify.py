"""``trainer=verify``: quick-verify the configured env without training."""

from __future__ import annotations

from wildrobot.envs.factory import make_env
from wildrobot.train.runner import Trainer


class VerifyTrainer(Trainer):
    def run(self) -> int:
        from wildrobot.envs.verify import format_report, run_checks

        env = make_env(self.cfg.env)
        results = run_checks(env, seed=self.cfg.seed, num_envs=self.cfg.trainer.num_envs)
        print(format_report(results))
        return 0 if all(r.passed for r in results) else 1
