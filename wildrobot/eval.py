"""Evaluate a trained policy: deterministic episodes over fixed commands, a table, a video.

    uv run python -m wildrobot.eval run=<run dir or checkpoint> [episodes=N] [commands=...]
        [video=<path>|none] [json=<path>|none] [step=N] [which=latest|best] [steps=N]
        [video_seconds=S] [seed=N]

Everything else (env, network sizes, normaliser) comes from the config stored in the checkpoint.
Evaluation switches domain randomisation, pushes and sensor noise off, fixes one command per
episode (no resampling), runs the deterministic policy on one env per (command, episode) in one
jitted batch for the full episode length, and reports per command and overall: return, length,
falls, tracking errors and mean velocities, every reward term's episode sum (and ``imitation/*``
metrics when the env reports them), and the joints whose action the policy holds at its limit.
``evaluate_policy`` is the reusable part (benchmarks call it directly).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

# Fixed evaluation commands per env: the WildRobot grid covers the trained speed range and both
# turning directions; the stub's are 2-D velocities inside its command range.
DEFAULT_COMMANDS: dict[str, list[tuple[float, ...]]] = {
    "wildrobot": [(vx, 0.0, yaw) for vx in (0.0, 0.1, 0.2, 0.3, 0.4) for yaw in (-0.5, 0.0, 0.5)],
    "stub": [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.5), (0.8, -0.3)],
}
COMMAND_LABELS: dict[str, tuple[str, ...]] = {"wildrobot": ("vx", "vy", "yaw"), "stub": ("vx", "vy")}
# Metrics accumulated per episode: sums for reward terms, per-step means for the others.
SUMMED_PREFIXES = ("reward/",)
AVERAGED_PREFIXES = ("tracking/", "velocity/", "imitation/")
# Share of an episode's steps on which an action component sat at its limit (|a| = 1): a joint
# that the policy keeps there needs a larger action scale (or the task asks more than it can give).
AT_LIMIT_PREFIX = "action_at_limit/"
AT_LIMIT_REPORTED = 0.05  # the table lists joints at their limit on at least this share of some command's steps

USAGE = """usage: python -m wildrobot.eval run=<run dir or checkpoint> [key=value ...]
  run=PATH            a run directory (with checkpoints/), its checkpoints/ folder, or one
                      checkpoint directory checkpoints/{latest,best}/<step>   (required)
  episodes=N          episodes per command (default 1)
  commands=grid|LIST  'grid' (the env's default set) or e.g. "0.2,0,0;0.4,0,0.5"
  video=PATH|none     video file (default <run>/eval/<which>_<step>.mp4, .gif without ffmpeg)
  json=PATH|none      results as JSON (default <run>/eval/<which>_<step>.json)
  step=N              evaluate this checkpoint step (default: the newest)
  which=latest|best   checkpoint folder (default latest)
  steps=N             control steps per episode (default: the env's episode length)
  video_seconds=S     seconds of each command's first episode in the video (default 3)
  seed=N              reset randomness (default 0)"""


class UsageError(ValueError):
    """A bad command line; the message says which key and what is expected."""


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
            "command_labels": list(self.labels),
            "overall": self.overall(),
            "per_command": [
                {"command": [float(x) for x in c], **{k: float(v[i]) for k, v in pc.items()}}
                for i, c in enumerate(self.commands)
            ],
        }


def _policy_fn(algorithm: Any):
    if not hasattr(algorithm, "deterministic_action"):
        raise UsageError(f"this checkpoint's algorithm ({type(algorithm).__name__}) has no policy to evaluate")
    return algorithm.deterministic_action


def evaluation_env(loaded: Any, backend: str | None = None):
    """The run's env rebuilt with randomisation, pushes and sensor noise off; ``backend`` replaces
    its physics backend (``env.sim.backend``) when given."""
    import dataclasses

    from wildrobot.envs.factory import make_env
    from wildrobot.train.trainers import evaluation_env_config

    cfg = evaluation_env_config(loaded.cfg.env)
    if backend is not None:
        cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, backend=backend))
    return make_env(cfg)


def command_size(env: Any) -> int:
    import jax

    return int(jax.eval_shape(env.reset, jax.random.key(0)).info["command"].shape[-1])


def default_commands(env_name: str) -> np.ndarray:
    if env_name not in DEFAULT_COMMANDS:
        raise UsageError(f"no default evaluation commands for env '{env_name}'; pass commands=...")
    return np.asarray(DEFAULT_COMMANDS[env_name], np.float32)


def evaluate_policy(loaded: Any, commands: Optional[np.ndarray] = None, episodes: int = 1, key: Any = None,
                    steps: Optional[int] = None, record: bool = False, env: Any = None) -> EvalResults:
    """Run ``episodes`` deterministic episodes per command, all in one jitted batch.

    ``loaded``: a ``wildrobot.train.loading.LoadedRun``. Episodes stop counting at their first
    termination (a fall or a blow-up); there is no auto-reset. ``record``: also keep the
    physics state (qpos, qvel) of each command's first episode for a video.
    """
    import jax
    import jax.numpy as jnp

    env = env if env is not None else evaluation_env(loaded)
    name = loaded.cfg.env.name
    commands = default_commands(name) if commands is None else np.asarray(commands, np.float32)
    size = command_size(env)
    if commands.ndim != 2 or commands.shape[1] != size:
        raise UsageError(f"commands must have {size} components each for env '{name}'; got shape {commands.shape}")
    if episodes < 1:
        raise UsageError(f"episodes must be >= 1; got {episodes}")
    steps = int(steps or env.episode_length)
    key = jax.random.key(0) if key is None else key
    n_cmd = commands.shape[0]
    batch_commands = jnp.asarray(np.repeat(commands, episodes, axis=0))  # command-major
    record = record and hasattr(jax.eval_shape(env.reset, jax.random.key(0)).data, "qpos")
    recorded = np.arange(n_cmd) * episodes  # each command's first episode
    policy = _policy_fn(loaded.algorithm)

    def rollout(params, obs_stats, keys, cmds):
        state = jax.vmap(env.reset)(keys)
        state = jax.vmap(env.set_command)(state, cmds)
        keep = [k for k in state.metrics if k.startswith(SUMMED_PREFIXES + AVERAGED_PREFIXES)]
        zeros = jnp.zeros(keys.shape[0])
        totals = {"return": zeros, "length": zeros, "fall": zeros, **{k: zeros for k in keep},
                  "at_limit": jnp.zeros((keys.shape[0], env.action_size))}

        def one_step(carry, _):
            state, alive, totals = carry
            action = policy(params, obs_stats, state.obs["actor"])
            nxt = jax.vmap(env.step)(state, action)
            totals = {
                "return": totals["return"] + alive * nxt.reward,
                "length": totals["length"] + alive,
                "fall": totals["fall"] + alive * nxt.done,  # the env's own done is a termination
                **{k: totals[k] + alive * nxt.metrics[k] for k in keep},
                "at_limit": totals["at_limit"] + alive[:, None] * (jnp.abs(action) >= 1.0),
            }
            frame = (nxt.data.qpos[recorded], nxt.data.qvel[recorded], alive[recorded]) if record else None
            return (nxt, alive * (1.0 - nxt.done), totals), frame

        first = (state.data.qpos[recorded], state.data.qvel[recorded]) if record else None
        (_, _, totals), frames = jax.lax.scan(one_step, (state, jnp.ones_like(zeros), totals), None, length=steps)
        return totals, first, frames

    keys = jax.random.split(key, n_cmd * episodes)
    totals, first, frames = jax.jit(rollout)(loaded.state.params, loaded.state.obs_stats, keys, batch_commands)
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
    if record:
        first, frames = jax.device_get((first, frames))
        recording = {
            "qpos": np.concatenate([first[0][None], frames[0]]),  # (steps + 1, C, nq)
            "qvel": np.concatenate([first[1][None], frames[1]]),
            "alive": np.concatenate([np.ones((1, n_cmd)), frames[2]]),  # alive before the step
        }
    labels = COMMAND_LABELS.get(name, tuple(f"c{i}" for i in range(size)))
    return EvalResults(env_name=name, step=int(loaded.step), commands=commands, labels=labels, episodes=episodes,
                       steps=steps, dt=float(env.dt), per_episode=per_episode, recording=recording)


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
             f"no randomisation/pushes/noise",
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


def heading_velocity(qpos: np.ndarray, qvel: np.ndarray, qadr: int, dadr: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward speed in the heading frame, world yaw rate) of a free joint, over a leading time axis."""
    w, x, y, z = (qpos[..., qadr + 3 + i] for i in range(4))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    v = qvel[..., dadr : dadr + 3]  # world frame (MuJoCo's free joint)
    forward = np.cos(yaw) * v[..., 0] + np.sin(yaw) * v[..., 1]
    ang = qvel[..., dadr + 3 : dadr + 6]  # body frame; world z component = third row of R . w
    r20, r21, r22 = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
    return forward, r20 * ang[..., 0] + r21 * ang[..., 1] + r22 * ang[..., 2]


def render_video(res: EvalResults, model, path: Path, seconds: float = 3.0, width: int = 480, height: int = 320,
                 target_fps: Optional[float] = None) -> Path:
    """Each command's first episode, ``seconds`` long, one after the other, with the command and
    the measured speed (1 s moving average) written on every frame. 25 frames/s for MP4; a GIF
    (no ffmpeg) gets half that, since it stores every frame whole and grows ~1 MB per second."""
    import mujoco

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
    forward, yaw_rate = heading_velocity(rec["qpos"], rec["qvel"], qadr, dadr)
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
KEYS = ("run", "episodes", "commands", "video", "json", "step", "which", "steps", "video_seconds", "seed")


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for a in argv:
        if a in ("-h", "--help", "help"):
            raise UsageError("")
        if "=" not in a:
            raise UsageError(f"expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        k = k.lstrip("-")
        if k not in KEYS:
            raise UsageError(f"unknown key {k!r}; allowed: {', '.join(KEYS)}")
        args[k] = v
    if "run" not in args:
        raise UsageError("run=<run dir or checkpoint> is required")
    return args


def _int(args: dict[str, str], key: str, default: Optional[int]) -> Optional[int]:
    if key not in args:
        return default
    try:
        return int(args[key])
    except ValueError:
        raise UsageError(f"{key} must be an integer; got {args[key]!r}") from None


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
        raise UsageError(f"commands: cannot read {text!r}; write e.g. commands=\"0.2,0,0;0.4,0,0.5\"") from None
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UsageError(f"commands: every command needs the same number of components; got {text!r}")
    return arr


def load_for_eval(path: str, step: Optional[int], which: str):
    from wildrobot.config import ConfigError
    from wildrobot.train.checkpoint import CheckpointError
    from wildrobot.train.loading import load_run

    if which not in ("latest", "best"):
        raise UsageError(f"which must be 'latest' or 'best'; got {which!r}")
    try:
        return load_run(path, step=step, which=which)
    except (ConfigError, CheckpointError, KeyError, ValueError, OSError) as e:
        # load_run words its path errors for training's resume option; here the key is run=.
        msg = str(e).replace("trainer.resume=", "run=")
        raise LoadError(
            f"cannot load a trained policy from {path}: {msg}{_steps_found(path)}\nExpected a run directory written by run.py "
            f"(with checkpoints/latest/<step>/ inside), its checkpoints/ folder, or one checkpoint "
            f"directory checkpoints/{{latest,best}}/<step>."
        ) from None


class LoadError(RuntimeError):
    pass


def _steps_found(path: str) -> str:
    """' (steps found: latest [20, 40], best [40])' for a run directory, else ''."""
    p = Path(path).expanduser()
    for cand in (p, p.parent, p.parent.parent, p.parent.parent.parent):
        ck = cand / "checkpoints" if cand.name != "checkpoints" else cand
        if ck.is_dir():
            found = {w: sorted(int(d.name) for d in (ck / w).glob("*") if d.name.isdigit())
                     for w in ("latest", "best") if (ck / w).is_dir()}
            return " (steps found: " + ", ".join(f"{w} {s}" for w, s in found.items()) + ")" if found else ""
    return ""


def _default_output(loaded: Any, which: str, suffix: str) -> Path:
    return loaded.run_dir / "eval" / f"{which}_{loaded.step}{suffix}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        episodes = _int(args, "episodes", 1)
        step = _int(args, "step", None)
        steps = _int(args, "steps", None)
        seed = _int(args, "seed", 0)
        which = args.get("which", "latest")
        commands = parse_commands(args.get("commands", "grid"))
        try:
            video_seconds = float(args.get("video_seconds", 3.0))
        except ValueError:
            raise UsageError(f"video_seconds must be a number; got {args['video_seconds']!r}") from None
        if steps is not None and steps < 1:
            raise UsageError(f"steps must be >= 1; got {steps}")
    except UsageError as e:
        print(f"Error: {e}\n" if str(e) else "", file=sys.stderr, end="")
        print(USAGE, file=sys.stderr)
        return 2 if str(e) else 0

    from wildrobot.jax_setup import configure_jax

    configure_jax()
    import jax

    try:
        loaded = load_for_eval(args["run"], step, which)
        env = evaluation_env(loaded)
        want_video = args.get("video", "auto").lower() != "none"
        has_model = getattr(env, "mj_model", None) is not None
        print(f"Loaded {loaded.run_dir} step {loaded.step} (env {loaded.cfg.env.name}, algo {loaded.cfg.algo.name})")
        t0 = time.perf_counter()
        res = evaluate_policy(loaded, commands, episodes, jax.random.key(seed), steps,
                              record=want_video and has_model, env=env)
    except (UsageError, LoadError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    n_steps = len(res.commands) * res.episodes * res.steps
    print(f"Ran {n_steps:,} env steps in {time.perf_counter() - t0:.1f} s (compile included)")
    print(format_table(res))

    out_json = args.get("json", "auto")
    if out_json.lower() != "none":
        path = Path(out_json) if out_json != "auto" else _default_output(loaded, which, ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res.to_dict(), indent=2))
        print(f"Results: {path}")

    if not want_video:
        print("Video: off (video=none)")
    elif not has_model:
        print(f"Video: no video for this env ({loaded.cfg.env.name}: no MuJoCo model)")
    else:
        from wildrobot.render import NoRenderer

        target = Path(args["video"]) if args.get("video", "auto") != "auto" else _default_output(loaded, which, ".mp4")
        try:
            t0 = time.perf_counter()
            written = render_video(res, env.mj_model, target, seconds=video_seconds)
            print(f"Video: {written} ({time.perf_counter() - t0:.1f} s to render)")
        except NoRenderer as e:
            print(f"Video: skipped: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
