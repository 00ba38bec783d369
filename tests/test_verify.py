"""Quick-verify passes on the WildRobot env and reports failures it is meant to catch."""

from __future__ import annotations


from wildrobot.envs.verify import CheckResult, format_report, run_checks
from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import WildRobotEnvConfig


def test_quick_verify_passes_on_the_wildrobot_env():
    env = WildRobotEnv(WildRobotEnvConfig())
    results = run_checks(env, seed=0, num_envs=8)
    report = format_report(results)
    assert all(r.passed for r in results), report
    names = " ".join(r.name for r in results)
    for word in ("finite", "shapes", "distinct", "stands", "push"):
        assert word in names
    assert report.splitlines()[-1].startswith("quick-verify: ")


def test_report_marks_failures():
    report = format_report([CheckResult("a", True, "ok"), CheckResult("b", False, "bad")])
    assert "FAIL  b" in report and "1 FAILED" in report
