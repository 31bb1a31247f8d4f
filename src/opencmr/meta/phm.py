"""The proportional hazards model (Lehmann family) of diagnostic accuracy (Holling et al. 2012), as ``mada::phm``.

Each study's sensitivity ``p_i`` and false positive rate (FPR) ``u_i`` are
linked by ``p_i = u_i ** theta_i``, a one-parameter ROC curve (a Lehmann
alternative, "proportional hazards" for the survival functions of the test
scores) [1]_. ``theta < 1`` means accuracy better than chance; the smaller,
the better. Under homogeneity all studies share one ``theta``; under
heterogeneity ``theta_i ~ N(theta, tau^2)``. The study estimate is
``theta_hat_i = log(p_i) / log(u_i)``, whose delta-method variance is
``sigma_i^2 / w_i^2`` with ``sigma_i^2 = t2_i theta^2 + s2_i``,
``s2_i = 1/TP - 1/(TP+FN)``, ``t2_i = 1/FP - 1/(FP+TN)`` and ``w_i = log(u_i)``;
it depends on ``theta`` itself, so ``theta`` (and ``tau^2``) are found by the
fixed-point iteration of the adjusted profile maximum likelihood estimator
(APMLE) of [1]_, started at ``theta = 0.5, tau^2 = 0`` (heterogeneity) or at
the least-squares slope ``sum(z w)/sum(w^2)`` of ``z_i = log(p_i)`` on
``w_i`` (homogeneity), until ``theta`` changes by less than ``1e-8``.

Conventions (those of mada 0.5.12 [2]_, so that its published numbers are reproduced)
--------------------------------------------------------------------------------------
* Counts are continuity-corrected first (default 0.5 to every cell of every
  study when any cell is zero); the observed FPR range used for the partial
  AUC is that of the *uncorrected* counts.
* ``tau^2`` is updated without truncation during the iteration and set to 0
  afterwards when negative. Standard errors come from the inverse of the
  outer product of the per-study scores (diagonal only: the covariance of
  ``theta`` and ``tau^2`` is dropped, as mada does). Confidence intervals are
  Wald intervals ``estimate +/- z se`` (R's ``confint.default``), so the one of
  ``tau^2`` may reach below zero.
* The log-likelihood omits the normal constant:
  ``-1/2 sum log(V_i) - 1/2 sum (theta_hat_i - theta)^2 / V_i`` with
  ``V_i = sigma_i^2/w_i^2 + tau^2``; it has 1 (homogeneity) or 2
  (heterogeneity) degrees of freedom, and AIC and BIC use them, BIC with
  ``log(k)``.
* The chi-square goodness-of-fit statistic is ``sum (theta_hat_i - theta)^2 / V_i``.
  Its p-value uses ``k - 1`` (homogeneity) or ``k - 2`` (heterogeneity)
  degrees of freedom; mada *prints* ``df = 1`` or ``2`` beside it (the number
  of parameters), which is not the df its p-value uses. :attr:`Phm.gof_df` is
  the df of the p-value.
* AUC is the exact area ``1/(theta + 1)``; the partial AUC over the observed
  FPR range ``[a, b]`` is the mean height
  ``(b^(theta+1) - a^(theta+1)) / ((theta + 1)(b - a))``; their intervals
  plug in the limits of ``theta``'s interval (the lower limit of ``theta``
  gives the upper limit of the AUC).

References
----------
.. [1] H. Holling, W. Böhning and D. Böhning, "Meta-analysis of diagnostic
   studies based upon SROC-curves: a mixed model approach using the Lehmann
   family", Statistical Modelling 12(4), 2012, 347-375 (cited by mada's
   ``phm`` help page as "...a Mixed Model Approach using a Proportional
   Hazards Model"; DOI not verified here).
.. [2] P. Doebler, H. Holling and B. Sousa-Pinto, "Meta-Analysis of
   Diagnostic Accuracy with mada", vignette of the R package mada 0.5.12
   (``phm``, ``AUC.phm``).

Examples
--------
>>> from opencmr.meta.data import DtaStudies
>>> studies = DtaStudies(("a", "b", "c", "d"), tp=[45, 30, 80, 22], fp=[10, 12, 30, 5],
...                      fn=[5, 8, 12, 6], tn=[90, 70, 150, 60])
>>> fit = phm(studies)
>>> round(fit.theta.estimate, 4), round(fit.auc.estimate, 3)
(0.069, 0.935)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from opencmr.errors import InputError
from opencmr.meta.data import ContinuityCorrection, DtaStudies

__all__ = ["Estimate", "Phm", "phm"]

_DEFAULT_CORRECTION = ContinuityCorrection()
_MAX_ITERATIONS = 100
"""mada's ``l``: the fixed-point iteration runs at most this many steps (the start counts as one)."""
_TOLERANCE = 1e-8
"""Convergence: ``|theta_j - theta_{j-1}|`` below this."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval (and standard error, when there is one)."""

    estimate: float
    ci_lower: float
    ci_upper: float
    se: float = math.nan

    def to_dict(self) -> dict[str, float | None]:
        return {
            "estimate": self.estimate,
            "ci_lower": self.ci_lower,
            "ci_upper": self.ci_upper,
            "se": self.se if math.isfinite(self.se) else None,
        }


