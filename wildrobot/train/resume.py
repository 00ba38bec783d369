"""Resume: which run and checkpoint ``trainer.resume`` names, whether this config can continue it,
and restoring its state.

``trainer.resume`` takes ``latest`` (the newest run with checkpoints under ``outputs/`` or
``multirun/``), a run directory, its ``checkpoints/`` folder or one checkpoint
(``checkpoints/{latest,best}/<step>``). The tools that load a trained run (``wildrobot.runs``)
read run paths the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, NamedTuple, Optional

from wildrobot.config import Config, upgrade_stored
from wildrobot.envs.core import PHYSICS_NAMES
from wildrobot.errors import ConfigError
from wildrobot.train.checkpoint import Checkpointer, CheckpointError, saved_steps

log = logging.getLogger(__name__)

# Config keys whose change on resume is expected (budget, cadence, where to resume from, and on how
# many devices: a checkpoint restores onto any placement, and PPO's minibatches are then shuffled
# within the new count's groups of envs; the machine a preset is sized for, which only a note reads).
RESUME_FREE_KEYS = ("trainer.iterations", "trainer.log_every", "trainer.checkpoint_every", "trainer.eval_every",
                    "trainer.keep_checkpoints", "trainer.resume", "trainer.progress", "trainer.mode",
                    "trainer.devices", "trainer.sized_for")


class RunLocation(NamedTuple):
    run_dir: Path
    step: Optional[int]  # None: the newest
    which: str  # "latest" | "best"
    own: bool = False  # the run directory this process was started in (no trainer.resume)


def own_checkpoints(run_dir: Path) -> Optional[RunLocation]:
    """A run started in a directory that already holds its checkpoints continues them: a SLURM job
    requeued after preemption (submitit resubmits the same config into the same directory), or a
    rerun with the same ``hydra.run.dir``. None for a new directory."""
    if saved_steps(Path(run_dir) / "checkpoints").get("latest"):
        return RunLocation(Path(run_dir).absolute(), None, "latest", own=True)
    return None


def resolve_resume(spec: str, search_root: Path, current_run_dir: Path,
                   option: str = "trainer.resume") -> RunLocation:
    """``trainer.resume`` (or another ``option`` naming a run) -> where its checkpoints are."""
    if spec == "latest":
        candidates = []
        for pattern in ("outputs/*/*/checkpoints", "multirun/*/*/*/checkpoints"):
            for d in search_root.glob(pattern):
                steps = saved_steps(d).get("latest", [])
                if steps and d.parent.resolve() != current_run_dir.resolve():
                    candidates.append((max((d / "latest" / str(s)).stat().st_mtime for s in steps), d.parent))
        if not candidates:
            raise ConfigError(f"{option}=latest: no run with checkpoints under {search_root}/outputs or "
                              f"{search_root}/multirun. Pass a run directory instead.")
        return RunLocation(max(candidates)[1], None, "latest")
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = search_root / path
    if not path.exists():
        raise ConfigError(f"{option}={spec!r}: {path} does not exist. Give a run directory (it holds "
                          f"checkpoints/), a checkpoint directory (checkpoints/latest/<step>), or 'latest'.")
    path = path.resolve()
    if path.name.isdigit() and path.parent.name in ("latest", "best"):
        return RunLocation(path.parent.parent.parent, int(path.name), path.parent.name)
    if path.name in ("latest", "best") and path.parent.name == "checkpoints":
        return RunLocation(path.parent.parent, None, path.name)
    if path.name == "checkpoints":
        return RunLocation(path.parent, None, "latest")
    if (path / "checkpoints").is_dir():
        return RunLocation(path, None, "latest")
    raise ConfigError(f"{option}={spec!r}: {path} holds no checkpoints/ folder. Give the run directory "
                      f"that a training run wrote (with checkpoints/ inside), a checkpoint directory, or 'latest'.")


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if dataclasses.is_dataclass(d):
        d = dataclasses.asdict(d)
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(d) if isinstance(d, tuple) else d}


def _schema_defaults(cfg: Config) -> dict[str, Any]:
    """Each key's schema default for ``cfg``'s env and algorithm: what a stored config without the
    key (written before the key existed) is read as (``wildrobot.config.config_from_dict``)."""
    from wildrobot.config import ALGO_SCHEMAS, TrainerConfig, env_schemas

    try:
        schemas = {"env": env_schemas()[cfg.env.name](), "algo": ALGO_SCHEMAS[cfg.algo.name](),
                   "trainer": TrainerConfig()}
    except (KeyError, TypeError):  # a registered schema with required fields: no defaults to offer
        return {}
    return flatten(schemas)


_ABSENT = "<absent>"


def _differing(stored: dict, current: Config) -> list[tuple[str, Any, Any, bool]]:
    """(key, the checkpoint's value, this config's, whether the checkpoint lacks the key) for each key
    that differs; a key the checkpoint lacks counts as its schema default, one renamed since as its new name."""
    old, new, defaults = flatten(upgrade_stored(stored)), flatten(current), _schema_defaults(current)
    rows = []
    for k in sorted(set(old) | set(new)):
        absent = k not in old and k in defaults
        before = defaults[k] if absent else old.get(k, _ABSENT)
        if k not in RESUME_FREE_KEYS and before != new.get(k, _ABSENT):
            rows.append((k, before, new.get(k, _ABSENT), absent))
    return rows


def _lines(rows: list[tuple[str, Any, Any, bool]]) -> list[str]:
    return [f"{k}: checkpoint {before!r}{' (a key newer than the checkpoint: its default)' if absent else ''} "
            f"vs now {now!r}" for k, before, now, absent in rows]


def _overrides(rows: list[tuple[str, Any, Any, bool]]) -> list[str]:
    return [f"{k}={override_value(before)}" for k, before, now, _ in rows if before != _ABSENT and now != _ABSENT]


def config_differences(stored: dict, current: Config) -> list[str]:
    return _lines(_differing(stored, current))


def override_value(v: Any) -> str:
    """``v`` as a Hydra command-line value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    if isinstance(v, str) and not v.replace("_", "").replace(".", "").replace("/", "").replace("-", "").isalnum():
        return "'" + v.replace("'", "\\'") + "'"
    return str(v)


