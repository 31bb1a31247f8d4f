"""Likelihood ratios and DOR from the bivariate model by sampling (Zwinderman & Bossuyt 2008), as ``mada::SummaryPts``.

Pooling likelihood ratios univariately can give impossible combinations
(LR+ and LR- both above 1) [1]_. Instead, the summary point of the
bivariate model (:func:`opencmr.meta.bivariate.reitsma`) is sampled: draws of
(logit sensitivity, logit FPR) from ``N(mu, vcov(mu))`` -- the estimate and
its sampling covariance, *not* the between-study covariance -- are
back-transformed, and per draw

* ``LR+ = sens / fpr``,
* ``LR- = (1 - sens) / (1 - fpr)``,
* ``1/LR- = (1 - fpr) / (1 - sens)``,
* ``DOR = sens (1 - fpr) / ((1 - sens) fpr)``

are computed; the mean, median and percentile interval of each are reported,
as mada's ``summary.SummaryPts`` (R's default quantile type 7, which is
numpy's default "linear" method) [2]_. mada draws ``10^6`` samples with R's
generator; here a seeded :class:`numpy.random.Generator` is used, so the
numbers agree with mada's only up to Monte Carlo error.

References
----------
.. [1] A. H. Zwinderman and P. M. Bossuyt, "We should not pool diagnostic
   likelihood ratios in systematic reviews", Stat Med 27(5), 2008, 687-697,
   doi:10.1002/sim.2992.
.. [2] P. Doebler, H. Holling and B. Sousa-Pinto, "Meta-Analysis of
   Diagnostic Accuracy with mada", vignette of the R package mada 0.5.12
   (``SummaryPts``).

Examples
--------
>>> from opencmr.meta.bivariate import reitsma
>>> from opencmr.meta.data import DtaStudies
>>> studies = DtaStudies(("a", "b", "c", "d"), tp=[45, 30, 80, 22], fp=[10, 12, 30, 5],
...                      fn=[5, 8, 12, 6], tn=[90, 70, 150, 60])
>>> points = summary_points(reitsma(studies), n_draws=20000, seed=1)
>>> 5 < points.pos_lr.median < 8
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from opencmr.meta.bivariate import Reitsma

__all__ = ["SampledSummary", "SummaryPoints", "summary_points"]


@dataclass(frozen=True)
class SampledSummary:
    """Mean, median and percentile interval of one quantity over the draws."""

    mean: float
    median: float
    ci_lower: float
    ci_upper: float

    @classmethod
    def from_draws(cls, draws: np.ndarray, level: float) -> SampledSummary:
        lower, upper = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
        return cls(float(np.mean(draws)), float(np.median(draws)), float(lower), float(upper))

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "median": self.median, "ci_lower": self.ci_lower, "ci_upper": self.ci_upper}


@dataclass(frozen=True)
class SummaryPoints:
    """Result of :func:`summary_points`.

    Attributes
    ----------
    pos_lr, neg_lr, inv_neg_lr, dor : SampledSummary
        Positive and negative likelihood ratio, its inverse, and the diagnostic odds ratio.
    level : float
    n_draws : int
    seed : int or None
    mu : numpy.ndarray
        Mean (logit sensitivity, logit FPR) sampled from.
    cov : numpy.ndarray
        Its ``(2, 2)`` sampling covariance.
    """

    pos_lr: SampledSummary
    neg_lr: SampledSummary
    inv_neg_lr: SampledSummary
    dor: SampledSummary
    level: float
    n_draws: int
    seed: int | None
    mu: np.ndarray
    cov: np.ndarray

    def _named(self) -> dict[str, SampledSummary]:
        return {"posLR": self.pos_lr, "negLR": self.neg_lr, "invnegLR": self.inv_neg_lr, "DOR": self.dor}

    def summary_frame(self) -> list[dict[str, Any]]:
        """One row per quantity: mean, median and percentile interval (mada's names posLR, negLR, invnegLR, DOR)."""
        return [{"parameter": name, **value.to_dict()} for name, value in self._named().items()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "Monte Carlo from N(mu, vcov(mu)) of the bivariate model (Zwinderman & Bossuyt 2008)",
            "level": self.level,
            "n_draws": self.n_draws,
            "seed": self.seed,
            "mu": self.mu.tolist(),
            "cov": self.cov.tolist(),
            **{name: value.to_dict() for name, value in self._named().items()},
        }


def summary_points(result: Reitsma, n_draws: int = 10_000, seed: int | None = 0, level: float = 0.95) -> SummaryPoints:
    """Sample LR+, LR-, 1/LR- and DOR from a bivariate fit, as ``mada::SummaryPts``.

    Parameters
    ----------
    result : Reitsma
        A bivariate fit without covariate.
    n_draws : int
        Number of draws (mada: ``10^6``).
    seed : int or None
        Seed of :func:`numpy.random.default_rng` (``None``: not reproducible).
    level : float
        Level of the percentile intervals.

    Returns
    -------
    SummaryPoints

    Raises
    ------
    ValueError
        A meta-regression (as mada refuses), ``n_draws < 2`` or ``level`` outside (0, 1).
    """
    if result.regression is not None:
        raise ValueError(
            "summary points are not defined for a meta-regression (the summary point depends on the covariate)"
        )
    if n_draws < 2:
        raise ValueError(f"n_draws must be at least 2, got {n_draws}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mu, cov = result.mu, np.asarray(result.vcov, dtype=np.float64)
    draws = np.random.default_rng(seed).multivariate_normal(mu, cov, size=n_draws, method="eigh")
    # ratios on the log scale: exact for draws far out in the tails, where 1 - expit(x) underflows
    log_pos = special.log_expit(draws[:, 0]) - special.log_expit(draws[:, 1])
    log_neg = special.log_expit(-draws[:, 0]) - special.log_expit(-draws[:, 1])
    summary = {
        "pos_lr": np.exp(log_pos),
        "neg_lr": np.exp(log_neg),
        "inv_neg_lr": np.exp(-log_neg),
        "dor": np.exp(draws[:, 0] - draws[:, 1]),
    }
    return SummaryPoints(
        **{name: SampledSummary.from_draws(values, level) for name, values in summary.items()},
        level=level,
        n_draws=int(n_draws),
        seed=seed,
        mu=mu,
        cov=cov.copy(),
    )
