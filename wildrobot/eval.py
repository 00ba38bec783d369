"""Evaluate a trained policy: deterministic episodes over fixed commands, a table, a video.

    uv run python -m wildrobot.eval <run dir or checkpoint> [--episodes N] [--commands grid|"vx,vy,yaw;..."]
        [--video PATH|none] [--json PATH|none] [--step N] [--which latest|best] [--steps N]
        [--video-seconds S] [--seed N] [--reference MOTION_DATASET]

(The older ``key=value`` form, ``run=<run> episodes=4 randomize=true ...``, is read too.) Everything else (env,
network sizes, normaliser) comes from the config stored in the checkpoint.
Evaluation switches domain randomisation, pushes and sensor noise off, fixes one command per
episode (no resampling), runs the deterministic policy on one env per (command, episode) in one
jitted batch for the full episode length (``wildrobot.algos.evaluation.run_episodes``, the
rollout training-time evaluation uses), and reports per command and overall: return, length,
falls, tracking errors and mean velocities, every reward term's episode sum (and ``imitation/*``
metrics when the env reports them), and the joints whose action the policy holds at its limit;
with ``--reference``, the policy's gait next to a reference motion's (``compare_gaits``,
docs/motions.md). ``evaluate_policy`` is the reusable part (benchmarks call it directly).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

# Metrics accumulated per episode: sums for reward terms, the mean over the episode's steps for the
# others; a command's figure is then the mean over its episodes (each episode weighing the same).
SUMMED_PREFIXES = ("reward/",)
AVERAGED_PREFIXES = ("tracking/", "velocity/", "imitation/")
# Share of an episode's steps on which an action component sat at its limit (|a| >= 1; the policy's
# action, not the servo target, which a joint range can cut before |a| = 1): a joint that the policy
# keeps there needs a larger action scale (or the task asks more than it can give).
AT_LIMIT_PREFIX = "action_at_limit/"
AT_LIMIT_REPORTED = 0.05  # the table lists joints at their limit on at least this share of some command's steps


class UsageError(ValueError):
    """A bad command line; the message says which argument and what is expected."""


# ------------------------------------------------------------------------------------------------
# the evaluation
@dataclass
class EvalResults:
    env_name: str
    step: int
    commands: np.ndarray  # (C, command size)
    labels: tuple[str, ...]  # names of the command components
    episodes: int
    steps: int  # control steps per episode (the limit)
    dt: float
    per_episode: dict[str, np.ndarray]  # each (C, episodes)
    disturbances: tuple[str, ...] = ()  # the env's disturbance groups switched on (randomization, push, noise)
    recording: Optional[dict[str, np.ndarray]] = field(default=None, repr=False)  # video rollout

    @property
    def reward_terms(self) -> list[str]:
        return [k for k in self.per_episode if k.startswith(SUMMED_PREFIXES)]

    @property
    def averaged(self) -> list[str]:
        return [k for k in self.per_episode if k.startswith(AVERAGED_PREFIXES)]

    @property
    def actions_at_limit(self) -> list[str]:
        return [k for k in self.per_episode if k.startswith(AT_LIMIT_PREFIX)]

    def per_command(self) -> dict[str, np.ndarray]:
        return {k: v.mean(axis=1) for k, v in self.per_episode.items()}

    def overall(self) -> dict[str, float]:
        return {k: float(v.mean()) for k, v in self.per_episode.items()}

    def to_dict(self) -> dict[str, Any]:
        pc = self.per_command()
        return {
            "env": self.env_name,
            "step": self.step,
            "episodes_per_command": self.episodes,
            "episode_steps": self.steps,
            "dt": self.dt,
            "disturbances": list(self.disturbances),
            "command_labels": list(self.labels),
            "overall": self.overall(),
            "per_command": [
                {"command": [float(x) for x in c], **{k: float(v[i]) for k, v in pc.items()}}
                for i, c in enumerate(self.commands)
            ],
        }


def default_commands(env: Any, env_name: str) -> np.ndarray:
    """The env's own evaluation commands (``Env.evaluation_commands``)."""
    commands = env.evaluation_commands
    if not commands:
        raise UsageError(f"env '{env_name}' has no default evaluation commands; pass --commands")
    return np.asarray(commands, np.float32)


