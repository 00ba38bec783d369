"""Load a finished (or interrupted) run back: its typed config, algorithm and trained state.

Used by evaluation, export and plotting tools; needs nothing but the checkpoint, whose metadata
holds the resolved config of the run that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import jax
from omegaconf import OmegaConf

from wildrobot.config import ALGO_SCHEMAS, ENV_SCHEMAS, Config, TrainerConfig, validate
from wildrobot.train.checkpoint import Checkpointer, CheckpointError
from wildrobot.train.runner import resolve_resume


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
    state: Any  # the algorithm's carry at ``step`` (for PPO: PPOState)
    env: Any  # the (unbatched) env built from cfg.env


def load_run(path: str | Path, step: Optional[int] = None, which: str = "latest") -> LoadedRun:
    """``path``: a run directory, its checkpoints/ folder, or one checkpoint (checkpoints/latest/<step>)."""
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
        state, meta, step = ckpt.restore_newest(abstract, step=step, manager=manager)
    finally:
        ckpt.close()
    return LoadedRun(cfg=cfg, run_dir=run_dir, step=step, meta=meta, algorithm=algorithm, state=state, env=env)
