"""Quick-verify passes on the WildRobot env and reports failures it is meant to catch."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import pytest

from wildrobot.envs.stub import StubEnv
from wildrobot.envs.stub_config import StubEnvConfig
from wildrobot.envs.verify import CheckResult, format_report, run_checks
from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import WildRobotEnvConfig

STANDS = "stands at home with zero action for 2 s"
PUSH = "a strong push makes it fall and terminate"


@pytest.fixture(scope="module")
def robot():
    return WildRobotEnv(WildRobotEnvConfig())


def _failed(results: list[CheckResult]) -> set[str]:
    return {r.name for r in results if not r.passed}


def test_quick_verify_passes_on_the_wildrobot_env(robot):
    results = run_checks(robot, seed=0, num_envs=8)
    report = format_report(results)
    assert all(r.passed for r in results), report
    names = " ".join(r.name for r in results)
    for word in ("finite", "shapes", "distinct", "stands", "push"):
        assert word in names
    assert {STANDS, PUSH} <= {r.name for r in results}
    assert report.splitlines()[-1].startswith("quick-verify: ")


def test_report_marks_failures():
    report = format_report([CheckResult("a", True, "ok"), CheckResult("b", False, "bad")])
    assert "FAIL  b" in report and "1 FAILED" in report


# -- each generic check fails on a stub broken in the way it looks for (and only that one) ----------
class _NanObs(StubEnv):
    def step_in_episode(self, state, action):
        s = super().step_in_episode(state, action)
        return s.replace(obs=dict(s.obs, actor=s.obs["actor"].at[0].set(jnp.nan)))


class _NanRewardTerm(StubEnv):
    def step_in_episode(self, state, action):
        s = super().step_in_episode(state, action)
        return s.replace(metrics=dict(s.metrics, **{"reward/action_rate": jnp.float32(jnp.inf)}))


class _SameReset(StubEnv):
    def reset(self, key):
        return super().reset(jax.random.key(0))  # every seed and every env of the batch alike


class _HalfDone(StubEnv):
    def step_in_episode(self, state, action):
        s = super().step_in_episode(state, action)
        return s.replace(done=jnp.float32(0.5))


class _WrongSize(StubEnv):
    @property
    def observation_size(self):
        return dict(super().observation_size, actor=super().observation_size["actor"] + 1)


GENERIC = {
    "shapes as declared", "observations finite (zero actions)", "observations finite (random actions)",
    "reward and every reward term finite (zero actions)", "reward and every reward term finite (random actions)",
    "resets distinct across seeds", "terminations reported as 0/1",
}


@pytest.mark.parametrize("broken, fails", [
    (StubEnv, set()),
    (_NanObs, {"observations finite (zero actions)", "observations finite (random actions)"}),
    (_NanRewardTerm, {"reward and every reward term finite (zero actions)",
                      "reward and every reward term finite (random actions)"}),
    (_SameReset, {"resets distinct across seeds"}),
    (_HalfDone, {"terminations reported as 0/1"}),
    (_WrongSize, {"shapes as declared"}),
], ids=lambda x: x.__name__ if isinstance(x, type) else "")
def test_each_generic_check_fails_on_the_env_it_is_meant_to_catch(broken, fails):
    results = run_checks(broken(StubEnvConfig()), seed=0, num_envs=4)
    assert {r.name for r in results} == GENERIC  # no robot checks for a non-robot env
    assert _failed(results) == fails, format_report(results)
    if fails:
        assert f"{len(fails)} FAILED" in format_report(results)


# -- the robot checks: a robot that cannot stand, and one that cannot fall -------------------------
def _limp(env: WildRobotEnv) -> WildRobotEnv:
    """The same robot (the same step, so the same compiled rollout) with every servo's kp scaled to 0
    in each episode's randomisation draws: the joints go limp."""
    broken = copy.copy(env)

    def reset(key):
        s = env.reset(key)
        dr = dict(s.info["dr"], kp_scale=jnp.zeros_like(s.info["dr"]["kp_scale"]))
        return s.replace(info=dict(s.info, dr=dr))

    broken.reset = reset
    return broken


def test_a_robot_without_servo_stiffness_fails_to_stand(robot):
    """It collapses without a push (so the push check, a fall, still passes)."""
    results = run_checks(_limp(robot), seed=0, num_envs=8)
    assert _failed(results) == {STANDS}, format_report(results)


class _NeverFalls(WildRobotEnv):
    """Termination switched off (a fall detector that never fires)."""

    def fallen(self, q):
        return jnp.zeros((), bool)


def test_a_robot_whose_falls_never_terminate_fails_the_push_check():
    results = run_checks(_NeverFalls(WildRobotEnvConfig()), seed=0, num_envs=2)
    assert _failed(results) == {PUSH}, format_report(results)