def evaluate_policy(loaded: Any, commands: Optional[np.ndarray] = None, episodes: int = 1, key: Any = None,
                    steps: Optional[int] = None, record: bool = False, env: Any = None) -> EvalResults:
    """Run ``episodes`` deterministic episodes per command, all in one jitted batch.

    ``loaded``: a ``wildrobot.runs.LoadedRun``; ``env``: the env to run (default: the run's, with
    randomisation, pushes and noise off). Episodes stop counting at their first termination (a
    fall or a blow-up); there is no auto-reset. ``record``: also keep the physics state (qpos, qvel)
    of each command's first episode for a video.
    """
    from wildrobot.runs import evaluation_env, policy_of

    env = env if env is not None else evaluation_env(loaded)
    grid = GridEvaluation(env, policy_of(loaded), loaded.cfg.env.name, commands, episodes, steps, record)
    return grid(loaded.state.params, loaded.state.obs_stats, key, step=loaded.step)


class GridEvaluation:
    """``episodes`` deterministic episodes per command of ``policy`` on ``env``, compiled once and
    run for any parameters (``evaluate_policy`` for a saved run; a benchmark during training)."""

    def __init__(self, env: Any, policy: Any, env_name: str, commands: Optional[np.ndarray] = None,
                 episodes: int = 1, steps: Optional[int] = None, record: bool = False):
        import jax

        from wildrobot.algos.evaluation import run_episodes
        from wildrobot.envs.factory import disturbances_on

        self.env, self.env_name = env, env_name
        self.disturbances = disturbances_on(env.cfg) if hasattr(env, "cfg") else ()
        self.labels = tuple(env.command_labels)
        self.commands = default_commands(env, env_name) if commands is None else np.asarray(commands, np.float32)
        if self.commands.ndim != 2 or self.commands.shape[1] != len(self.labels):
            raise UsageError(f"commands must have {len(self.labels)} components each ({', '.join(self.labels)}) for "
                             f"env '{env_name}'; got shape {self.commands.shape}")
        if episodes < 1:
            raise UsageError(f"episodes must be >= 1; got {episodes}")
        self.episodes = episodes
        self.steps = int(steps or env.episode_length)
        self.record = record and hasattr(jax.eval_shape(env.reset, jax.random.key(0)).data, "qpos")
        self.recorded = np.arange(self.commands.shape[0]) * episodes  # each command's first episode
        recorded, steps_ = self.recorded, self.steps

        def rollout(params, obs_stats, keys, cmds):
            snapshot = (lambda s: (s.data.qpos[recorded], s.data.qvel[recorded])) if self.record else None
            return run_episodes(env, lambda obs: policy(params, obs_stats, obs), keys, steps_, cmds,
                                summed=SUMMED_PREFIXES + AVERAGED_PREFIXES, record=snapshot)

        self._rollout = jax.jit(rollout)

    def __call__(self, params: Any, obs_stats: Any, key: Any = None, step: int = 0) -> EvalResults:
        import jax
        import jax.numpy as jnp

        n_cmd, episodes, env = self.commands.shape[0], self.episodes, self.env
        key = jax.random.key(0) if key is None else key
        batch_commands = jnp.asarray(np.repeat(self.commands, episodes, axis=0))  # command-major
        keys = jax.random.split(key, n_cmd * episodes)
        totals, replay = self._rollout(params, obs_stats, keys, batch_commands)
        totals = jax.device_get(totals)
        at_limit = np.asarray(totals.pop("at_limit"), np.float64).reshape(n_cmd, episodes, -1)
        totals = {k: np.asarray(v, np.float64).reshape(n_cmd, episodes) for k, v in totals.items()}
        length = np.maximum(totals["length"], 1.0)
        per_episode = {"return": totals["return"], "length": totals["length"], "fall": totals["fall"]}
        for k in sorted(totals):
            if k.startswith(AVERAGED_PREFIXES):
                per_episode[k] = totals[k] / length
        for k in sorted(totals):
            if k.startswith(SUMMED_PREFIXES):
                per_episode[k] = totals[k]
        for j, joint in enumerate(env.action_names):
            per_episode[AT_LIMIT_PREFIX + joint] = at_limit[..., j] / length
        recording = None
        if self.record:
            first, ((qpos, qvel), alive) = jax.device_get(replay)
            recording = {
                "qpos": np.concatenate([first[0][None], qpos]),  # (steps + 1, C, nq)
                "qvel": np.concatenate([first[1][None], qvel]),
                "alive": np.concatenate([np.ones((1, n_cmd)), alive[:, self.recorded]]),  # alive before the step
            }
        return EvalResults(env_name=self.env_name, step=int(step), commands=self.commands, labels=self.labels,
                           episodes=episodes, steps=self.steps, dt=float(env.dt), per_episode=per_episode,
                           disturbances=self.disturbances, recording=recording)