@dataclass(frozen=True)
class Phm:
    """Result of :func:`phm`: the proportional hazards model ``sens = fpr ** theta``.

    Attributes
    ----------
    ids : tuple of str
    hetero : bool
        Whether ``theta`` varies between studies (random effect with variance ``tau^2``).
    level : float
    correction : ContinuityCorrection
    correction_note : str
    theta : Estimate
        Accuracy parameter, Wald interval.
    tau2 : Estimate or None
        Between-study variance of ``theta`` (heterogeneity only), Wald interval (may reach below 0).
    loglik : float
        mada's log-likelihood (without the normal constant).
    n_params : int
        1 (homogeneity) or 2 (heterogeneity).
    gof_statistic, gof_df, gof_p_value : float, int, float
        Chi-square goodness of fit and the df of its p-value (``k - n_params``).
    auc, pauc : Estimate
        ``1/(theta+1)`` and the mean sensitivity over the observed FPR range.
    observed_fpr_range : tuple of float
        Range of the uncorrected study FPRs.
    study_theta : numpy.ndarray
        ``log(sens_i)/log(fpr_i)`` from the corrected counts.
    iterations : int
        Fixed-point steps (mada's count: the start is step 1).
    converged : bool
    notes : tuple of str
    """

    ids: tuple[str, ...]
    hetero: bool
    level: float
    correction: ContinuityCorrection
    correction_note: str
    theta: Estimate
    tau2: Estimate | None
    loglik: float
    n_params: int
    gof_statistic: float
    gof_df: int
    gof_p_value: float
    auc: Estimate
    pauc: Estimate
    observed_fpr_range: tuple[float, float]
    study_theta: np.ndarray
    iterations: int
    converged: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def k(self) -> int:
        return len(self.ids)

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.k) * self.n_params

    def sroc(self, fpr: np.ndarray | float) -> np.ndarray:
        """SROC curve: sensitivity ``fpr ** theta`` at ``fpr``."""
        return np.power(np.asarray(fpr, dtype=np.float64), self.theta.estimate)

    def summary_frame(self) -> list[dict[str, Any]]:
        """The estimates as rows (``pandas.DataFrame(result.summary_frame())`` gives a data frame).

        Rows: theta, tau2 (heterogeneity), AUC, pAUC (with se where defined and
        intervals), logLik, AIC, BIC and the goodness-of-fit chi-square (its
        p-value in ``p_value``).
        """
        nan = math.nan

        def row(name: str, value: Estimate | float, p_value: float = nan) -> dict[str, Any]:
            if isinstance(value, Estimate):
                return {
                    "parameter": name,
                    "estimate": value.estimate,
                    "se": value.se,
                    "ci_lower": value.ci_lower,
                    "ci_upper": value.ci_upper,
                    "p_value": p_value,
                }
            return {
                "parameter": name,
                "estimate": value,
                "se": nan,
                "ci_lower": nan,
                "ci_upper": nan,
                "p_value": p_value,
            }

        rows = [row("theta", self.theta)]
        if self.tau2 is not None:
            rows.append(row("tau2", self.tau2))
        rows += [
            row("AUC", self.auc),
            row("pAUC", self.pauc),
            row("logLik", self.loglik),
            row("AIC", self.aic),
            row("BIC", self.bic),
            row("chisq_gof", self.gof_statistic, self.gof_p_value),
        ]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, including the continuity correction and notes."""
        return {
            "model": "proportional hazards model sens = fpr^theta (Holling 2012), APMLE",
            "hetero": self.hetero,
            "level": self.level,
            "k": self.k,
            "ids": list(self.ids),
            "correction": {**self.correction.to_dict(), "applied": self.correction_note},
            "theta": self.theta.to_dict(),
            "tau2": None if self.tau2 is None else self.tau2.to_dict(),
            "loglik": self.loglik,
            "n_params": self.n_params,
            "aic": self.aic,
            "bic": self.bic,
            "goodness_of_fit": {"chisq": self.gof_statistic, "df": self.gof_df, "p_value": self.gof_p_value},
            "auc": self.auc.to_dict(),
            "pauc": self.pauc.to_dict(),
            "observed_fpr_range": list(self.observed_fpr_range),
            "study_theta": self.study_theta.tolist(),
            "convergence": {"iterations": self.iterations, "converged": self.converged},
            "notes": list(self.notes),
        }


def _mean_power(theta: float, a: float, b: float) -> float:
    """Mean of ``u ** theta`` over ``[a, b]`` (``a ** theta`` when the range is a point)."""
    if b - a <= 0:
        return a**theta
    return (b ** (theta + 1) - a ** (theta + 1)) / ((theta + 1) * (b - a))


def _iterate(z, s2, w, t2, hetero: bool, floor_tau2: bool) -> tuple[float, float, int, bool]:
    """mada's fixed-point iteration: ``(theta, tau2, iterations, converged)`` (the start counts as step 1)."""
    theta_hat = z / w
    theta = 0.5 if hetero else float(np.sum(z * w) / np.sum(w**2))
    tau2 = 0.0
    for iterations in range(2, _MAX_ITERATIONS + 1):
        sigma2 = t2 * theta**2 + s2
        if hetero:
            v = 1.0 / (sigma2 / w**2 + tau2)
            r = theta_hat - theta
            new_theta = np.sum(theta_hat * v) / np.sum(v - r**2 * v**2 * (t2 / w**2) + (t2 / w**2) * v)
            tau2 = float(np.sum((r**2 - sigma2 / w**2) * v**2) / np.sum(v**2))
            if floor_tau2:
                tau2 = max(tau2, 0.0)
        else:
            v = 1.0 / sigma2
            new_theta = np.sum(z * w * v) / np.sum(w**2 * v - (z - w * theta) ** 2 * v**2 * t2 + t2 * v)
        step, theta = abs(new_theta - theta), float(new_theta)
        if step < _TOLERANCE:
            return theta, tau2, iterations, True
    return theta, tau2, _MAX_ITERATIONS, False


