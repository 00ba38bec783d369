"""How close a policy's gait is to a reference: dynamic time warping and the discrete Fréchet
distance between joint trajectories (the imitation metrics LocoMuJoCo reports), per-joint RMS after
the best phase alignment, and the gait descriptors of both (``checks.gait_descriptors``)."""

from __future__ import annotations

import numpy as np


def dtw_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Dynamic time warping between two trajectories (T, J) and (S, J), as a per-frame RMS: the square
    root of the summed squared differences along the best warping path (dtaidistance), over sqrt(T)."""
    from dtaidistance import dtw_ndim

    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    return float(dtw_ndim.distance(a, b)) / np.sqrt(len(a))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Discrete Fréchet distance (Eiter & Mannila 1994) between trajectories (T, J) and (S, J): the
    largest frame-to-frame distance of the best monotone coupling."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    ca = np.empty_like(d)
    ca[0, 0] = d[0, 0]
    for i in range(1, len(a)):
        ca[i, 0] = max(ca[i - 1, 0], d[i, 0])
    for j in range(1, len(b)):
        ca[0, j] = max(ca[0, j - 1], d[0, j])
    for i in range(1, len(a)):
        for j in range(1, len(b)):
            ca[i, j] = max(min(ca[i - 1, j], ca[i - 1, j - 1], ca[i, j - 1]), d[i, j])
    return float(ca[-1, -1])


def aligned_rms(policy: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-joint RMS (J,) between ``policy`` (T, J) and a looping ``reference`` (R, J) repeated to
    cover it, at the phase shift (0..R-1 frames) that makes the total smallest; and that shift."""
    policy, reference = np.asarray(policy, np.float64), np.asarray(reference, np.float64)
    reps = int(np.ceil((len(policy) + len(reference)) / len(reference)))
    tiled = np.tile(reference, (reps, 1))
    best, best_shift = None, 0
    for shift in range(len(reference)):
        err = np.sqrt(np.mean((tiled[shift:shift + len(policy)] - policy) ** 2, axis=0))
        if best is None or err.sum() < best.sum():
            best, best_shift = err, shift
    return best, best_shift