# ------------------------------------------------------------------------------------------------
# the gait next to a reference motion
def compare_gaits(res: EvalResults, env: Any, dataset: str | Path, tolerance: float = 0.05) -> list[dict]:
    """For each evaluated command with a reference clip of (nearly) the same command in ``dataset``:
    ``wildrobot.motions.compare.compare_with_clip`` of the command's first episode (while it stood)."""
    from wildrobot.motions.compare import compare_with_clip, nearest_clip
    from wildrobot.motions.loader import load_dataset
    from wildrobot.motions.model import RobotModel

    if res.recording is None:
        raise UsageError("comparing with a reference needs the episodes' states (evaluate_policy(record=True))")
    robot = RobotModel(env.desc)
    clips = [c for c, _ in load_dataset(dataset, env.desc)]
    out = []
    for i, command in enumerate(res.commands):
        clip = nearest_clip(clips, command, tolerance)
        if clip is None:
            continue
        alive = int(np.sum(res.recording["alive"][:, i] > 0))
        row = compare_with_clip(res.recording["qpos"][:alive, i], 1.0 / res.dt, clip, robot)
        if row is not None:
            out.append({"command": [float(x) for x in command], **row})
    return out


def format_gait_table(rows: list[dict]) -> str:
    if not rows:
        return "Gait vs reference: no reference clip matches the evaluated commands"
    head = (f"{'command':<18} {'reference':<34} {'DTW':>6} {'Frechet':>8} {'RMS':>6}  "
            f"{'cadence':>13} {'stride m':>13} {'duty':>11} {'clear mm':>11}")
    lines = ["Gait vs reference (joint angles, rad; policy / reference):", head, "-" * len(head)]
    for r in rows:
        p, q = r["policy"], r["reference_gait"]
        lines.append(f"{_command_text(np.asarray(r['command'])):<18} {r['reference']:<34} {r['dtw']:6.3f} "
                     f"{r['frechet']:8.3f} {r['joint_rms']:6.3f}  {p['cadence']:5.2f} / {q['cadence']:5.2f} "
                     f"{p['stride_length']:5.3f} / {q['stride_length']:5.3f} {p['duty_factor']:4.2f} / "
                     f"{q['duty_factor']:4.2f} {1000 * p['swing_clearance']:4.0f} / {1000 * q['swing_clearance']:4.0f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# the table
def _fmt(x: float, width: int = 8) -> str:
    return " " + _fmt_number(x, width - 1)  # a space keeps wide numbers apart


def _fmt_number(x: float, width: int) -> str:
    if not math.isfinite(x):
        return f"{'nan':>{width}}"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:>{width}.0e}"
    return f"{x:>{width}.{3 if abs(x) < 10 else 1}f}"


def _command_text(c: np.ndarray) -> str:
    return " ".join(f"{x:+.2f}" for x in c)


def _short(metric: str) -> str:
    return metric.split("/", 1)[1].removesuffix("_error") + (" err" if metric.endswith("_error") else "")


