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
two simulators apart). Both start at the home keyframe facing +x at rest, with randomisation,
pushes, sensor noise and the reset's joint noise and random heading off (``comparison_env``); in
MuJoCo C the automatic reset is off, so a blow-up ends the episode (printed "BLEW UP") as in the env.
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
    fell: bool  # a fall, or a blow-up (nonfinite)
    vx_error: float  # |command vx - measured heading-frame vx|, mean over the episode's steps
    yaw_rate_error: float
    nonfinite: bool = False  # the simulation blew up (non-finite state), which ended the episode
    qpos: Optional[np.ndarray] = None  # (steps + 1, nq) when recorded
    qvel: Optional[np.ndarray] = None
    observations: Optional[np.ndarray] = None  # (steps + 1, obs size): what the policy was shown, when recorded


def onnx_policy(onnx_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One observation in, one action out, through onnxruntime (the robot's inference path)."""
    from wildrobot.export import onnx_session

    sess = onnx_session(onnx_path)
    return lambda obs: sess.run(["action"], {"obs": np.asarray(obs, np.float32)[None]})[0][0]


def check_onnx_fits(onnx_path: Path, env: Any) -> None:
    """A ValueError unless the ONNX policy reads the env's actor observation and writes its action
    (another run's export, or another robot's, would fail deep inside onnxruntime)."""
    from wildrobot.export import onnx_session

    try:
        sess = onnx_session(onnx_path)
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors for a file that is no model
        raise ValueError(f"{onnx_path}: not an ONNX policy onnxruntime can load ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]})") from None
    inputs, outputs = {i.name: i.shape for i in sess.get_inputs()}, {o.name: o.shape for o in sess.get_outputs()}
    want_obs, want_act = env.observation["actor"].size, env.action_size
    if "obs" not in inputs or "action" not in outputs or inputs["obs"][-1] != want_obs or outputs["action"][-1] != want_act:
        raise ValueError(f"{onnx_path} maps inputs {inputs} to outputs {outputs}, but this run's policy reads an "
                         f"observation of {want_obs} (input 'obs') and writes {want_act} actions (output 'action'): "
                         f"export this run (python -m wildrobot.export <run>) or leave --onnx out")


def mujoco_model(env: Any):
    """A copy of the env's plain MuJoCo model with MuJoCo's automatic reset off: a blow-up then
    leaves non-finite values (which end the episode, as in the env) instead of silently restarting
    the simulation from the model's default pose."""
    import copy

    import mujoco

    model = copy.copy(env.mj_model)
    model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_AUTORESET)
    return model


def run_mujoco(env: Any, policy: Callable[[np.ndarray], np.ndarray], command: Sequence[float], steps: int,
               record: bool = False, start: Optional[tuple[np.ndarray, np.ndarray]] = None) -> Episode:
    """One episode in MuJoCo C, from the home keyframe at rest (or ``start``: (qpos, qvel)); stops
    at the first fall or blow-up. ``record``: keep the states and the observations."""
    import mujoco

    if not hasattr(env, "mujoco_observer"):
        raise ValueError(f"env '{env.cfg.name}' cannot compute its observation from plain MuJoCo (no mujoco_observer)")
    model = mujoco_model(env)
    data = mujoco.MjData(model)
    if start is None:
        key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, env.desc.home_keyframe)
        mujoco.mj_resetDataKeyframe(model, data, key)
    else:
        qpos, qvel = (np.asarray(x, np.float64) for x in start)
        if qpos.shape != (model.nq,) or qvel.shape != (model.nv,):
            raise ValueError(f"start: qpos and qvel of shapes ({model.nq},) and ({model.nv},) expected; got "
                             f"{qpos.shape} and {qvel.shape}")
        data.qpos[:], data.qvel[:] = qpos, qvel
    mujoco.mj_forward(model, data)
    observer = env.mujoco_observer()
    observer.reset(np.asarray(command, np.float32))
    substeps = int(env.cfg.sim.substeps)
    command = np.asarray(command, np.float64)

    obs, _, fell = observer.observe(data)
    vx_err, yaw_err = [], []
    nonfinite = False
    frames = [(data.qpos.copy(), data.qvel.copy(), obs)] if record else None
    for _ in range(steps):
        data.ctrl[:] = observer.ctrl(policy(obs))
        mujoco.mj_step(model, data, nstep=substeps)
        obs, q, fell = observer.observe(data)
        if not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))):
            # as the env: a blow-up ends the episode, and its step's errors read 0
            nonfinite = fell = True
            vx_err.append(0.0)
            yaw_err.append(0.0)
        else:
            vx_err.append(abs(command[0] - float(q["base_vel_heading"][0])))
            yaw_err.append(abs(command[2] - float(q["yaw_rate"])))
        if record:
            frames.append((data.qpos.copy(), data.qvel.copy(), obs))
        if fell:
            break
    return Episode(command=command, steps=len(vx_err), fell=bool(fell), vx_error=float(np.mean(vx_err)),
                   yaw_rate_error=float(np.mean(yaw_err)), nonfinite=nonfinite,
                   qpos=np.stack([f[0] for f in frames]) if record else None,
                   qvel=np.stack([f[1] for f in frames]) if record else None,
                   observations=np.stack([f[2] for f in frames]) if record else None)


