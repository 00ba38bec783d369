"""Load a finished (or interrupted) run back: its typed config, algorithm and trained state.

Used by evaluation, export and plotting tools; needs nothing but the checkpoint, whose metadata
holds the resolved config of the run that wrote it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import jax
from omegaconf import OmegaConf

from wildrobot.config import ALGO_SCHEMAS, ENV_SCHEMAS, Config, TrainerConfig, validate
from wildrobot.train.checkpoint import Checkpointer, CheckpointError, StateShapeError
from wildrobot.train.runner import resolve_resume

log = logging.getLogger(__name__)
# What evaluation and export read from a train state: the policy and its observation normaliser.
POLICY_FIELDS = ("params", "obs_stats")


def config_from_dict(d: dict) -> Config:
    """The typed Config stored (as plain JSON) in a checkpoint's metadata."""
    env = OmegaConf.merge(OmegaConf.structured(ENV_SCHEMAS[d["env"]["name"]]), d["env"])
    algo = OmegaConf.merge(OmegaConf.structured(ALGO_SCHEMAS[d["algo"]["name"]]), d["algo"])
    trainer = OmegaConf.merge(OmegaConf.structured(TrainerConfig), d["trainer"])
    cfg = Config(env=OmegaConf.to_object(env), algo=OmegaConf.to_object(algo),
                 trainer=OmegaConf.to_object(trainer), seed=d["seed"])
    validate(cfg)
    return cfg


@dataclass
class LoadedRun:
    cfg: Config
    run_dir: Path
    step: int
    meta: dict
    algorithm: Any  # e.g. wildrobot.algos.ppo.PPO, built from cfg
    state: Any  # the algorithm's carry at ``step`` (for PPO: PPOState); see load_run for a policy-only load
    env: Any  # the (unbatched) env built from cfg.env


def load_run(path: str | Path, step: Optional[int] = None, which: str = "latest") -> LoadedRun:
    """``path``: a run directory, its checkpoints/ folder, or one checkpoint (checkpoints/latest/<step>).

    When the env state this version builds no longer matches the checkpoint's (a run trained by an
    earlier version whose env kept other fields), only the policy (``POLICY_FIELDS``) is read: the
    rest of ``state`` stays abstract (shapes only), which is all evaluation and export use."""
    from wildrobot.dispatch import trainer_class
    from wildrobot.envs.factory import make_env

    run_dir, path_step, manager = resolve_resume(str(path), Path.cwd(), Path("/nonexistent"), option="run")
    step = step if step is not None else path_step
    manager = manager if path_step is not None else which
    ckpt = Checkpointer(run_dir / "checkpoints", keep=1_000_000)
    try:
        meta = ckpt.newest_meta(manager, step)
        if meta is None:
            found = sorted(ckpt.manager(manager).all_steps())
            what = f"no checkpoint at step {step}" if step is not None and step not in found else "no readable checkpoint"
            raise CheckpointError(f"{what} in {run_dir / 'checkpoints' / manager}; found steps {found}")
        cfg = config_from_dict(meta["config"])
        cfg.trainer.resume = None
        env = make_env(cfg.env)
        algorithm = trainer_class(cfg)(cfg, run_dir).make_algorithm(env)
        abstract = jax.eval_shape(algorithm.init, jax.random.key(cfg.seed))
        try:
            state, meta, step = ckpt.restore_newest(abstract, step=step, manager=manager)
        except StateShapeError as mismatch:
            state, step = _restore_policy_only(ckpt, abstract, step, manager, mismatch)
    finally:
        ckpt.close()
    return LoadedRun(cfg=cfg, run_dir=run_dir, step=step, meta=meta, algorithm=algorithm, state=state, env=env)


def _restore_policy_only(ckpt: Checkpointer, abstract: Any, step: Optional[int], manager: str,
                         mismatch: StateShapeError) -> tuple[Any, int]:
    fields = {k: getattr(abstract, k) for k in POLICY_FIELDS if hasattr(abstract, k)}
    if len(fields) != len(POLICY_FIELDS) or not hasattr(abstract, "replace"):
        raise mismatch
    step = step if step is not None else max(ckpt.manager(manager).all_steps())
    try:
        restored = ckpt.restore_fields(fields, step, manager)
    except Exception:  # noqa: BLE001 - the policy itself differs: the shape error says what to do
        raise mismatch from None
    log.warning("the checkpoint's train state differs from what this version builds (an env changed since "
                "the run?); loaded its policy and observation normaliser only, which is what evaluation and "
                "export need (resuming it is not possible)")
    return abstract.replace(**restored), step