def checkpoint_overrides(stored: dict, current: Config) -> list[str]:
    """The overrides that give this config the checkpoint's values where they differ (keys the
    checkpoint has and this version still knows)."""
    return _overrides(_differing(stored, current))


def check_resumable(meta: dict, cfg: Config, physics: str) -> list[tuple[str, Any, Any, bool]]:
    """Refuse a checkpoint of another env, algorithm or physics engine (with the override that
    continues it); the other config keys that differ (``_differing``'s rows), for the log and the shape error."""
    if meta.get("env") != cfg.env.name or meta.get("algo") != cfg.algo.name:
        raise CheckpointError(
            f"the checkpoint was written by env '{meta.get('env')}' with algo '{meta.get('algo')}', "
            f"but this run is env '{cfg.env.name}' with algo '{cfg.algo.name}'. "
            f"Resume with env={meta.get('env')} algo={meta.get('algo')}.")
    # Checkpoints from before the MuJoCo C backend have no "physics": they all stepped MJX.
    saved = meta.get("physics", "mjx" if physics else "")
    if physics and saved and saved != physics:
        raise CheckpointError(
            f"the checkpoint's env state was stepped by {PHYSICS_NAMES.get(saved, saved)}, but this run's "
            f"physics is {PHYSICS_NAMES.get(physics, physics)} (env.sim.backend=auto picks MuJoCo C on a CPU "
            f"and MJX on a GPU), and one cannot continue the other's state. Resume with "
            f"env.sim.backend={saved}, or evaluate or export the run's policy, which does not need it.")
    return _differing(meta.get("config", {}), cfg)


def restore_for_resume(ckpt: Checkpointer, location: RunLocation, abstract: Any, cfg: Config,
                       physics: str) -> tuple[Any, int]:
    """(carry, iteration) of the checkpoint ``location`` names, restored onto ``abstract``."""
    meta = ckpt.newest_meta(location.which, location.step)
    rows = check_resumable(meta, cfg, physics) if meta is not None else []  # None: restore says what is wrong
    diff, as_written = _lines(rows), " ".join(_overrides(rows))
    as_written = f"\nThe checkpoint's values, as overrides: {as_written}" if as_written else ""
    if location.own and diff:
        raise ConfigError(
            f"the run directory {location.run_dir} holds the checkpoints of a run with another config, which a run "
            f"started there would continue (as a requeued job does with its own). Keys that differ:\n  "
            + "\n  ".join(diff) + as_written + f"\nGive this run a new directory (hydra.run.dir=...), or continue "
            f"that run with its config{' (those overrides)' if as_written else ''} (trainer.resume={location.run_dir} "
            f"to continue it with this one).")
    carry, _, start = ckpt.restore_newest(abstract, step=location.step, manager=location.which,
                                          config_diff=("\nKeys that differ:\n  " + "\n  ".join(diff) + as_written)
                                          if diff else "")
    if diff:
        log.warning("resuming with a config that differs from the checkpoint's:\n  %s", "\n  ".join(diff))
    budget = (meta or {}).get("config", {}).get("trainer", {}).get("iterations")
    if getattr(cfg.algo, "lr_schedule", None) == "linear" and budget and budget != cfg.trainer.iterations:
        lr = cfg.algo.learning_rate
        log.warning("the linear learning-rate schedule decays to 0 over trainer.iterations, which the run was started "
                    "with as %d and is now %d: from iteration %d its rate is %.3g (it was going to be %.3g)",
                    budget, cfg.trainer.iterations, start, lr * max(0.0, 1 - start / cfg.trainer.iterations),
                    lr * max(0.0, 1 - start / budget))
    return carry, start
