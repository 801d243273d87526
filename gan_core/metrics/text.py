"""Does a text-to-image generator follow the words? Attribute rank correlation: the attribute
levels its captions name (-1 / 0 / +1, `caption_levels`) against the attribute measured on the
images drawn for them (`measure_digits`), Spearman's rho per attribute."""
from __future__ import annotations

import numpy as np

from gan_core.data.captions import ATTRIBUTES, caption_levels, measure_digits


def attribute_correlation(samples, captions) -> dict:
    """samples: (N, 1, H, W) digits in [-1, 1] drawn for `captions` (N strings) ->
    {"attr_corr_<attribute>": rho}; NaN for an attribute no caption names, or unmeasurable."""
    from scipy.stats import spearmanr

    x = np.asarray(samples, dtype=np.float64)
    if len(captions) != len(x):
        raise ValueError(f"attr_corr got {len(x)} images but {len(captions)} captions")
    if len(x) < 3:
        raise ValueError(f"attr_corr needs at least 3 samples, got {len(x)}")
    measured = measure_digits((x + 1) / 2)
    named = [caption_levels(c) for c in captions]
    out = {}
    for name in ATTRIBUTES:
        want = np.array([n[name] for n in named], dtype=np.float64)
        got = measured[name]
        ok = np.isfinite(got)
        rho = np.nan
        if ok.sum() >= 3 and np.ptp(want[ok]) > 0 and np.ptp(got[ok]) > 0:
            rho = float(spearmanr(want[ok], got[ok]).statistic)
        out[f"attr_corr_{name}"] = rho
    return out