def format_table(res: EvalResults) -> str:
    pc, ov = res.per_command(), res.overall()
    cmd_w = max(len(" ".join(res.labels)) + 2, 7 * len(res.labels))
    cols = ["return", "length", "falls %"] + [_short(k) for k in res.averaged]
    widths = [max(9, len(c) + 1) for c in cols]
    head = f"{'#':>3}  {'(' + ' '.join(res.labels) + ')':<{cmd_w}}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths))
    lines = [f"Evaluation of {res.env_name} at step {res.step}: {len(res.commands)} commands x {res.episodes} "
             f"episode(s), {res.steps} steps ({res.steps * res.dt:.1f} s) each, deterministic policy, "
             + (f"{', '.join(res.disturbances)} on" if res.disturbances else "no randomisation/pushes/noise"),
             head, "-" * len(head)]

    def row(idx: str, cmd: str, vals: dict[str, float]) -> str:
        cells = [_fmt(vals["return"], widths[0]), f"{vals['length']:>{widths[1]}.1f}",
                 f"{100.0 * vals['fall']:>{widths[2]}.1f}"]
        cells += [_fmt(vals[k], w) for k, w in zip(res.averaged, widths[3:])]
        return f"{idx:>3}  {cmd:<{cmd_w}}" + "".join(cells)

    for i, c in enumerate(res.commands):
        lines.append(row(str(i + 1), _command_text(c), {k: v[i] for k, v in pc.items()}))
    lines.append("-" * len(head))
    lines.append(row("", "overall", ov))
    if res.reward_terms:
        lines += ["", "Reward terms: episode sums (mean over episodes), per command # and overall"]
        lines += _per_command_rows("term", res.reward_terms, pc, ov)
    if res.actions_at_limit:
        shown = [k for k in res.actions_at_limit if pc[k].max() >= AT_LIMIT_REPORTED]
        share = f"{100 * AT_LIMIT_REPORTED:.0f} %"
        if shown:
            lines += ["", f"Actions at their limit (% of steps with |action| = 1), per command # and overall; "
                          f"joints at it on >= {share} of some command's steps"]
            lines += _per_command_rows("joint", shown, pc, ov, percent=True)
        else:
            lines += ["", f"Actions at their limit: no joint on >= {share} of any command's steps"]
    return "\n".join(lines)


def _per_command_rows(label: str, keys: list[str], pc: dict[str, np.ndarray], ov: dict[str, float],
                      percent: bool = False) -> list[str]:
    """A header and one row per metric (named without its prefix): a column per command, then overall."""
    cell = (lambda x, w=8: f"{100.0 * x:>{w}.1f}") if percent else _fmt
    names = [key.split("/", 1)[1] for key in keys]
    name_w = max(len(label), *(len(n) for n in names)) + 2
    head = f"{label:<{name_w}}" + "".join(f"{'#' + str(i + 1):>8}" for i in range(len(pc[keys[0]]))) + f"{'overall':>9}"
    rows = [head, "-" * len(head)]
    for key, name in zip(keys, names):
        rows.append(f"{name:<{name_w}}" + "".join(cell(v) for v in pc[key]) + cell(ov[key], 9))
    return rows


# ------------------------------------------------------------------------------------------------
# the video
def _free_joint(model) -> tuple[int, int, int]:
    """(qpos address, dof address, body) of the model's floating base."""
    import mujoco

    for j in range(model.njnt):
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            return int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j]), int(model.jnt_bodyid[j])
    raise ValueError("the model has no floating base to follow")


