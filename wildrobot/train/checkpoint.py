"""Orbax checkpoints behind one small class.

Layout under a run directory::

    checkpoints/latest/<iteration>/   the newest ``keep`` checkpoints (cadence, end, Ctrl-C)
    checkpoints/best/<iteration>/     the one with the best evaluation metric so far
    checkpoints/superseded/<time>/checkpoints/...   those a resume from an older checkpoint branched away from

Two managers, so keeping the best can never delete the latest. Each checkpoint is one
composite: ``state`` (the algorithm's whole carry) and ``meta`` (JSON: resolved config, package
versions, git revision, env and algo names, iteration, and the state's shape signature).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "mujoco", "mujoco-mjx", "orbax-checkpoint", "hydra-core", "wildrobot")


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that does not fit the current config."""


class StateShapeError(CheckpointError):
    """The checkpoint's train state has another structure than the one this config builds."""


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def state_signature(tree: Any) -> list[str]:
    """'path shape dtype' per leaf: two states with equal signatures can be restored onto each other."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [f"{jax.tree_util.keystr(path)} {tuple(leaf.shape)} {leaf.dtype}" for path, leaf in leaves]


def saved_steps(directory: Path) -> dict[str, list[int]]:
    """{"latest": [...], "best": [...]}: the steps saved under a run's ``checkpoints/`` folder (folders
    named by their step; Orbax writes a checkpoint under a temporary name and renames it when complete)."""
    out = {}
    for which in ("latest", "best"):
        d = Path(directory) / which
        if d.is_dir():
            out[which] = sorted(int(p.name) for p in d.iterdir() if p.name.isdigit() and p.is_dir())
    return out


class Checkpointer:
    def __init__(self, directory: Path, keep: int):
        self.directory = Path(directory).absolute()  # Orbax fails on relative paths in its threads
        options = dict(create=True, cleanup_tmp_directories=True, enable_async_checkpointing=False)
        self.latest = ocp.CheckpointManager(self.directory / "latest", options=ocp.CheckpointManagerOptions(max_to_keep=keep, **options))
        self.best = ocp.CheckpointManager(self.directory / "best", options=ocp.CheckpointManagerOptions(max_to_keep=1, **options))
        self.best_value = self._stored_best_value()

    def _stored_best_value(self) -> float:
        step = self.best.latest_step()
        if step is None:
            return -math.inf
        try:
            meta = self.best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            return float(meta.get("best_value", -math.inf))
        except Exception:  # an unreadable best checkpoint is simply replaced by the next good one
            return -math.inf

    def save(self, step: int, state: Any, meta: dict) -> Path:
        meta = dict(meta, step=step, state_signature=state_signature(state))
        if step not in self.latest.all_steps():
            self.latest.save(step, args=_save_args(state, meta), force=True)
            self.latest.wait_until_finished()
        return self.directory / "latest" / str(step)

    def set_aside_after(self, step: int, stamp: str) -> tuple[Optional[Path], dict[str, list[int]]]:
        """Move every checkpoint of a step after ``step`` (latest and best, readable or not) to
        ``superseded/<stamp>/checkpoints/{latest,best}/`` (a folder that evaluation, export and resume
        read as a run), and reload. A run resumed from an older checkpoint (one
        a user names, or the one before a corrupt newest) branches there: the old branch's newer steps
        would otherwise block its saves at the same steps and be taken for its newest state by the
        next resume. Nothing is deleted. (the folder, {which: steps moved}); (None, {}) when none was newer."""
        moved: dict[str, list[int]] = {}
        folder = self.directory / "superseded" / stamp  # a run folder of its own: eval, export read it
        for which, steps in saved_steps(self.directory).items():
            newer = [s for s in steps if s > step]
            if newer:
                (folder / "checkpoints" / which).mkdir(parents=True, exist_ok=True)
                for s in newer:
                    (self.directory / which / str(s)).rename(folder / "checkpoints" / which / str(s))
                moved[which] = newer
        if moved:
            self.reload()
        return (folder if moved else None), moved

    def reload(self) -> None:
        """Read the folders again (after another process, or ``set_aside_after``, changed them)."""
        self.latest.reload()
        self.best.reload()
        self.best_value = self._stored_best_value()

    def save_if_best(self, step: int, state: Any, meta: dict, value: float) -> bool:
        if not (value > self.best_value):  # also false for NaN
            return False
        self.best_value = value
        meta = dict(meta, step=step, best_value=value, state_signature=state_signature(state))
        self.best.save(step, args=_save_args(state, meta), force=True)
        self.best.wait_until_finished()
        return True

    def manager(self, which: str) -> ocp.CheckpointManager:
        if which not in ("latest", "best"):
            raise ValueError(f"no checkpoint folder '{which}'; use 'latest' or 'best'")
        return self.latest if which == "latest" else self.best

    def newest_meta(self, which: str = "latest", step: Optional[int] = None) -> Optional[dict]:
        """The metadata of the newest readable checkpoint (or of ``step``); None when there is none."""
        for _, meta in self._metas(which, step):
            if isinstance(meta, dict):
                return meta
        return None

    def _metas(self, which: str, step: Optional[int]):
        """(step, metadata or the exception reading it) for ``step``, or for every step, newest first."""
        mngr = self.manager(which)
        for s in sorted(mngr.all_steps(), reverse=True) if step is None else [step]:
            try:
                yield s, mngr.restore(s, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            except Exception as e:  # noqa: BLE001 - any unreadable file means an incomplete checkpoint
                yield s, e

    def restore_newest(self, target: Any, step: Optional[int] = None, manager: str = "latest",
                       config_diff: str = "") -> tuple[Any, dict, int]:
        """Restore the newest complete checkpoint (or ``step``) onto ``target`` (an abstract
        ``jax.eval_shape`` tree, so optax namedtuples and typed keys come back typed). A
        checkpoint that fails to read is reported by step and the previous one is tried."""
        mngr = self.manager(manager)
        steps = sorted(mngr.all_steps())
        if step is not None and step not in steps:
            raise CheckpointError(f"no checkpoint at step {step} in {mngr.directory}; found steps {steps}")
        if not steps:
            raise CheckpointError(f"no checkpoint found in {mngr.directory}")
        failures = []
        for s, meta in self._metas(manager, step):
            if not isinstance(meta, dict):
                failures.append(f"step {s}: metadata unreadable ({_short(meta)})")
                continue
            if meta.get("state_signature") != state_signature(target):
                raise StateShapeError(_signature_mismatch(meta, s) + config_diff)
            try:
                with _quiet_failed_reads():
                    restored = mngr.restore(s, args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(_without_empty(_placed(target)))))
            except Exception as e:  # noqa: BLE001
                failures.append(f"step {s}: state unreadable ({_short(e)})")
                continue
            for failure in failures:
                log.warning("checkpoint %s is incomplete or corrupt; using step %d instead", failure, s)
            return _with_empty(target, restored["state"]), meta, s
        other = "best" if manager == "latest" else "latest"
        usable = sorted(self.manager(other).all_steps())
        hint = (f"\nThe run's {other}/ checkpoints hold steps {usable}: resume, evaluate or export from one of them "
                f"(e.g. {self.directory / other / str(usable[-1])})." if usable else "")
        raise CheckpointError("no complete checkpoint in " + str(mngr.directory) + ":\n  " + "\n  ".join(failures) + hint)

    def restore_fields(self, target: dict[str, Any], step: int, manager: str = "latest") -> dict[str, Any]:
        """Only the named top-level fields of the state saved at ``step`` (e.g. a policy's parameters
        and normaliser), onto ``target`` (abstract trees keyed by field name), whatever else it holds."""
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        restore_args = ocp.checkpoint_utils.construct_restore_args(target, jax.tree.map(lambda _: device, target))
        args = ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
        return self.manager(manager).restore(step, args=ocp.args.Composite(state=args))["state"]

    def close(self) -> None:
        for mngr in (self.latest, self.best):
            mngr.wait_until_finished()
            mngr.close()


def _short(e: Any) -> str:
    """An unreadable checkpoint's error in one line: its type and first sentence (TensorStore appends
    its whole read spec, hundreds of characters)."""
    text = str(e).split("\n", 1)[0].split(" See full TensorStore details", 1)[0]
    return f"{type(e).__name__}: {text[:200]}"


@contextlib.contextmanager
def _quiet_failed_reads():
    """A failed read leaves Orbax's other reads of the same checkpoint as coroutines that are never
    awaited; Python reports each one ("Exception ignored in ...", with a traceback) as it is collected:
    dozens of tracebacks for one truncated file, which the warning above says in one line."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        gc.collect()  # the abandoned reads are collected here, while their reports are still silenced
        sys.unraisablehook = hook