def phm(
    studies: DtaStudies,
    correction: ContinuityCorrection = _DEFAULT_CORRECTION,
    hetero: bool = True,
    level: float = 0.95,
) -> Phm:
    """Fit the proportional hazards model ``sens = fpr ** theta`` (Holling et al. 2012), as ``mada::phm``.

    Parameters
    ----------
    studies : DtaStudies
    correction : ContinuityCorrection
        Added to the cells first (default: mada's 0.5 to all cells of all
        studies when any cell is zero).
    hetero : bool
        Random effect for ``theta`` (variance ``tau^2``, mada's default) or one common ``theta``.
    level : float
        Confidence level of the Wald intervals.

    Returns
    -------
    Phm

    Raises
    ------
    InputError
        Fewer than 3 studies (heterogeneity) or 2 (homogeneity) -- the
        goodness-of-fit test needs ``k - n_params >= 1`` -- or a zero cell
        left by the correction (a log of zero).

    Warns
    -----
    RuntimeWarning
        When the iteration stops after 100 steps without converging (as mada warns).

    References
    ----------
    .. [1] H. Holling, W. Böhning and D. Böhning, Statistical Modelling 12(4), 2012, 347-375.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n_params = 2 if hetero else 1
    studies.require(
        n_params + 1, f"the proportional hazards model ({n_params} parameter(s) and a goodness-of-fit test)"
    )
    counts = studies.counts()
    tp, fp, fn, tn = correction.apply(counts).T
    zero = np.any(np.stack([tp, fp, fn, tn]) == 0, axis=0)
    if zero.any():
        bad = ", ".join(repr(studies.ids[i]) for i in np.flatnonzero(zero))
        raise InputError(
            studies.source or "studies",
            f"zero cells in {bad}: the proportional hazards model takes logs of the rates and needs a continuity "
            f"correction (got {correction.value} with scope {correction.scope.value!r})",
        )
    z = np.log(tp / (tp + fn))
    s2 = 1.0 / tp - 1.0 / (tp + fn)
    w = np.log(fp / (fp + tn))
    t2 = 1.0 / fp - 1.0 / (fp + tn)
    theta_hat = z / w
    notes = [
        "adjusted profile maximum likelihood (fixed-point iteration) as mada::phm",
        "Wald intervals; AUC and pAUC intervals from the limits of theta's interval",
        "log-likelihood without the normal constant (as mada)",
        f"goodness-of-fit p-value on k - {n_params} df (mada prints df = {n_params})",
    ]

    theta, tau2, iterations, converged = _iterate(z, s2, w, t2, hetero, floor_tau2=False)
    if hetero and not converged:
        # mada lets tau^2 go negative during the iteration; with (near-)homogeneous studies that can
        # oscillate without converging. Retry with tau^2 floored at 0 in every step (a deviation from mada).
        theta, tau2, iterations, converged = _iterate(z, s2, w, t2, hetero, floor_tau2=True)
        notes.append(
            "mada's iteration did not converge; refitted with tau^2 floored at 0 in every step (deviation from mada)"
        )
    if not converged:
        warnings.warn(f"phm: no convergence after {_MAX_ITERATIONS} iterations", RuntimeWarning, stacklevel=2)
        notes.append(f"iteration stopped after {_MAX_ITERATIONS} steps without converging")

    z_crit = float(stats.norm.ppf(0.5 + level / 2))
    sigma2 = t2 * theta**2 + s2
    r = theta_hat - theta
    if hetero:
        if tau2 < 0:
            tau2 = 0.0
            notes.append("tau^2 estimate was negative and is set to 0")
        var = sigma2 / w**2 + tau2
        v = 1.0 / var
        score_theta = r * v + r**2 * v**2 * (t2 / w**2) * theta - (t2 / w**2) * v * theta
        score_tau2 = 0.5 * r**2 * v**2 - 0.5 * v
        det = np.sum(score_theta**2) * np.sum(score_tau2**2) - np.sum(score_theta * score_tau2) ** 2
        if det > 0:
            se_theta = math.sqrt(np.sum(score_tau2**2) / det)
            se_tau2 = math.sqrt(np.sum(score_theta**2) / det)
        else:  # proportional scores (e.g. identical studies): the information matrix is singular
            se_theta = se_tau2 = math.nan
            notes.append("singular score information (no spread between studies): no standard errors or intervals")
        tau2_est = Estimate(tau2, tau2 - z_crit * se_tau2, tau2 + z_crit * se_tau2, se_tau2)
    else:
        var = sigma2 / w**2
        v = 1.0 / sigma2
        score_theta = (z - w * theta) * w * v + (z - w * theta) ** 2 * v**2 * t2 * theta - t2 * v * theta
        se_theta = math.sqrt(1.0 / np.sum(score_theta**2))
        tau2_est = None
    # (z - w theta)^2 / sigma2 == (theta_hat - theta)^2 / (sigma2 / w^2): one quadratic form for both models.
    # mada's homogeneous log-likelihood takes the log of sigma2 (the variance of z - w theta), the
    # heterogeneous one that of sigma2 / w^2 + tau^2 (the variance of theta_hat): kept as mada has them.
    gof = float(np.sum(r**2 / var))
    loglik = float(-0.5 * np.sum(np.log(var if hetero else sigma2)) - 0.5 * gof)
    gof_df = studies.k - n_params

    theta_est = Estimate(theta, theta - z_crit * se_theta, theta + z_crit * se_theta, se_theta)
    if theta_est.ci_lower <= 0:
        notes.append(
            "the lower limit of theta's interval is not positive: the AUC and pAUC upper limits are not meaningful"
        )
    raw_fpr = counts[:, 1] / (counts[:, 1] + counts[:, 3])
    a, b = float(raw_fpr.min()), float(raw_fpr.max())
    auc = Estimate(1.0 / (theta + 1.0), 1.0 / (theta_est.ci_upper + 1.0), 1.0 / (theta_est.ci_lower + 1.0))
    pauc = Estimate(
        _mean_power(theta, a, b), _mean_power(theta_est.ci_upper, a, b), _mean_power(theta_est.ci_lower, a, b)
    )
    return Phm(
        ids=studies.ids,
        hetero=hetero,
        level=level,
        correction=correction,
        correction_note=correction.describe(counts),
        theta=theta_est,
        tau2=tau2_est,
        loglik=loglik,
        n_params=n_params,
        gof_statistic=gof,
        gof_df=gof_df,
        gof_p_value=float(stats.chi2.sf(gof, gof_df)),
        auc=auc,
        pauc=pauc,
        observed_fpr_range=(a, b),
        study_theta=theta_hat,
        iterations=iterations,
        converged=converged,
        notes=tuple(notes),
    )
