"""Export a trained actor to ONNX, with what a robot runtime needs to run it in a JSON sidecar.

    uv run python -m wildrobot.export <run dir or checkpoint> --onnx policy.onnx [--json policy.json]
        [--step N] [--which latest|best]

The ONNX graph is the deployable policy exactly as evaluation runs it: raw actor observation in
(the running observation normaliser is folded in), mean action clipped to [-1, 1] out. Input
"obs" [batch, obs size] float32, output "action" [batch, action size].

The sidecar (also stored in the ONNX file's metadata under the key "wildrobot") holds the
observation layout, the action-to-servo mapping (home pose, per-joint scale, joint ranges), the
joint order and hardware signs of the robot description, and the control period; for WildRobot
also the gravity block's convention (the IMU quaternion's order), how older frames start, and that
the joint values are already in the hardware's signs (``WildRobotEnv.deployment_info``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

SIDECAR_FORMAT = "wildrobot-policy/1"
META_KEY = "wildrobot"


def policy_function(loaded: Any):
    """obs [batch, n] -> action [batch, m]: the algorithm's deterministic policy with the trained
    parameters and normaliser closed over (so they become constants of the exported graph)."""
    from wildrobot.runs import policy_of

    policy = policy_of(loaded)
    params, stats = loaded.state.params, loaded.state.obs_stats
    return lambda obs: policy(params, stats, obs)


def onnx_session(onnx_path: Path):
    """An onnxruntime session on the CPU, as a robot runtime runs the policy."""
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def export_onnx(loaded: Any, path: Path) -> Path:
    from jax2onnx import to_onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_obs = loaded.env.observation_size["actor"]
    to_onnx(policy_function(loaded), [("batch", n_obs)], model_name="wildrobot_policy", return_mode="file",
            output_path=str(path), input_names=["obs"], output_names=["action"])
    return path


def observation_layout(env: Any) -> tuple[list[dict], bool]:
    """([{name, start, size, unit}], known): the env's description of its actor observation, or one
    opaque block when the env does not describe it."""
    layout = env.observation_layout
    if layout is not None:
        return [dict(item) for item in layout], True
    return [{"name": "actor", "start": 0, "size": int(env.observation_size["actor"])}], False


def sidecar(loaded: Any, onnx_path: Path) -> dict:
    """Everything a runtime needs besides the ONNX file. Robot facts come from the env (which
    read them from the robot description); envs without a robot give only sizes."""
    from wildrobot.train.checkpoint import git_revision

    env = loaded.env
    layout, known = observation_layout(env)
    deploy = env.deployment_info() if hasattr(env, "deployment_info") else {}
    n_obs, n_act = int(env.observation_size["actor"]), int(env.action_size)
    out = {
        "format": SIDECAR_FORMAT,
        "onnx": Path(onnx_path).name,
        "input": {"name": "obs", "shape": ["batch", n_obs], "dtype": "float32",
                  "note": "raw observation: the observation normaliser is part of the graph"},
        "output": {"name": "action", "shape": ["batch", n_act], "dtype": "float32", "range": [-1.0, 1.0]},
        "observation": {"size": n_obs, "layout_known": known, "layout": layout,
                        **deploy.get("observation", {})},
        "action": {"size": n_act, **deploy.get("action", {})},
        "robot": deploy.get("robot"),
        "control": {"dt": float(env.dt), **deploy.get("control", {})},
        "command": deploy.get("command"),
        "source": {
            "run_dir": str(loaded.run_dir),
            "step": int(loaded.step),
            "env": loaded.cfg.env.name,
            "algo": loaded.cfg.algo.name,
            "git_revision": loaded.meta.get("git_revision", git_revision()),
            "versions": loaded.meta.get("versions", {}),
        },
    }
    return out


def embed_metadata(onnx_path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(model, str(onnx_path))


def onnx_actions(onnx_path: Path, obs: np.ndarray) -> np.ndarray:
    """The ONNX policy's actions for a batch of observations."""
    return onnx_session(onnx_path).run(["action"], {"obs": np.asarray(obs, np.float32)})[0]


def check_against_jax(loaded: Any, onnx_path: Path, samples: int = 1000, seed: int = 0) -> float:
    """Max |ONNX - JAX| action difference on random observations spread around the normaliser's
    range (so the clip at +-10 std and the action clip are exercised too)."""
    import jax

    stats = loaded.state.obs_stats["actor"]
    mean, std = np.asarray(stats.mean), np.sqrt(np.asarray(stats.var) + 1e-8)
    rng = np.random.default_rng(seed)
    obs = (mean + std * rng.normal(0.0, 3.0, (samples, mean.shape[0]))).astype(np.float32)
    expected = np.asarray(jax.jit(policy_function(loaded))(obs))
    return float(np.max(np.abs(onnx_actions(onnx_path, obs) - expected)))


def export(loaded: Any, onnx_path: Path, json_path: Optional[Path] = None) -> tuple[Path, Path, dict]:
    onnx_path = export_onnx(loaded, Path(onnx_path))
    meta = sidecar(loaded, onnx_path)
    embed_metadata(onnx_path, meta)
    json_path = Path(json_path) if json_path else onnx_path.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(meta, indent=2))
    return onnx_path, json_path, meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wildrobot.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory, its checkpoints/ folder, or checkpoints/{latest,best}/<step>")
    parser.add_argument("--onnx", type=Path, required=True, help="where to write the ONNX policy")
    parser.add_argument("--json", type=Path, default=None, help="sidecar path (default: next to the ONNX file, .json)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
    parser.add_argument("--which", choices=("latest", "best"), default="latest")
    args = parser.parse_args(argv)

    from wildrobot.jax_setup import configure_jax
    from wildrobot.runs import LoadError, load_run

    configure_jax()
    try:
        loaded = load_run(args.run, args.step, args.which)
        onnx_path, json_path, meta = export(loaded, args.onnx, args.json)
    except (LoadError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    diff = check_against_jax(loaded, onnx_path)
    print(f"Exported {loaded.run_dir} step {loaded.step} ({loaded.cfg.env.name}, {loaded.cfg.algo.name})")
    print(f"ONNX:    {onnx_path}  (obs {meta['input']['shape'][1]} -> action {meta['output']['shape'][1]})")
    print(f"Sidecar: {json_path}")
    if not meta["observation"]["layout_known"]:
        print(f"Note: env '{loaded.cfg.env.name}' does not describe its observation layout; the sidecar has one block.")
    print(f"Check:   max |ONNX - JAX| action difference on 1000 random observations: {diff:.2e}")
    if diff > 1e-5:
        print("Error: the ONNX policy disagrees with the JAX policy by more than 1e-5", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
