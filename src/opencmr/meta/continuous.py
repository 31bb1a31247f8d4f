"""Inverse-variance meta-analysis of continuous metrics (Dice, Hausdorff distance, volumes, ...).

Segmentation papers report a metric as mean ± SD over ``n`` test cases. Pooling
them is an inverse-variance meta-analysis on per-study effects ``(y_i, v_i)``:

* single-arm mean (metafor's ``measure="MN"``): ``y_i = mean_i``, ``v_i = sd_i^2 / n_i``;
* the same on the logit scale for a metric bounded in (0, 1) such as Dice
  (delta method): ``y_i = logit(m_i)``, ``v_i = sd_i^2 / (n_i m_i^2 (1 - m_i)^2)``;
  the pooled mean and its intervals are back-transformed with the logistic
  function. Use it when means are close to 1 (a symmetric CI on the raw scale
  can pass 1); the back-transformed value is a median-type summary, not the
  arithmetic mean of Dice;
* mean difference of two arms (``measure="MD"``), with the pooled SD
  ``sqrt(((n1-1) sd1^2 + (n2-1) sd2^2) / (n1+n2-2))`` so that
  ``v_i = sd_p^2 (1/n1 + 1/n2)`` (Normand 1999), or with separate SDs
  ``v_i = sd1^2/n1 + sd2^2/n2`` (metafor's default).

The engine :func:`pool_inverse_variance` fits the fixed-effect model or a
random-effects model with τ² from DerSimonian-Laird (floored at 0) or REML
(Fisher scoring on τ² ≥ 0, as metafor's ``rma``). It reports Cochran's Q, I²
and H² as metafor does (from τ² for random-effects fits, from Q for the fixed
effect), the Wald CI of μ and the prediction interval of metafor's
``predict``: ``μ ± z sqrt(SE² + τ²)``, or with ``prediction="t"`` the
t-based interval of Higgins et al. (2009), ``μ ± t_{k-2} sqrt(SE² + τ²)``.

Note: "0.91 ± 0.03 (15 studies)" in a review is usually the unweighted mean
± SD of the study means, a description of the studies, not a pooled estimate.

References
----------
.. [1] R. DerSimonian and N. Laird, "Meta-analysis in clinical trials",
   Control Clin Trials 7, 1986, 177-188, doi:10.1016/0197-2456(86)90046-2.
.. [2] W. Viechtbauer, "Bias and efficiency of meta-analytic variance
   estimators in the random-effects model", J Educ Behav Stat 30, 2005,
   261-293, doi:10.3102/10769986030003261.
.. [3] W. Viechtbauer, "Conducting meta-analyses in R with the metafor
   package", J Stat Softw 36(3), 2010, doi:10.18637/jss.v036.i03.
.. [4] J. P. T. Higgins and S. G. Thompson, "Quantifying heterogeneity in a
   meta-analysis", Stat Med 21, 2002, 1539-1558, doi:10.1002/sim.1186.
.. [5] J. P. T. Higgins, S. G. Thompson and D. J. Spiegelhalter, "A
   re-evaluation of random-effects meta-analysis", J R Stat Soc A 172, 2009,
   137-159, doi:10.1111/j.1467-985X.2008.00552.x.
.. [6] S.-L. T. Normand, "Meta-analysis: formulating, evaluating, combining,
   and reporting", Stat Med 18, 1999, 321-359,
   doi:10.1002/(SICI)1097-0258(19990215)18:3<321::AID-SIM28>3.0.CO;2-P.

Examples
--------
>>> fit = pool_means(MeanStudies(("a", "b", "c"), (0.90, 0.85, 0.93), (0.04, 0.06, 0.03), (50, 30, 80)), method="dl")
>>> round(fit.estimate, 4), fit.k
(0.8947, 3)
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from opencmr.errors import InputError
from opencmr.io._atomic import atomic_output
from opencmr.meta.pooling import cochran_q, dersimonian_laird_tau2

__all__ = [
    "EffectMeasure",
    "MeanDifferenceStudies",
    "MeanPooling",
    "MeanStudies",
    "PoolingMethod",
    "PredictionInterval",
    "mean_difference_effects",
    "mean_effects",
    "pool_inverse_variance",
    "pool_means",
    "read_means_csv",
    "write_pooling_json",
    "write_studies_csv",
]


class PoolingMethod(str, Enum):
    """How the between-study variance τ² is estimated."""

    FE = "fe"
    """Fixed (common) effect: τ² = 0."""
    DL = "dl"
    """DerSimonian-Laird method of moments, floored at 0."""
    REML = "reml"
    """Restricted maximum likelihood on τ² ≥ 0 (metafor's default)."""


class EffectMeasure(str, Enum):
    """What ``y_i`` is (metafor's ``measure`` names)."""

    MN = "MN"
    """Single-arm mean (raw or logit scale)."""
    MD = "MD"
    """Mean difference of two arms."""
    GENERIC = "GEN"
    """Effects and variances given directly."""


class PredictionInterval(str, Enum):
    """Quantile used for the prediction interval."""

    NORMAL = "normal"
    """``z_{1-α/2}``, as metafor's ``predict`` (default)."""
    T = "t"
    """``t_{k-2, 1-α/2}``, Higgins, Thompson and Spiegelhalter (2009); needs k ≥ 3."""


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _expit(x: float) -> float:
    return float(1.0 / (1.0 + math.exp(-x))) if x >= 0 else float(math.exp(x) / (1.0 + math.exp(x)))


def _floats(values: Sequence[float], name: str, k: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (k,):
        raise ValueError(f"{name} has {array.size} values for {k} studies")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has a value that is not a finite number")
    return array


def mean_effects(
    mean: Sequence[float], sd: Sequence[float], n: Sequence[float], *, logit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Single-arm means as effects ``(y, v)``: ``(mean, sd²/n)``, or on the logit scale by the delta method.

    Examples
    --------
    >>> y, v = mean_effects([0.9], [0.05], [25])
    >>> float(y[0]), round(float(v[0]), 6)
    (0.9, 0.0001)
    >>> y, v = mean_effects([0.9], [0.05], [25], logit=True)
    >>> round(float(y[0]), 4), round(float(v[0]), 4)
    (2.1972, 0.0123)
    """
    m, s, size = (np.asarray(a, dtype=np.float64) for a in (mean, sd, n))
    if np.any(s <= 0) or np.any(size < 2):
        raise ValueError("every SD must be > 0 and every n >= 2")
    if not logit:
        return m.copy(), s**2 / size
    if np.any((m <= 0) | (m >= 1)):
        raise ValueError("the logit scale needs every mean strictly between 0 and 1")
    return _logit(m), s**2 / (size * m**2 * (1.0 - m) ** 2)


def mean_difference_effects(
    m1: Sequence[float],
    sd1: Sequence[float],
    n1: Sequence[float],
    m2: Sequence[float],
    sd2: Sequence[float],
    n2: Sequence[float],
    *,
    pooled_sd: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean differences ``y = m1 - m2`` with ``v = sd_p² (1/n1 + 1/n2)`` (pooled SD) or ``sd1²/n1 + sd2²/n2``.

    Examples
    --------
    >>> y, v = mean_difference_effects([55], [47], [155], [75], [64], [156])  # Normand 1999, Edinburgh
    >>> float(y[0]), round(float(v[0]), 4)
    (-20.0, 40.5863)
    """
    a1, s1, k1, a2, s2, k2 = (np.asarray(a, dtype=np.float64) for a in (m1, sd1, n1, m2, sd2, n2))
    if np.any(s1 <= 0) or np.any(s2 <= 0) or np.any(k1 < 2) or np.any(k2 < 2):
        raise ValueError("every SD must be > 0 and every n >= 2")
    if pooled_sd:
        sp2 = ((k1 - 1) * s1**2 + (k2 - 1) * s2**2) / (k1 + k2 - 2)
        return a1 - a2, sp2 * (1.0 / k1 + 1.0 / k2)
    return a1 - a2, s1**2 / k1 + s2**2 / k2


def _reml_score(y: np.ndarray, v: np.ndarray, tau2: float) -> tuple[float, float]:
    """Half the derivative of the restricted log-likelihood, ``y'PPy - tr(P)``, and ``tr(PP)`` (expected information)."""
    w = 1.0 / (v + tau2)
    p = np.diag(w) - np.outer(w, w) / np.sum(w)
    py = p @ y
    return float(py @ py - np.trace(p)), float(np.sum(p * p))


def _tau2_reml(y: np.ndarray, v: np.ndarray, tol: float = 1e-10, max_iter: int = 200) -> tuple[float, int]:
    """REML τ² by Fisher scoring (Viechtbauer 2005), started at DL, kept ≥ 0; returns (τ², iterations)."""
    tau2 = dersimonian_laird_tau2(y, v)
    for iteration in range(1, max_iter + 1):
        score, information = _reml_score(y, v, tau2)
        if tau2 == 0.0 and score <= 0.0:  # likelihood decreasing at the boundary: the estimate is 0
            return 0.0, iteration
        new = max(0.0, tau2 + score / information)
        if abs(new - tau2) <= tol * max(1.0, tau2):
            return new, iteration
        tau2 = new
    raise ArithmeticError(f"REML estimation of tau^2 did not converge in {max_iter} iterations")


@dataclass(frozen=True)
class MeanPooling:
    """An inverse-variance meta-analysis of ``k`` studies' effects.

    Values named ``mu``, ``se``, ``ci``, ``pi``, ``yi``, ``vi`` and ``tau2``
    are on the analysis scale (the logit scale when ``logit``);
    :attr:`estimate`, :attr:`estimate_ci`, :attr:`prediction_interval` and
    :meth:`summary_frame` are back-transformed to the scale of the metric.

    Attributes
    ----------
    labels : tuple of str
        Study labels.
    yi, vi : tuple of float
        Per-study effects and sampling variances.
    n : tuple of int or None
        Per-study sample size (total of both arms for MD), when known.
    measure, method, prediction : enums
        What was pooled and how.
    logit : bool
        Whether single-arm means were pooled on the logit scale.
    level : float
        Confidence level of every interval (0.95).
    mu, se : float
        Pooled effect and its standard error.
    ci : tuple of float
        Wald CI of μ: ``mu ± z se``.
    tau2 : float
        Between-study variance (0 for the fixed effect; never negative).
    q, q_df, q_pvalue : float, int, float
        Cochran's Q (fixed-effect weights), its degrees of freedom ``k - 1`` and χ² p-value.
    i2, h2 : float
        I² (%) and H²: from τ² as metafor (``I² = τ²/(τ² + s²)``, ``s²`` the typical
        within-study variance; equal to Higgins' ``(Q - df)/Q`` for DL), from Q for the fixed effect.
    pi : tuple of float
        Prediction interval for the effect of a new study.
    weights : tuple of float
        Per-study weights of the fitted model, in percent.
    iterations : int
        Fisher-scoring iterations (REML), else 0.
    """

    labels: tuple[str, ...]
    yi: tuple[float, ...]
    vi: tuple[float, ...]
    n: tuple[int, ...] | None
    measure: EffectMeasure
    method: PoolingMethod
    logit: bool
    level: float
    prediction: PredictionInterval
    mu: float
    se: float
    ci: tuple[float, float]
    tau2: float
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    pi: tuple[float, float]
    weights: tuple[float, ...]
    iterations: int = 0

    @property
    def k(self) -> int:
        """Number of studies."""
        return len(self.yi)

    @property
    def tau(self) -> float:
        """Between-study SD (analysis scale)."""
        return math.sqrt(self.tau2)

    def back_transform(self, value: float) -> float:
        """A value on the analysis scale, on the scale of the metric (logistic function when ``logit``)."""
        return _expit(value) if self.logit else float(value)

    @property
    def estimate(self) -> float:
        """Pooled effect on the scale of the metric."""
        return self.back_transform(self.mu)

    @property
    def estimate_ci(self) -> tuple[float, float]:
        """CI of the pooled effect on the scale of the metric."""
        return self.back_transform(self.ci[0]), self.back_transform(self.ci[1])

    @property
    def prediction_interval(self) -> tuple[float, float]:
        """Prediction interval on the scale of the metric."""
        return self.back_transform(self.pi[0]), self.back_transform(self.pi[1])

    @property
    def method_label(self) -> str:
        return {"fe": "fixed effect", "dl": "random effects (DL)", "reml": "random effects (REML)"}[self.method.value]

    def study_ci(self) -> list[tuple[float, float]]:
        """Per-study Wald CIs ``y_i ± z sqrt(v_i)``, on the scale of the metric."""
        z = stats.norm.ppf(0.5 + self.level / 2)
        return [
            (self.back_transform(y - z * math.sqrt(v)), self.back_transform(y + z * math.sqrt(v)))
            for y, v in zip(self.yi, self.vi)
        ]

    def summary_frame(self) -> list[dict[str, Any]]:
        """One row per study, then the pooled effect and the prediction interval (scale of the metric).

        Columns: ``label``, ``estimate``, ``ci_low``, ``ci_high``, ``weight_percent``, ``n``,
        ``yi``, ``vi`` (analysis scale). The rows are plain dicts (pandas is not a dependency):
        ``pandas.DataFrame(result.summary_frame()).set_index("label")`` gives statsmodels'
        frame.
        """
        rows: list[dict[str, Any]] = []
        sizes = self.n if self.n is not None else (None,) * self.k
        for label, y, v, w, (low, high), size in zip(
            self.labels, self.yi, self.vi, self.weights, self.study_ci(), sizes
        ):
            rows.append(
                {"label": label, "estimate": self.back_transform(y), "ci_low": low, "ci_high": high,
                 "weight_percent": w, "n": size, "yi": y, "vi": v}
            )
        rows.append(
            {"label": f"pooled ({self.method_label})", "estimate": self.estimate, "ci_low": self.estimate_ci[0],
             "ci_high": self.estimate_ci[1], "weight_percent": 100.0,
             "n": sum(self.n) if self.n is not None else None, "yi": self.mu, "vi": self.se**2}
        )
        rows.append(
            {"label": "prediction interval", "estimate": self.estimate, "ci_low": self.prediction_interval[0],
             "ci_high": self.prediction_interval[1], "weight_percent": None, "n": None, "yi": self.mu,
             "vi": self.se**2 + self.tau2}
        )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: settings, pooled values (both scales), heterogeneity and the studies."""
        return {
            "measure": self.measure.value,
            "method": self.method.value,
            "scale": "logit" if self.logit else "identity",
            "level": self.level,
            "prediction": self.prediction.value,
            "k": self.k,
            "estimate": self.estimate,
            "ci": list(self.estimate_ci),
            "prediction_interval": list(self.prediction_interval),
            "analysis_scale": {"mu": self.mu, "se": self.se, "ci": list(self.ci), "pi": list(self.pi)},
            "tau2": self.tau2,
            "tau": self.tau,
            "heterogeneity": {"q": self.q, "df": self.q_df, "p_value": self.q_pvalue, "i2_percent": self.i2,
                              "h2": self.h2},
            "iterations": self.iterations,
            "studies": self.summary_frame()[: self.k],
        }


def pool_inverse_variance(
    yi: Sequence[float],
    vi: Sequence[float],
    method: PoolingMethod | str = PoolingMethod.REML,
    *,
    labels: Sequence[str] | None = None,
    n: Sequence[int] | None = None,
    level: float = 0.95,
    prediction: PredictionInterval | str = PredictionInterval.NORMAL,
    measure: EffectMeasure | str = EffectMeasure.GENERIC,
    logit: bool = False,
) -> MeanPooling:
    """Fixed- or random-effects inverse-variance pooling of effects ``yi`` with sampling variances ``vi``.

    Parameters
    ----------
    yi, vi : sequence of float
        Effects and their sampling variances (> 0), ``k >= 2`` studies.
    method : {"reml", "dl", "fe"}
        τ² estimator (REML by Fisher scoring on τ² ≥ 0; DL floored at 0) or the fixed effect.
    labels, n : sequence, optional
        Study labels (default ``study 1``, ...) and sample sizes, carried into the result.
    level : float
        Level of the CIs and of the prediction interval.
    prediction : {"normal", "t"}
        Prediction interval ``mu ± q sqrt(se² + τ²)`` with the normal quantile (metafor's
        ``predict``) or ``t_{k-2}`` (Higgins et al. 2009).
    measure, logit
        Recorded in the result (``logit`` also back-transforms its summaries).

    Examples
    --------
    >>> fit = pool_inverse_variance([0.1, 0.1, 0.1], [0.01, 0.02, 0.04], "dl")
    >>> fit.tau2, round(fit.mu, 6), fit.i2
    (0.0, 0.1, 0.0)
    """
    method, prediction, measure = PoolingMethod(method), PredictionInterval(prediction), EffectMeasure(measure)
    y = np.asarray(yi, dtype=np.float64)
    k = y.size
    v = _floats(vi, "vi", k)
    y = _floats(yi, "yi", k)
    if k < 2:
        raise ValueError(f"need at least 2 studies, got {k}")
    if np.any(v <= 0):
        raise ValueError("every sampling variance must be > 0")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if prediction is PredictionInterval.T and k < 3:
        raise ValueError("the t-based prediction interval needs at least 3 studies (k - 2 degrees of freedom)")
    names = tuple(str(s) for s in labels) if labels is not None else tuple(f"study {i + 1}" for i in range(k))
    if len(names) != k:
        raise ValueError(f"{len(names)} labels for {k} studies")

    w = 1.0 / v
    q = cochran_q(y, w)
    df = k - 1
    iterations = 0
    if method is PoolingMethod.FE:
        tau2 = 0.0
        i2 = max(0.0, 100.0 * (q - df) / q) if q > 0 else 0.0
        h2 = q / df
    else:
        tau2, iterations = (dersimonian_laird_tau2(y, v), 0) if method is PoolingMethod.DL else _tau2_reml(y, v)
        s2 = df * np.sum(w) / (np.sum(w) ** 2 - np.sum(w**2))  # typical within-study variance
        i2 = float(100.0 * tau2 / (tau2 + s2))
        h2 = float((tau2 + s2) / s2)
    ws = 1.0 / (v + tau2)
    mu = float(np.sum(ws * y) / np.sum(ws))
    se = float(1.0 / math.sqrt(np.sum(ws)))
    z = float(stats.norm.ppf(0.5 + level / 2))
    quantile = z if prediction is PredictionInterval.NORMAL else float(stats.t.ppf(0.5 + level / 2, k - 2))
    half_pi = quantile * math.sqrt(se**2 + tau2)
    return MeanPooling(
        labels=names,
        yi=tuple(float(a) for a in y),
        vi=tuple(float(a) for a in v),
        n=tuple(int(a) for a in n) if n is not None else None,
        measure=measure,
        method=method,
        logit=logit,
        level=level,
        prediction=prediction,
        mu=mu,
        se=se,
        ci=(mu - z * se, mu + z * se),
        tau2=float(tau2),
        q=q,
        q_df=df,
        q_pvalue=float(stats.chi2.sf(q, df)),
        i2=i2,
        h2=h2,
        pi=(mu - half_pi, mu + half_pi),
        weights=tuple(float(a) for a in 100.0 * ws / np.sum(ws)),
        iterations=iterations,
    )


@dataclass(frozen=True)
class MeanStudies:
    """Studies reporting a metric as mean ± SD over ``n`` cases (validated on construction)."""

    labels: tuple[str, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    n: tuple[int, ...]
    source: str | None = None

    def __post_init__(self) -> None:
        where = self.source or "studies"
        k = len(self.labels)
        for name in ("mean", "sd", "n"):
            if len(getattr(self, name)) != k:
                raise InputError(where, f"{name} has {len(getattr(self, name))} values for {k} studies")
        if k < 2:
            raise InputError(where, f"need at least 2 studies to pool, got {k}")
        for label, m, s, size in zip(self.labels, self.mean, self.sd, self.n):
            if not (math.isfinite(m) and math.isfinite(s)):
                raise InputError(where, f"study {label!r}: mean and sd must be finite numbers")
            if not s > 0:
                raise InputError(where, f"study {label!r}: sd = {s} must be > 0")
            if not size >= 2 or size != int(size):
                raise InputError(where, f"study {label!r}: n = {size} must be a whole number >= 2")

    @property
    def k(self) -> int:
        return len(self.labels)

    def check_unit_interval(self) -> None:
        """Raise :class:`InputError` unless every mean is strictly between 0 and 1 (needed for the logit scale)."""
        for label, m in zip(self.labels, self.mean):
            if not 0 < m < 1:
                raise InputError(
                    self.source or "studies",
                    f"study {label!r}: mean = {m} is not strictly between 0 and 1, as the logit scale needs "
                    "(give Dice as a fraction, not a percentage)",
                )


@dataclass(frozen=True)
class MeanDifferenceStudies:
    """Two-arm studies (mean ± SD over ``n`` per arm), for a mean difference arm 1 - arm 2."""

    labels: tuple[str, ...]
    arm1: MeanStudies
    arm2: MeanStudies

    @property
    def k(self) -> int:
        return len(self.labels)


def pool_means(
    studies: MeanStudies | MeanDifferenceStudies,
    method: PoolingMethod | str = PoolingMethod.REML,
    *,
    logit: bool = False,
    pooled_sd: bool = True,
    level: float = 0.95,
    prediction: PredictionInterval | str = PredictionInterval.NORMAL,
) -> MeanPooling:
    """Pool single-arm means (``MeanStudies``, optionally on the logit scale) or mean differences.

    ``pooled_sd`` (mean differences only): variance from the pooled SD of the two arms (Normand
    1999) rather than from each arm's SD.

    Raises
    ------
    InputError
        ``logit`` with a mean outside (0, 1).
    """
    if isinstance(studies, MeanDifferenceStudies):
        if logit:
            raise ValueError("the logit scale applies to single-arm means, not to mean differences")
        a, b = studies.arm1, studies.arm2
        y, v = mean_difference_effects(a.mean, a.sd, a.n, b.mean, b.sd, b.n, pooled_sd=pooled_sd)
        sizes = tuple(x + z for x, z in zip(a.n, b.n))
        measure = EffectMeasure.MD
    else:
        if logit:
            studies.check_unit_interval()
        y, v = mean_effects(studies.mean, studies.sd, studies.n, logit=logit)
        sizes, measure = tuple(studies.n), EffectMeasure.MN
    return pool_inverse_variance(
        y, v, method, labels=studies.labels, n=sizes, level=level, prediction=prediction, measure=measure,
        logit=logit,
    )


_LABEL_COLUMNS = ("study", "label", "id", "author", "name")
_DIFFERENCE_COLUMNS = ("n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i")


def _number(where: Path, row: int, label: str, column: str, text: str | None) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise InputError(where, f"row {row} (study {label!r}): {column} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(where, f"row {row} (study {label!r}): {column} = {text!r} is not a finite number")
    return value


def read_means_csv(
    path: str | os.PathLike[str], *, logit: bool = False, difference: bool = False
) -> MeanStudies | MeanDifferenceStudies:
    """Read per-study means from a CSV file.

    Columns (any case, any order): ``study`` (or label/id/author/name; default the row number),
    ``mean``, ``sd``, ``n``; with ``difference=True`` the two-arm layout of metafor's
    ``dat.normand1999``: ``n1i, m1i, sd1i, n2i, m2i, sd2i``. Other columns are ignored.

    Parameters
    ----------
    logit : bool
        Also check that every mean is strictly in (0, 1), as pooling on the logit scale needs.

    Raises
    ------
    InputError
        Missing file or columns, non-numeric values, n < 2 or not whole, sd <= 0, a mean
        outside (0, 1) with ``logit``, fewer than 2 studies.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "does not exist" if not p.exists() else "is not a file")
    try:
        with p.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            records = [row for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    except UnicodeDecodeError:
        raise InputError(p, "is not a UTF-8 text (CSV) file") from None
    columns = {h.lower(): h for h in header}
    wanted = _DIFFERENCE_COLUMNS if difference else ("mean", "sd", "n")
    missing = [c for c in wanted if c not in columns]
    if missing:
        layout = "n1i, m1i, sd1i, n2i, m2i, sd2i" if difference else "study, mean, sd, n"
        raise InputError(p, f"missing column(s) {', '.join(missing)} (expected {layout}; found {', '.join(header) or 'none'})")
    label_column = next((columns[c] for c in _LABEL_COLUMNS if c in columns), None)
    if len(records) < 2:
        raise InputError(p, f"need at least 2 studies to pool, found {len(records)}")
    labels: list[str] = []
    values: dict[str, list[float]] = {c: [] for c in wanted}
    for i, record in enumerate(records, start=1):
        record = {(k or "").strip(): v for k, v in record.items()}
        label = (record.get(label_column) or "").strip() if label_column else ""
        label = label or f"study {i}"
        labels.append(label)
        for column in wanted:
            values[column].append(_number(p, i + 1, label, column, record.get(columns[column])))
    if len(set(labels)) != len(labels):
        dup = next(s for s in labels if labels.count(s) > 1)
        raise InputError(p, f"study {dup!r} appears more than once")

    def arm(mean: str, sd: str, n: str) -> MeanStudies:
        return MeanStudies(tuple(labels), tuple(values[mean]), tuple(values[sd]), tuple(values[n]), source=str(p))  # type: ignore[arg-type]

    if difference:
        return MeanDifferenceStudies(tuple(labels), arm("m1i", "sd1i", "n1i"), arm("m2i", "sd2i", "n2i"))
    studies = arm("mean", "sd", "n")
    if logit:
        studies.check_unit_interval()
    return studies


def write_pooling_json(result: MeanPooling, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write :meth:`MeanPooling.to_dict` as JSON (atomically; refuses to overwrite unless asked)."""
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return target


def write_studies_csv(result: MeanPooling, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write :meth:`MeanPooling.summary_frame` as CSV (studies, pooled row, prediction interval)."""
    target = Path(path)
    rows = result.summary_frame()
    with atomic_output(target, overwrite) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return target