def render_video(res: EvalResults, model, path: Path, seconds: float = 3.0, width: int = 480, height: int = 320,
                 target_fps: Optional[float] = None) -> Path:
    """Each command's first episode, ``seconds`` long, one after the other, with the command and
    the measured speed (1 s moving average) written on every frame. 25 frames/s for MP4; a GIF
    (no ffmpeg) gets half that, since it stores every frame whole and grows ~1 MB per second."""
    import mujoco

    from wildrobot.envs.frames import heading_velocity
    from wildrobot.render import OffscreenRenderer, Overlay, video_path, write_video

    if target_fps is None:
        target_fps = 25.0 if video_path(path).suffix == ".mp4" else 12.5

    rec = res.recording
    if rec is None:
        raise ValueError("evaluate_policy(..., record=True) keeps the states a video needs")
    qadr, dadr, body = _free_joint(model)
    skip = max(1, round(1.0 / (res.dt * target_fps)))
    fps = 1.0 / (res.dt * skip)
    n = min(rec["qpos"].shape[0], int(round(seconds / res.dt)) + 1)
    velocity, yaw_rate = heading_velocity(rec["qpos"][..., qadr + 3 : qadr + 7], rec["qvel"][..., dadr : dadr + 3],
                                          rec["qvel"][..., dadr + 3 : dadr + 6])
    forward = velocity[..., 0]
    window = max(1, int(round(1.0 / res.dt)))
    data = mujoco.MjData(model)
    frames = []
    with OffscreenRenderer(model, width, height, track_body=body) as renderer:
        for c, cmd in enumerate(res.commands):
            alive = rec["alive"][:n, c] > 0
            last = int(np.nonzero(alive)[0].max()) if alive.any() else 0
            for t in range(0, n, skip):
                tt = min(t, last)  # hold the last frame of an episode that ended
                data.qpos[:], data.qvel[:] = rec["qpos"][tt, c], rec["qvel"][tt, c]
                mujoco.mj_forward(model, data)
                lo = max(0, tt - window + 1)
                status = "FELL" if t > last else ""
                cmd_text = "  ".join(f"{lab} {x:+.2f}" for lab, x in zip(res.labels, cmd))
                overlay = Overlay(
                    "command\nmeasured\ntime",
                    f"{cmd_text}\nvx {forward[lo:tt + 1, c].mean() + 0.0:+.2f} m/s  yaw {yaw_rate[lo:tt + 1, c].mean() + 0.0:+.2f} "
                    f"rad/s\n{t * res.dt:.1f} s  [{c + 1}/{len(res.commands)}] {status}",
                )
                frames.append(renderer.render(data, overlay))
    return write_video(path, frames, fps)


# ------------------------------------------------------------------------------------------------
# the command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - a UsageError, so that main() returns 2 and tests can read it
        raise UsageError(message)


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m wildrobot.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run directory (with checkpoints/), its checkpoints/ folder, or one checkpoint "
                               "directory checkpoints/{latest,best}/<step>")
    p.add_argument("--episodes", type=int, default=1, help="episodes per command (default 1)")
    p.add_argument("--commands", default="grid",
                   help='"grid" (the env\'s own set, default) or e.g. "0.2,0,0;0.4,0,0.5"')
    p.add_argument("--video", default="auto", help="video file (default <run>/eval/<which>_<step>.mp4, .gif "
                                                   "without ffmpeg), or none")
    p.add_argument("--json", default="auto", help="results file (default <run>/eval/<which>_<step>.json), or none")
    p.add_argument("--step", type=int, default=None, help="evaluate this checkpoint step (default: the newest)")
    p.add_argument("--which", choices=("latest", "best"), default="latest", help="checkpoint folder (default latest)")
    p.add_argument("--steps", type=int, default=None, help="control steps per episode (default: the env's episode length)")
    p.add_argument("--video-seconds", type=float, default=3.0, help="seconds of each command's first episode in "
                                                                    "the video (default 3)")
    p.add_argument("--seed", type=int, default=0, help="reset randomness (default 0)")
    p.add_argument("--randomize", action="store_true",
                   help="a robustness evaluation: domain randomisation, pushes, sensor noise and action delay on, as "
                        "the run trained (pushes of env.push.velocity: training's growing kicks, env.push.grow_to, "
                        "are not part of it; the draws fixed by --seed); default: all off")
    p.add_argument("--reference", default=None, help="a motion dataset (folder, manifest or clip) to compare the "
                                                      "policy's gait with, per command, or a shipped one by its path "
                                                      "under wildrobot/motions/data (walk/manifest.yaml; docs/motions.md)")
    return p


_LEGACY = re.compile(
    r"^(run|episodes|commands|video|json|step|which|steps|video_seconds|seed|randomize|reference)=(.*)$", re.S)
_LEGACY_SWITCHES = ("randomize",)  # on/off flags: key=true|false
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def legacy_arguments(argv: Sequence[str]) -> list[str]:
    """``run=<run> episodes=4 randomize=true ...`` (the form of earlier versions) as
    ``<run> --episodes 4 --randomize ...``."""
    out = []
    for a in argv:
        m = _LEGACY.match(a)
        if m is None:
            out.append(a)
        elif m.group(1) == "run":
            out.append(m.group(2))
        elif m.group(1) in _LEGACY_SWITCHES:
            value = m.group(2).strip().lower()
            if value not in _TRUE + _FALSE:
                raise UsageError(f"{m.group(1)}: expected true or false; got {m.group(2)!r}")
            out += ["--" + m.group(1)] if value in _TRUE else []
        else:
            out += ["--" + m.group(1).replace("_", "-"), m.group(2)]
    return out