def _placed(target: Any) -> Any:
    """The restore target with a place for every leaf: its own sharding (a run split over devices),
    else this process's default device. Without one, Orbax would put each array where it was saved,
    which fails where those devices do not exist (a run trained on two devices, evaluated on one)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: x if getattr(x, "sharding", None) is not None
                        else jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), target)


def _without_empty(tree: Any) -> Any:
    """Orbax cannot store zero-size arrays (mjx.Data has some, e.g. ``act`` without activations):
    they are stored as None and rebuilt from the restore target's shapes."""
    return jax.tree.map(lambda x: None if x.size == 0 else x, tree)


def _with_empty(target: Any, restored: Any) -> Any:
    leaves, treedef = jax.tree.flatten(target)
    stored = iter(jax.tree.leaves(restored))  # None is an empty subtree: it has no leaves
    filled = [jnp.zeros(leaf.shape, leaf.dtype) if leaf.size == 0 else next(stored) for leaf in leaves]
    return jax.tree.unflatten(treedef, filled)


def _save_args(state: Any, meta: dict) -> ocp.args.Composite:
    return ocp.args.Composite(state=ocp.args.StandardSave(_without_empty(state)), meta=ocp.args.JsonSave(meta))


def _signature_mismatch(meta: dict, step: int) -> str:
    return (
        f"the checkpoint at step {step} holds a train state of another shape than this config builds "
        f"(env '{meta.get('env')}', algo '{meta.get('algo')}'). Resume with the same env, algorithm, "
        f"network sizes and trainer.num_envs as the run that wrote it; if those match, the run was written "
        f"by a version of wildrobot whose train state differs from this one's: resume it with that version "
        f"(evaluation and export of its policy work with this one)."
    )
