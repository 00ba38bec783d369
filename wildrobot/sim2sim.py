"""Sim-to-sim: the exported ONNX policy drives the robot in plain MuJoCo (C), next to MJX.

    uv run python -m wildrobot.sim2sim <run dir or checkpoint> [--onnx policy.onnx]
        [--commands "0.2,0,0;0.3,0,0.5"] [--seconds 10] [--video out.mp4] [--step N] [--which latest|best]

A policy that only works in the simulator it was trained in has learnt that simulator. Here the
ONNX file a robot would run (through onnxruntime, as on the robot) controls MuJoCo's C engine,
with its own contact solver and integration, while the observation is computed by the env's own
observation code (``WildRobotEnv.mujoco_observer``), so nothing is re-implemented. For each
command it prints how long the robot stayed up and the velocity tracking errors, in MuJoCo C and
in MJX (the same commands through ``wildrobot.eval.evaluate_policy``, the env's physics set to MJX
whichever backend the run trained on: on a CPU that is MuJoCo C itself, so the comparison keeps
two simulators apart).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

DEFAULT_COMMANDS = ((0.0, 0.0, 0.0), (0.2, 0.0, 0.0), (0.3, 0.0, 0.5), (0.3, 0.0, -0.5))


@dataclass
class Episode:
    command: np.ndarray
    steps: int  # control steps survived
    fell: bool
    vx_error: float  # mean |command vx - measured heading-frame vx| per step
    yaw_rate_error: float
    qpos: Optional[np.ndarray] = None  # (steps + 1, nq) when recorded
    qvel: Optional[np.ndarray] = None


def onnx_policy(onnx_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One observation in, one action out, through onnxruntime (the robot's inference path)."""
    from wildrobot.export import onnx_session

    sess = onnx_session(onnx_path)
    return lambda obs: sess.run(["action"], {"obs": np.asarray(obs, np.float32)[None]})[0][0]


def run_mujoco(env: Any, policy: Callable[[np.ndarray], np.ndarray], command: Sequence[float], steps: int,
               record: bool = False) -> Episode:
    """One episode in MuJoCo C from the home keyframe; stops at the first fall."""
    import mujoco

    if not hasattr(env, "mujoco_observer"):
        raise ValueError(f"env '{env.cfg.name}' cannot compute its observation from plain MuJoCo (no mujoco_observer)")
    model = env.mj_model
    data = mujoco.MjData(model)
    key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, env.desc.home_keyframe)
    mujoco.mj_resetDataKeyframe(model, data, key)
    mujoco.mj_forward(model, data)
    observer = env.mujoco_observer()
    observer.reset(np.asarray(command, np.float32))
    substeps = int(env.cfg.sim.substeps)
    command = np.asarray(command, np.float64)

    obs, _, fell = observer.observe(data)
    vx_err, yaw_err = [], []
    frames = [(data.qpos.copy(), data.qvel.copy())] if record else None
    for _ in range(steps):
        data.ctrl[:] = observer.ctrl(policy(obs))
        mujoco.mj_step(model, data, nstep=substeps)
        obs, q, fell = observer.observe(data)
        vx_err.append(abs(command[0] - float(q["base_vel_heading"][0])))
        yaw_err.append(abs(command[2] - float(q["yaw_rate"])))
        if record:
            frames.append((data.qpos.copy(), data.qvel.copy()))
        if fell or not np.all(np.isfinite(data.qpos)):
            fell = True
            break
    return Episode(command=command, steps=len(vx_err), fell=bool(fell), vx_error=float(np.mean(vx_err)),
                   yaw_rate_error=float(np.mean(yaw_err)),
                   qpos=np.stack([f[0] for f in frames]) if record else None,
                   qvel=np.stack([f[1] for f in frames]) if record else None)


def compare(loaded: Any, onnx_path: Path, commands: np.ndarray, steps: int,
            record: bool = False) -> tuple[list[Episode], Any]:
    """(MuJoCo C episodes, MJX ``EvalResults``) for the same commands and episode length."""
    import jax

    from wildrobot.eval import evaluate_policy
    from wildrobot.runs import evaluation_env

    env = evaluation_env(loaded, backend="mjx")
    policy = onnx_policy(onnx_path)
    c_runs = [run_mujoco(env, policy, cmd, steps, record=record) for cmd in commands]
    mjx_runs = evaluate_policy(loaded, commands, episodes=1, key=jax.random.key(0), steps=steps, env=env)
    return c_runs, mjx_runs


