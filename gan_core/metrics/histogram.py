"""KL of a mode histogram from uniform: the mode-coverage figure of the toy and Stacked MNIST metrics."""
from __future__ import annotations

import numpy as np


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(counts / total || uniform over len(counts)) = sum_k p_k log(p_k K), empty bins left out
    (0 log 0 = 0); inf for an empty histogram."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return float("inf")
    p = counts[counts > 0] / total
    return max(float(np.sum(p * np.log(p * len(counts)))), 0.0)
