"""What a run prints: the budget line at the start, a progress bar, one summary line per chunk
(the algorithm's headline metrics, which include its env's) and the expected time to finish."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import jax
from tqdm import tqdm

from wildrobot.algos.base import Algorithm
from wildrobot.config import Config
from wildrobot.envs.core import PHYSICS_NAMES

# A batch this large only pays off on a GPU (on the CPU a 1024-env chunk already saturates the cores).
GPU_SIZED_ENVS = 4096


def budget_line(cfg: Config, algo: Algorithm, start: int, physics: str, run_dir: Path) -> str:
    """What the run will do, on which device and physics, and where it writes."""
    t = cfg.trainer
    spi = algo.env_steps_per_iteration
    what = f"{t.iterations} iterations"
    if spi:
        what += f" x {spi:,} env steps = {t.iterations * spi:,} env steps ({t.num_envs} envs)"
    device = jax.devices()[0]
    where = (f"the CPU ({os.cpu_count()} cores)" if device.platform == "cpu"
             else f"{jax.device_count()} x {device.device_kind}")
    devices = jax.device_count() if t.devices == "all" else int(t.devices)
    if devices > 1:
        where += f", the envs split over {devices} devices ({t.num_envs // devices} each)"
    line = (f"Training {cfg.algo.name} on {cfg.env.name}: {what}, from iteration {start}; "
            f"chunks of {t.log_every} iterations{' (the first: 1)' if start == 0 and t.log_every > 1 else ''}; "
            f"on {where}{f', {PHYSICS_NAMES.get(physics, physics)} physics' if physics else ''}; output in {run_dir}")
    big = t.num_envs >= GPU_SIZED_ENVS
    if device.platform == "cpu" and spi and (big or t.sized_for == "gpu"):
        what = f"{t.num_envs} envs is a GPU-sized batch" if big else "this trainer preset is sized for a GPU"
        line += (f"\nNote: {what}, but JAX sees only the CPU. For an NVIDIA "
                 "GPU, run with the CUDA build of JAX: uv run --extra cuda12 run.py ... (or --extra cuda13).")
    return line


def global_step(algo: Algorithm, iteration: int) -> int:
    """The TensorBoard step axis: env steps, or iterations for algorithms without an env."""
    return iteration * (algo.env_steps_per_iteration or 1)


def summary_line(it: int, iterations: int, algo: Algorithm, metrics: dict[str, float]) -> str:
    parts = [f"it {it}/{iterations}"]
    if algo.env_steps_per_iteration:
        parts.append(f"steps {global_step(algo, it):,}")
        parts.append(f"{metrics['perf/steps_per_second']:,.0f} sps")
    for label, key, fmt in algo.headline_metrics:
        if key in metrics and math.isfinite(metrics[key]):
            parts.append(f"{label} {fmt.format(metrics[key])}")
    return " | ".join(parts)


class Progress:
    """A progress bar over the run's env steps (or iterations) with a line per chunk above it; the
    expected time to finish once a chunk past the first (one iteration, or compiling) is timed."""

    def __init__(self, cfg: Config, algo: Algorithm, start: int, enabled: bool, lines: bool = True):
        """``enabled``: the bar; ``lines``: the per-chunk lines (one process of several prints them)."""
        self.cfg, self.algo, self.lines = cfg, algo, lines
        steps_per_it = algo.env_steps_per_iteration
        total = (cfg.trainer.iterations - start) * (steps_per_it or 1)
        self._bar = tqdm(total=total, unit=" steps" if steps_per_it else " it", unit_scale=True, dynamic_ncols=True,
                         disable=not enabled, file=sys.stderr)
        self._chunks = 0

    def chunk(self, it: int, iterations: int, seconds: float, metrics: dict[str, float]) -> None:
        """After a chunk of ``iterations`` that ended at ``it`` and took ``seconds``."""
        t = self.cfg.trainer
        self._chunks += 1
        self._bar.update(iterations * (self.algo.env_steps_per_iteration or 1))
        if not self.lines:
            return
        self._bar.write(summary_line(it, t.iterations, self.algo, metrics))
        if self._chunks == 2 and it < t.iterations:
            left = (t.iterations - it) / iterations * seconds
            evals = (t.iterations // t.eval_every - it // t.eval_every) if t.eval_every else 0
            self._bar.write(f"expected time to finish: {left / 60:.1f} min at the current rate"
                            + (f", plus {evals} evaluations" if evals else ""))

    def close(self) -> None:
        self._bar.close()