def format_comparison(c_runs: Sequence[Episode], mjx: Any, dt: float) -> str:
    pc = mjx.per_command()
    head = (f"{'command (vx vy yaw)':<22}| {'MuJoCo C: up s':>14} {'vx err':>7} {'yaw err':>7} "
            f"| {'MJX: up s':>9} {'vx err':>7} {'yaw err':>7}")
    lines = [head, "-" * len(head)]
    for i, ep in enumerate(c_runs):
        cmd = " ".join(f"{x:+.2f}" for x in ep.command)
        c_up = f"{ep.steps * dt:.1f}" + (" FELL" if ep.fell else "")
        m_up = f"{pc['length'][i] * dt:.1f}" + (" FELL" if pc["fall"][i] > 0 else "")
        lines.append(f"{cmd:<22}| {c_up:>14} {ep.vx_error:>7.3f} {ep.yaw_rate_error:>7.3f} "
                     f"| {m_up:>9} {pc['tracking/vx_error'][i]:>7.3f} {pc['tracking/yaw_rate_error'][i]:>7.3f}")
    return "\n".join(lines)


def render_mujoco_video(c_runs: Sequence[Episode], env: Any, path: Path, seconds: float) -> Path:
    """The MuJoCo C episodes as one video, drawn like the evaluation's (command and speed shown)."""
    from wildrobot.eval import EvalResults, render_video

    steps = max(len(ep.qpos) for ep in c_runs)

    def padded(x):  # hold the last state of an episode that ended early
        return np.concatenate([x, np.repeat(x[-1:], steps - len(x), axis=0)])

    alive = np.stack([np.arange(steps) < len(ep.qpos) for ep in c_runs], axis=1).astype(np.float64)
    res = EvalResults(env_name=env.cfg.name, step=0, commands=np.stack([ep.command for ep in c_runs]),
                      labels=tuple(env.command_labels), episodes=1, steps=steps - 1, dt=float(env.dt), per_episode={},
                      recording={"qpos": np.stack([padded(ep.qpos) for ep in c_runs], axis=1),
                                 "qvel": np.stack([padded(ep.qvel) for ep in c_runs], axis=1), "alive": alive})
    return render_video(res, env.mj_model, path, seconds=seconds)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wildrobot.sim2sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory, its checkpoints/ folder, or checkpoints/{latest,best}/<step>")
    parser.add_argument("--onnx", type=Path, default=None, help="an exported policy (default: export this run now)")
    parser.add_argument("--commands", default=None, help='e.g. "0.2,0,0;0.3,0,0.5" (vx, vy, yaw rate)')
    parser.add_argument("--seconds", type=float, default=10.0, help="episode length (default 10 s)")
    parser.add_argument("--video", type=Path, default=None, help="also render the MuJoCo C episodes here")
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--which", choices=("latest", "best"), default="latest")
    args = parser.parse_args(argv)

    from wildrobot.eval import UsageError, parse_commands
    from wildrobot.export import export
    from wildrobot.jax_setup import configure_jax
    from wildrobot.runs import LoadError, evaluation_env, load_run

    configure_jax()
    try:
        commands = parse_commands(args.commands) if args.commands else None
        commands = np.asarray(DEFAULT_COMMANDS, np.float32) if commands is None else commands
        loaded = load_run(args.run, args.step, args.which)
        if loaded.cfg.env.name != "wildrobot":
            raise UsageError(f"sim-to-sim needs a robot model; this run trained env '{loaded.cfg.env.name}'")
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = args.onnx or export(loaded, Path(tmp) / "policy.onnx")[0]
            steps = max(1, int(round(args.seconds / loaded.env.dt)))
            c_runs, mjx = compare(loaded, onnx_path, commands, steps, record=args.video is not None)
    except (LoadError, UsageError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    print(f"Sim-to-sim of {loaded.run_dir} step {loaded.step}: ONNX policy in MuJoCo C vs the JAX policy in MJX, "
          f"{args.seconds:g} s per command, no randomisation/pushes/noise")
    print(format_comparison(c_runs, mjx, loaded.env.dt))
    if args.video is not None:
        from wildrobot.render import NoRenderer

        try:
            print(f"Video: {render_mujoco_video(c_runs, evaluation_env(loaded, backend='mjx'), args.video, args.seconds)}")
        except NoRenderer as e:
            print(f"Video: skipped: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
