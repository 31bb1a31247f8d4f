"""Generic inverse-variance pooling of study estimates ``y_i`` with known variances ``v_i``.

Fixed effect (inverse-variance weights) and DerSimonian-Laird random effects,
with Cochran's Q, its p-value, Higgins' I², τ² floored at zero, a Q-profile CI
for τ² and normal-theory CIs; the pooled estimate is back-transformed (exp,
expit) where the analysis scale asks for it.

References
----------
.. [1] R. DerSimonian and N. Laird, "Meta-analysis in clinical trials",
   Control Clin Trials 7, 1986, 177-188, doi:10.1016/0197-2456(86)90046-2.
.. [2] W. G. Cochran, "The combination of estimates from different
   experiments", Biometrics 10, 1954, 101-129, doi:10.2307/3001666.
.. [3] J. P. T. Higgins, S. G. Thompson, J. J. Deeks and D. G. Altman,
   "Measuring inconsistency in meta-analyses", BMJ 327, 2003, 557-560,
   doi:10.1136/bmj.327.7414.557.
.. [4] W. Viechtbauer, "Confidence intervals for the amount of heterogeneity
   in meta-analysis", Stat Med 26, 2007, 37-52, doi:10.1002/sim.2514.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from opencmr.meta.per_study import records_frame

__all__ = ["BackTransform", "Heterogeneity", "InverseVariance", "Pooled", "inverse_variance", "q_profile_tau2_ci"]


class BackTransform(str, Enum):
    """How a pooled estimate on the analysis scale is reported."""

    NONE = "none"
    EXP = "exp"
    """Log ratios (log DOR, log LR, log RR, log OR)."""
    EXPIT = "expit"
    """Logits of proportions (sensitivity, specificity)."""

    def __call__(self, x: Any) -> Any:
        if self is BackTransform.EXP:
            return np.exp(x)
        if self is BackTransform.EXPIT:
            return special.expit(x)
        return x


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return float(stats.norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class Pooled:
    """A pooled estimate on its analysis scale (``estimate``, ``se``, ``ci``) and back-transformed (``value``).

    Attributes
    ----------
    measure : str
        What was pooled, e.g. ``"log DOR"``.
    method : str
        e.g. ``"fixed (inverse variance)"``, ``"DerSimonian-Laird"``, ``"Mantel-Haenszel"``.
    estimate, se : float
        On the analysis scale.
    ci : tuple of float
        Normal-theory CI on the analysis scale.
    level : float
    k : int
        Studies pooled.
    back_transform : BackTransform
    """

    measure: str
    method: str
    estimate: float
    se: float
    ci: tuple[float, float]
    level: float
    k: int
    back_transform: BackTransform = BackTransform.NONE

    @property
    def z(self) -> float:
        """Wald statistic estimate / se."""
        return self.estimate / self.se if self.se > 0 else float("nan")

    @property
    def p_value(self) -> float:
        """Two-sided p-value of the Wald test of estimate = 0."""
        return float(2 * stats.norm.sf(abs(self.z)))

    @property
    def value(self) -> float:
        """The estimate back-transformed (e.g. DOR from log DOR)."""
        return float(self.back_transform(self.estimate))

    @property
    def value_ci(self) -> tuple[float, float]:
        """The CI back-transformed."""
        return float(self.back_transform(self.ci[0])), float(self.back_transform(self.ci[1]))

    def record(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "method": self.method,
            "k": self.k,
            "estimate": self.estimate,
            "se": self.se,
            "ci_lower": self.ci[0],
            "ci_upper": self.ci[1],
            "z": self.z,
            "p_value": self.p_value,
            "back_transform": self.back_transform.value,
            "value": self.value,
            "value_lower": self.value_ci[0],
            "value_upper": self.value_ci[1],
        }


@dataclass(frozen=True)
class Heterogeneity:
    """Cochran's Q with its p-value, Higgins' I² (percent, floored at 0) and the DerSimonian-Laird τ².

    ``weights`` says which weights Q was computed with: ``"fixed"`` (1/v_i,
    the textbook Q that the DL τ² uses) or ``"random"`` (1/(v_i + τ²), what
    mada's ``madauni`` prints).
    """

    q: float
    df: int
    p_value: float
    i2: float
    tau2: float
    tau2_ci: tuple[float, float]
    weights: str = "fixed"

    @property
    def tau(self) -> float:
        return float(np.sqrt(self.tau2))

    def record(self) -> dict[str, Any]:
        return {
            "Q": self.q,
            "df": self.df,
            "Q_p_value": self.p_value,
            "I2_percent": self.i2,
            "tau2": self.tau2,
            "tau2_lower": self.tau2_ci[0],
            "tau2_upper": self.tau2_ci[1],
            "Q_weights": self.weights,
        }


def higgins_i2(q: float, df: int) -> float:
    """I² = 100 (Q - df) / Q, floored at 0 (Higgins et al. 2003)."""
    return float(max(0.0, 100.0 * (q - df) / q)) if q > 0 else 0.0


def cochran_q(y: np.ndarray, w: np.ndarray) -> float:
    """Σ w_i (y_i - ȳ_w)² with ȳ_w the w-weighted mean."""
    mean = np.sum(w * y) / np.sum(w)
    return float(np.sum(w * (y - mean) ** 2))


def dersimonian_laird_tau2(y: np.ndarray, v: np.ndarray) -> float:
    """τ² = max(0, (Q - (k-1)) / (Σw - Σw²/Σw)), w = 1/v (DerSimonian & Laird 1986)."""
    w = 1 / v
    q = cochran_q(y, w)
    return float(max(0.0, (q - (len(y) - 1)) / (w.sum() - np.sum(w**2) / w.sum())))


def _root(f: Any, target: float) -> float:
    """Smallest t >= 0 with f(t) = target for f decreasing from f(0) > target."""
    hi = 1.0
    while f(hi) > target:
        hi *= 10
        if hi > 1e12:
            return float("inf")
    return float(optimize.brentq(lambda t: f(t) - target, 0.0, hi, xtol=1e-12, rtol=1e-12))


def q_profile_tau2_ci(
    y: np.ndarray, v: np.ndarray, level: float = 0.95, *, mada: bool = False, tau2: float | None = None
) -> tuple[float, float]:
    """Q-profile confidence interval for τ² (Viechtbauer 2007).

    Solves Q(τ²) = χ²_{k-1} quantiles, where Q(τ²) = Σ w_i(τ²) (y_i - μ̂(τ²))²
    with w_i(τ²) = 1/(v_i + τ²) and μ̂(τ²) re-estimated; a limit is 0 where
    Q(0) is already below its quantile.

    With ``mada=True`` it reproduces mada's ``summary.madauni`` instead, which
    keeps μ̂ at the DL estimate and adds the profiled τ² on top of the DL
    ``tau2`` (Q(t) = Σ (y_i - μ̂_DL)² / (v_i + τ̂²_DL + t)).
    """
    y = np.asarray(y, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    df = len(y) - 1
    upper_q = float(stats.chi2.ppf(0.5 + level / 2, df))
    lower_q = float(stats.chi2.ppf(0.5 - level / 2, df))
    if mada:
        t_hat = dersimonian_laird_tau2(y, v) if tau2 is None else tau2
        w_re = 1 / (v + t_hat)
        mu = np.sum(w_re * y) / np.sum(w_re)

        def q(t: float) -> float:
            return float(np.sum((y - mu) ** 2 / (v + t_hat + t)))

    else:

        def q(t: float) -> float:
            return cochran_q(y, 1 / (v + t))

    q0 = q(0.0)
    lower = 0.0 if q0 < upper_q else _root(q, upper_q)
    upper = 0.0 if q0 < lower_q else _root(q, lower_q)
    return lower, upper


@dataclass(frozen=True)
class InverseVariance:
    """Fixed-effect and DerSimonian-Laird pooling of ``y`` with variances ``v``.

    Attributes
    ----------
    y, v : numpy.ndarray
    fixed : Pooled
        Inverse-variance fixed effect.
    random : Pooled
        DerSimonian-Laird random effects.
    heterogeneity : Heterogeneity
        Q with fixed weights (the textbook Q behind the DL τ²), I² from it,
        τ² and its Q-profile CI.
    q_random : float
        Q recomputed with the random-effects weights (what mada prints).
    """

    y: np.ndarray
    v: np.ndarray
    fixed: Pooled
    random: Pooled
    heterogeneity: Heterogeneity
    q_random: float

    @property
    def k(self) -> int:
        return len(self.y)

    @property
    def tau2(self) -> float:
        return self.heterogeneity.tau2

    def summary_frame(self) -> Any:
        """Rows fixed and random, with heterogeneity columns; a DataFrame if pandas is installed."""
        rows = [{**p.record(), **self.heterogeneity.record()} for p in (self.fixed, self.random)]
        return records_frame(rows, index="method")

    def to_dict(self) -> dict[str, Any]:
        return {
            "fixed": self.fixed.record(),
            "random": self.random.record(),
            "heterogeneity": self.heterogeneity.record(),
            "Q_random_weights": self.q_random,
        }


def pooled_from_weights(
    y: np.ndarray, w: np.ndarray, *, measure: str, method: str, level: float, back_transform: BackTransform
) -> Pooled:
    """Σ w y / Σ w with SE 1/sqrt(Σ w) and a normal CI."""
    z = _z(level)
    est = float(np.sum(w * y) / np.sum(w))
    se = float(1 / np.sqrt(np.sum(w)))
    return Pooled(measure, method, est, se, (est - z * se, est + z * se), level, len(y), back_transform)


def inverse_variance(
    y: np.ndarray,
    v: np.ndarray,
    *,
    level: float = 0.95,
    back_transform: BackTransform | str = BackTransform.NONE,
    measure: str = "y",
) -> InverseVariance:
    """Pool ``y`` (variances ``v``) by fixed effect and DerSimonian-Laird random effects.

    Parameters
    ----------
    y, v : array_like
        Study estimates on the analysis scale (e.g. log RR) and their variances (> 0).
    level : float
        Confidence level of all intervals.
    back_transform : {"none", "exp", "expit"}
        How ``Pooled.value`` reports the estimate.
    measure : str
        Name of ``y`` for the results.

    Raises
    ------
    ValueError
        Fewer than 2 studies, lengths differ, non-finite values or variances <= 0.

    Examples
    --------
    Homogeneous studies: Q < k - 1, so τ² is floored at 0 and both models agree.

    >>> r = inverse_variance([0.10, 0.12, 0.11], [0.01, 0.02, 0.015])
    >>> r.tau2, round(r.fixed.estimate, 4) == round(r.random.estimate, 4)
    (0.0, True)
    """
    y = np.asarray(y, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if y.ndim != 1 or y.shape != v.shape:
        raise ValueError(f"y and v must be 1-D of the same length, got shapes {y.shape} and {v.shape}")
    if len(y) < 2:
        raise ValueError(f"pooling needs at least 2 studies, got {len(y)}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise ValueError("y and v must be finite (a zero cell without continuity correction?)")
    if np.any(v <= 0):
        raise ValueError("variances must be positive")
    bt = BackTransform(back_transform)
    df = len(y) - 1
    w = 1 / v
    q = cochran_q(y, w)
    tau2 = dersimonian_laird_tau2(y, v)
    w_re = 1 / (v + tau2)
    fixed = pooled_from_weights(
        y, w, measure=measure, method="fixed (inverse variance)", level=level, back_transform=bt
    )
    random = pooled_from_weights(y, w_re, measure=measure, method="DerSimonian-Laird", level=level, back_transform=bt)
    het = Heterogeneity(
        q=q,
        df=df,
        p_value=float(stats.chi2.sf(q, df)),
        i2=higgins_i2(q, df),
        tau2=tau2,
        tau2_ci=q_profile_tau2_ci(y, v, level),
        weights="fixed",
    )
    return InverseVariance(y, v, fixed, random, het, cochran_q(y, w_re))