def comparison_env(loaded: Any) -> Any:
    """The run's env for sim-to-sim: MJX physics, randomisation, pushes and noise off, and every
    episode starting where the MuJoCo C episodes start, at the home keyframe facing +x at rest
    (reset joint noise 0, no random heading)."""
    import dataclasses

    from wildrobot.envs.factory import evaluation_config, make_env

    cfg = evaluation_config(loaded.cfg.env)
    if not hasattr(cfg, "reset") or not hasattr(cfg, "sim"):
        raise ValueError(f"sim-to-sim needs a robot env; this run trained env '{loaded.cfg.env.name}'")
    return make_env(dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, backend="mjx"),
                                        reset=dataclasses.replace(cfg.reset, joint_noise=0.0, random_heading=False)))


def compare(loaded: Any, onnx_path: Path, commands: np.ndarray, steps: int,
            record: bool = False) -> tuple[list[Episode], Any]:
    """(MuJoCo C episodes, MJX ``EvalResults``) for the same commands and episode length, both
    from the same start (``comparison_env``)."""
    import jax

    from wildrobot.eval import evaluate_policy

    env = comparison_env(loaded)
    policy = onnx_policy(onnx_path)
    c_runs = [run_mujoco(env, policy, cmd, steps, record=record) for cmd in commands]
    mjx_runs = evaluate_policy(loaded, commands, episodes=1, key=jax.random.key(0), steps=steps, record=record,
                               env=env)
    return c_runs, mjx_runs


def format_comparison(c_runs: Sequence[Episode], mjx: Any, dt: float) -> str:
    pc = mjx.per_command()
    head = (f"{'command (vx vy yaw)':<22}| {'MuJoCo C: up s':>14} {'vx err':>7} {'yaw err':>7} "
            f"| {'MJX: up s':>9} {'vx err':>7} {'yaw err':>7}")
    lines = [head, "-" * len(head)]
    for i, ep in enumerate(c_runs):
        cmd = " ".join(f"{x:+.2f}" for x in ep.command)
        c_up = f"{ep.steps * dt:.1f}" + (" BLEW UP" if ep.nonfinite else " FELL" if ep.fell else "")
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
    from wildrobot.runs import LoadError, load_run

    configure_jax()
    try:
        if args.onnx is not None and not args.onnx.is_file():
            raise UsageError(f"--onnx {args.onnx}: no such file. Give a policy that wildrobot.export wrote, or leave "
                             f"--onnx out to export this run's policy now.")
        commands = parse_commands(args.commands) if args.commands else None
        commands = np.asarray(DEFAULT_COMMANDS, np.float32) if commands is None else commands
        loaded = load_run(args.run, args.step, args.which)
        if loaded.cfg.env.name != "wildrobot":
            raise UsageError(f"sim-to-sim needs a robot model; this run trained env '{loaded.cfg.env.name}'")
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = args.onnx or export(loaded, Path(tmp) / "policy.onnx")[0]
            check_onnx_fits(onnx_path, loaded.env)
            steps = max(1, int(round(args.seconds / loaded.env.dt)))
            c_runs, mjx = compare(loaded, onnx_path, commands, steps, record=args.video is not None)
    except (LoadError, UsageError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    print(f"Sim-to-sim of {loaded.run_dir} step {loaded.step}: ONNX policy in MuJoCo C vs the JAX policy in MJX, "
          f"{args.seconds:g} s per command from the home keyframe at rest, no randomisation/pushes/noise")
    print(format_comparison(c_runs, mjx, loaded.env.dt))
    if args.video is not None:
        from wildrobot.render import NoRenderer

        try:
            print(f"Video: {render_mujoco_video(c_runs, comparison_env(loaded), args.video, args.seconds)}")
        except NoRenderer as e:
            print(f"Video: skipped: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