def parse_commands(text: str) -> Optional[np.ndarray]:
    """'grid' -> None (the env's defaults); "0.2,0,0;0.4,0,0.5" or [[0.2,0,0],[0.4,0,0.5]] -> array."""
    text = text.strip()
    if text in ("", "grid", "default"):
        return None
    try:
        if text.startswith("["):
            rows = json.loads(text)
            rows = rows if rows and isinstance(rows[0], list) else [rows]
        else:
            rows = [[float(x) for x in part.split(",")] for part in text.split(";") if part.strip()]
        arr = np.asarray(rows, np.float32)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise UsageError(f"commands: cannot read {text!r}; write e.g. --commands \"0.2,0,0;0.4,0,0.5\"") from None
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UsageError(f"commands: every command needs the same number of components; got {text!r}")
    return arr


def _default_output(loaded: Any, which: str, suffix: str, randomized: bool = False) -> Path:
    return loaded.run_dir / "eval" / f"{which}_{loaded.step}{'_randomized' if randomized else ''}{suffix}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(legacy_arguments(argv))
        commands = parse_commands(args.commands)
        if args.steps is not None and args.steps < 1:
            raise UsageError(f"--steps must be >= 1; got {args.steps}")
        if args.episodes < 1:
            raise UsageError(f"--episodes must be >= 1; got {args.episodes}")
    except UsageError as e:
        print(f"Error: {e}\n", file=sys.stderr)
        parser.print_usage(sys.stderr)
        return 2

    from wildrobot.jax_setup import configure_jax

    configure_jax()
    import jax

    from wildrobot.motions.clip import MotionError
    from wildrobot.runs import LoadError, evaluation_env, load_run

    try:
        loaded = load_run(args.run, args.step, args.which)
        env = evaluation_env(loaded, disturbed=args.randomize)
        want_video = args.video.lower() != "none"
        has_model = getattr(env, "mj_model", None) is not None
        print(f"Loaded {loaded.run_dir} step {loaded.step} (env {loaded.cfg.env.name}, algo {loaded.cfg.algo.name})"
              + ("; randomisation, pushes, noise and delay as in training" if args.randomize else ""))
        t0 = time.perf_counter()
        if args.reference and not has_model:
            raise UsageError(f"--reference needs a robot env; this run trained env '{loaded.cfg.env.name}'")
        res = evaluate_policy(loaded, commands, args.episodes, jax.random.key(args.seed), args.steps,
                              record=(want_video or bool(args.reference)) and has_model, env=env)
        if args.reference:
            from wildrobot.motions.features import find_dataset

            gait = compare_gaits(res, env, find_dataset(args.reference))
        else:
            gait = None
    except (UsageError, LoadError, MotionError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    n_steps = len(res.commands) * res.episodes * res.steps
    print(f"Ran {n_steps:,} env steps in {time.perf_counter() - t0:.1f} s (compile included)")
    print(format_table(res))
    if gait is not None:
        print()
        print(format_gait_table(gait))

    if args.json.lower() != "none":
        path = Path(args.json) if args.json != "auto" else _default_output(loaded, args.which, ".json", args.randomize)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**res.to_dict(), **({"gait": gait} if gait is not None else {})}, indent=2))
        print(f"Results: {path}")

    if not want_video:
        print("Video: off (--video none)")
    elif not has_model:
        print(f"Video: no video for this env ({loaded.cfg.env.name}: no MuJoCo model)")
    else:
        from wildrobot.render import NoRenderer

        target = Path(args.video) if args.video != "auto" else _default_output(loaded, args.which, ".mp4", args.randomize)
        try:
            t0 = time.perf_counter()
            written = render_video(res, env.mj_model, target, seconds=args.video_seconds)
            print(f"Video: {written} ({time.perf_counter() - t0:.1f} s to render)")
        except NoRenderer as e:
            print(f"Video: skipped: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
