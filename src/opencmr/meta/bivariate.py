"""The bivariate random-effects model of diagnostic accuracy (Reitsma 2005), as R's ``mada::reitsma``.

Two layers:

* :func:`fit_bivariate`, a generic engine for two correlated outcomes per
  study with known within-study covariances: ``y_i ~ N(X_i beta, Psi + S_i)``
  with an unstructured between-study covariance ``Psi`` (two variances and a
  correlation), estimated by maximum likelihood (ML) or restricted maximum
  likelihood (REML) [3]_ [4]_. ``beta`` is profiled out by generalised least
  squares (GLS) for each ``Psi``; ``Psi`` is parametrised by its Cholesky
  factor (log of the diagonal), so it stays positive (semi-)definite, and the
  (restricted) log-likelihood is maximised with BFGS on its analytic
  gradient. The covariance of ``beta`` is the GLS one at the optimum, as in
  ``mvmeta`` [4]_.
* :func:`reitsma`, the diagnostic model on top of it: per study the logit of
  the sensitivity and the logit of the false positive rate (FPR), with
  within-study variances ``1/(n1 p (1-p))`` and ``1/(n0 u (1-u))`` from the
  continuity-*corrected* counts and no within-study covariance [1]_. The
  result, :class:`Reitsma`, holds the pooled sensitivity, specificity and FPR
  (Wald intervals on the logit scale, back-transformed), the between-study
  variances and correlation, log-likelihood/AIC/BIC, the HSROC parameters by
  Harbord et al.'s conversion [2]_, the Rutter-Gatsonis SROC curve [5]_, mada's
  AUC and partial AUC, and the confidence and prediction ellipses; with a
  study-level covariate, a bivariate meta-regression and a likelihood-ratio
  test (:class:`MetaRegression`).

Conventions (those of mada 0.5.12 [6]_, so that its published numbers are reproduced)
--------------------------------------------------------------------------------------
* The log-likelihood includes the normal constants and, for REML, the
  ``log|sum X_i' W_i X_i|`` term and ``(n - q)/2 log(2 pi)``; :class:`Reitsma`
  adds mada's Jacobian term ``sum_i -log(p_i(1-p_i)) - log(u_i(1-u_i))`` (the
  density of the corrected proportions rather than of their logits). AIC and
  BIC count ``2q + 3`` parameters and ``2k`` observations.
* AUC is mada's trapezoid ``(s_1/2 + s_2 + ... + s_98 + s_99/2)/99`` of the
  SROC at FPR = 0.01, ..., 0.99; the partial AUC uses 99 points spanning the
  observed (uncorrected) FPR range clamped to [0.01, 0.99], with the same
  formula (so it is "normalised" by the range).
* The confidence region is the ellipse of ``vcov(mu)`` and the prediction
  region that of ``Psi + vcov(mu)``, both with radius ``sqrt(chi2_2(level))``
  on the logit scale, back-transformed to (FPR, sensitivity).
* The likelihood-ratio test of a covariate compares ML fits (REML
  likelihoods of models with different fixed effects are not comparable);
  mada's vignette compares such models with ML fits as well.

References
----------
.. [1] J. B. Reitsma, A. S. Glas, A. W. S. Rutjes, R. J. P. M. Scholten,
   P. M. Bossuyt and A. H. Zwinderman, "Bivariate analysis of sensitivity
   and specificity produces informative summary measures in diagnostic
   reviews", J Clin Epidemiol 58(10), 2005, 982-990,
   doi:10.1016/j.jclinepi.2005.02.022.
.. [2] R. M. Harbord, J. J. Deeks, M. Egger, P. Whiting and J. A. C. Sterne,
   "A unification of models for meta-analysis of diagnostic accuracy
   studies", Biostatistics 8(2), 2007, 239-251,
   doi:10.1093/biostatistics/kxl004.
.. [3] H. C. van Houwelingen, L. R. Arends and T. Stijnen, "Advanced methods
   in meta-analysis: multivariate approach and meta-regression", Stat Med
   21(4), 2002, 589-624, doi:10.1002/sim.1040.
.. [4] A. Gasparrini, B. Armstrong and M. G. Kenward, "Multivariate
   meta-analysis for non-linear and other multi-parameter associations",
   Stat Med 31(29), 2012, 3821-3839, doi:10.1002/sim.5471 (R package mvmeta).
.. [5] C. M. Rutter and C. A. Gatsonis, "A hierarchical regression approach
   to meta-analysis of diagnostic test accuracy evaluations", Stat Med
   20(19), 2001, 2865-2884, doi:10.1002/sim.942.
.. [6] P. Doebler, H. Holling and B. Sousa-Pinto, "Meta-Analysis of
   Diagnostic Accuracy with mada", vignette of the R package mada 0.5.12.

Examples
--------
>>> from opencmr.meta.data import DtaStudies
>>> studies = DtaStudies(("a", "b", "c", "d"), tp=[45, 30, 80, 22], fp=[10, 12, 30, 5],
...                      fn=[5, 8, 12, 6], tn=[90, 70, 150, 60])
>>> fit = reitsma(studies)
>>> round(fit.sensitivity.estimate, 3), round(fit.specificity.estimate, 3)
(0.843, 0.87)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from opencmr.errors import InputError, OpenCMRError
from opencmr.meta.data import ContinuityCorrection, DtaStudies

__all__ = [
    "BivariateConvergenceError",
    "BivariateFit",
    "BivariateI2",
    "EstimationMethod",
    "HsrocParameters",
    "MetaRegression",
    "PooledProportion",
    "Reitsma",
    "bivariate_i2",
    "fit_bivariate",
    "mada_auc",
    "reitsma",
]

_LOG_2PI = math.log(2.0 * math.pi)
_DEFAULT_CORRECTION = ContinuityCorrection()
_ZERO_SD = 1e-5
"""Between-study SDs below this (logit scale) are treated as zero: correlation and HSROC parameters are undefined."""
_GRADIENT_TOLERANCE = 1e-5
"""Largest gradient norm (of minus the log-likelihood in the Cholesky parameters) accepted as converged."""


class EstimationMethod(str, Enum):
    """How the between-study covariance is estimated."""

    REML = "reml"
    """Restricted maximum likelihood (mada's default)."""
    ML = "ml"
    """Maximum likelihood (needed to compare models with different fixed effects)."""


class BivariateConvergenceError(OpenCMRError):
    """The (restricted) likelihood maximisation did not converge; no estimates are returned."""


@dataclass(frozen=True)
class BivariateFit:
    """Estimates of the generic bivariate random-effects model ``y_i ~ N((I_2 kron x_i') beta, Psi + S_i)``.

    Attributes
    ----------
    method : EstimationMethod
    coefficients : numpy.ndarray
        ``(p, 2)``: one column of regression coefficients per outcome.
    vcov : numpy.ndarray
        ``(2p, 2p)`` GLS covariance of the coefficients, outcome-major (all
        coefficients of outcome 1, then those of outcome 2), as mvmeta orders them.
    psi : numpy.ndarray
        ``(2, 2)`` between-study covariance.
    loglik : float
        Maximised log-likelihood (REML: restricted) of ``y``, with all constants.
    n_obs : int
        Number of observations, ``2k``.
    iterations : int
        Optimiser iterations.
    gradient_norm : float
        Norm of the gradient at the optimum (Cholesky parametrisation).
    """

    method: EstimationMethod
    coefficients: np.ndarray
    vcov: np.ndarray
    psi: np.ndarray
    loglik: float
    n_obs: int
    iterations: int
    gradient_norm: float

    @property
    def n_params(self) -> int:
        """Fixed effects plus the three parameters of ``Psi``."""
        return int(self.coefficients.size) + 3

    @property
    def se(self) -> np.ndarray:
        """``(p, 2)`` standard errors of the coefficients."""
        return np.sqrt(np.diag(self.vcov)).reshape(2, -1).T

    @property
    def tau2(self) -> np.ndarray:
        """The two between-study variances."""
        return np.diag(self.psi).copy()

    @property
    def rho(self) -> float:
        """Between-study correlation (NaN when a variance is zero)."""
        sd = np.sqrt(np.diag(self.psi))
        return float(self.psi[0, 1] / (sd[0] * sd[1])) if sd.min() > _ZERO_SD else math.nan

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.n_obs) * self.n_params


def _cholesky_psi(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chol = np.array([[math.exp(theta[0]), 0.0], [theta[1], math.exp(theta[2])]])
    return chol, chol @ chol.T


def _profile(
    psi: np.ndarray, y: np.ndarray, s: np.ndarray, x: np.ndarray, method: EstimationMethod
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Minus the (restricted) log-likelihood at ``psi`` with beta by GLS; its gradient in ``psi``; beta; vcov."""
    sigma = s + psi
    w = np.linalg.inv(sigma)  # (k, 2, 2)
    sign, logdet = np.linalg.slogdet(sigma)
    if np.any(sign <= 0):
        return math.inf, np.zeros((2, 2)), np.zeros(x.shape[2]), np.zeros((x.shape[2],) * 2)
    xtw = np.einsum("kiq,kij->kqj", x, w)  # X_i' W_i
    h = np.einsum("kqj,kjr->qr", xtw, x)
    g = np.einsum("kqj,kj->q", xtw, y)
    h_inv = np.linalg.inv(h)
    beta = h_inv @ g
    r = y - np.einsum("kiq,q->ki", x, beta)
    wr = np.einsum("kij,kj->ki", w, r)
    n, q = y.size, x.shape[2]
    value = 0.5 * (n * _LOG_2PI + logdet.sum() + np.einsum("ki,ki->", r, wr))
    grad = 0.5 * (w - np.einsum("ki,kj->kij", wr, wr)).sum(axis=0)
    if method is EstimationMethod.REML:
        value += 0.5 * (np.linalg.slogdet(h)[1] - q * _LOG_2PI)
        wx = np.einsum("kij,kjq->kiq", w, x)
        grad -= 0.5 * np.einsum("kiq,qr,kjr->ij", wx, h_inv, wx)
    return float(value), grad, beta, h_inv


def _objective(theta, y, s, x, method) -> tuple[float, np.ndarray]:
    chol, psi = _cholesky_psi(theta)
    value, grad_psi, _, _ = _profile(psi, y, s, x, method)
    if not math.isfinite(value):
        return math.inf, np.zeros(3)
    d_chol = 2.0 * grad_psi @ chol
    return value, np.array([d_chol[0, 0] * chol[0, 0], d_chol[1, 0], d_chol[1, 1] * chol[1, 1]])


def _starting_values(y: np.ndarray, s: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
    """Moment-like starts: residual variances less the mean within-study variance, correlation 0 and observed."""
    beta, *_ = np.linalg.lstsq(x.reshape(-1, x.shape[2]), y.reshape(-1), rcond=None)
    r = y - np.einsum("kiq,q->ki", x, beta)
    var = np.maximum(r.var(axis=0, ddof=1) - s[:, [0, 1], [0, 1]].mean(axis=0), 0.05 * r.var(axis=0, ddof=1) + 1e-4)
    corr = float(np.clip(np.corrcoef(r.T)[0, 1], -0.9, 0.9)) if np.all(r.std(axis=0) > 0) else 0.0
    starts = []
    for rho in (0.0, corr):
        psi = np.array([[var[0], rho * math.sqrt(var[0] * var[1])], [rho * math.sqrt(var[0] * var[1]), var[1]]])
        chol = np.linalg.cholesky(psi)
        starts.append(np.array([math.log(chol[0, 0]), chol[1, 0], math.log(chol[1, 1])]))
    return starts


def fit_bivariate(
    y: np.ndarray,
    s: np.ndarray,
    design: np.ndarray | None = None,
    method: EstimationMethod | str = EstimationMethod.REML,
) -> BivariateFit:
    """Fit the bivariate random-effects (meta-regression) model by ML or REML.

    Parameters
    ----------
    y : array_like, shape (k, 2)
        Two outcomes per study.
    s : array_like, shape (k, 2, 2)
        Known within-study covariance matrices (symmetric positive definite).
    design : array_like, shape (k, p), optional
        Study-level design matrix (default: a column of ones); each outcome
        gets its own coefficients, ``mu_i = (x_i' beta_1, x_i' beta_2)``.
    method : {"reml", "ml"}

    Returns
    -------
    BivariateFit

    Raises
    ------
    ValueError
        Shapes that do not match, non-finite values, a design of deficient
        rank, or too few studies (``2k`` must exceed the ``2p + 3`` parameters).
    BivariateConvergenceError
        The optimiser did not reach a stationary point.

    Examples
    --------
    The van Houwelingen et al. (2002) BCG example: log odds of tuberculosis
    in the control and vaccinated arms of 13 trials, ML.

    >>> import numpy as np
    >>> events = np.array([[11, 4], [29, 6], [11, 3], [248, 62], [47, 33], [372, 180], [10, 8],
    ...                    [499, 505], [45, 29], [65, 17], [141, 186], [3, 5], [29, 27]])
    >>> free = np.array([[128, 119], [274, 300], [209, 228], [12619, 13536], [5761, 5036],
    ...                  [1079, 1361], [619, 2537], [87892, 87886], [7232, 7470], [1600, 1699],
    ...                  [27197, 50448], [2338, 2493], [17825, 16886]])
    >>> s = np.zeros((13, 2, 2)); s[:, [0, 1], [0, 1]] = 1 / events + 1 / free
    >>> fit = fit_bivariate(np.log(events / free), s, method="ml")
    >>> np.round(fit.coefficients[0], 4), round(fit.rho, 4)
    (array([-4.096 , -4.8337]), 0.9467)
    """
    method = EstimationMethod(method)
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != 2:
        raise ValueError(f"y must have shape (k, 2), got {y.shape}")
    k = y.shape[0]
    if s.shape != (k, 2, 2):
        raise ValueError(f"s must have shape ({k}, 2, 2), got {s.shape}")
    design = np.ones((k, 1)) if design is None else np.asarray(design, dtype=np.float64)
    if design.ndim != 2 or design.shape[0] != k:
        raise ValueError(f"design must have shape ({k}, p), got {design.shape}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(s)) and np.all(np.isfinite(design))):
        raise ValueError("y, s and design must be finite")
    p = design.shape[1]
    if np.linalg.matrix_rank(design) < p:
        raise ValueError("the design matrix is rank deficient (a constant or collinear covariate?)")
    if 2 * k <= 2 * p + 3:
        raise ValueError(f"{2 * p + 3} parameters need at least {p + 2} studies, got {k}")
    if np.any(np.linalg.eigvalsh(s) <= 0):
        raise ValueError("within-study covariances must be positive definite")
    x = np.einsum("ij,kq->kijq", np.eye(2), design).reshape(k, 2, 2 * p)  # I_2 kron x_i', outcome-major

    best = None
    for start in _starting_values(y, s, x):
        res = optimize.minimize(
            _objective, start, args=(y, s, x, method), jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 2000}
        )
        if best is None or res.fun < best.fun:
            best = res
    grad_norm = float(np.linalg.norm(_objective(best.x, y, s, x, method)[1]))
    if not (math.isfinite(best.fun) and grad_norm < _GRADIENT_TOLERANCE):
        polished = optimize.minimize(
            _objective,
            best.x,
            args=(y, s, x, method),
            jac=True,
            method="L-BFGS-B",
            options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 5000},
        )
        if polished.fun <= best.fun:
            best = polished
        grad_norm = float(np.linalg.norm(_objective(best.x, y, s, x, method)[1]))
    if not (math.isfinite(best.fun) and grad_norm < _GRADIENT_TOLERANCE):
        raise BivariateConvergenceError(
            f"the {method.value.upper()} fit of the bivariate model did not converge "
            f"(gradient norm {grad_norm:.2g} after {best.nit} iterations: {best.message})"
        )
    _, psi = _cholesky_psi(best.x)
    value, _, beta, vcov = _profile(psi, y, s, x, method)
    for array in (beta, vcov, psi):
        array.setflags(write=False)
    return BivariateFit(
        method=method,
        coefficients=beta.reshape(2, p).T,
        vcov=vcov,
        psi=psi,
        loglik=-value,
        n_obs=2 * k,
        iterations=int(best.nit),
        gradient_norm=grad_norm,
    )


# ---------------------------------------------------------------------------------------------------------------------
# The diagnostic model


@dataclass(frozen=True)
class PooledProportion:
    """A pooled proportion with its Wald interval on the logit scale, back-transformed."""

    estimate: float
    ci_lower: float
    ci_upper: float
    logit: float
    logit_se: float

    @classmethod
    def from_logit(cls, logit: float, se: float, level: float) -> PooledProportion:
        z = float(stats.norm.ppf(0.5 + level / 2))
        return cls(
            float(special.expit(logit)),
            float(special.expit(logit - z * se)),
            float(special.expit(logit + z * se)),
            float(logit),
            float(se),
        )

    def complement(self) -> PooledProportion:
        """``1 - p`` (specificity from FPR), interval bounds swapped."""
        return PooledProportion(1 - self.estimate, 1 - self.ci_upper, 1 - self.ci_lower, -self.logit, self.logit_se)

    def to_dict(self) -> dict[str, float]:
        return {
            "estimate": self.estimate,
            "ci_lower": self.ci_lower,
            "ci_upper": self.ci_upper,
            "logit": self.logit,
            "logit_se": self.logit_se,
        }


@dataclass(frozen=True)
class HsrocParameters:
    """Rutter-Gatsonis HSROC parameters from the bivariate estimates (Harbord et al. 2007, as mada).

    With ``mu1``/``mu2`` the mean logit sensitivity/FPR, ``s1``/``s2`` their
    between-study SDs and ``s12`` their covariance: ``beta = ln(s2/s1)``,
    ``Lambda = sqrt(s2/s1) mu1 - sqrt(s1/s2) mu2``,
    ``Theta = (sqrt(s2/s1) mu1 + sqrt(s1/s2) mu2)/2``,
    ``sigma2_theta = (s1 s2 + s12)/2``, ``sigma2_alpha = 2 (s1 s2 - s12)``.
    """

    Lambda: float
    Theta: float
    beta: float
    sigma2_theta: float
    sigma2_alpha: float

    @classmethod
    def from_bivariate(cls, mu: np.ndarray, psi: np.ndarray) -> HsrocParameters:
        s1, s2 = math.sqrt(psi[0, 0]), math.sqrt(psi[1, 1])
        if min(s1, s2) <= _ZERO_SD:
            nan = math.nan
            return cls(nan, nan, nan, nan, nan)
        r, s12 = math.sqrt(s2 / s1), float(psi[0, 1])
        return cls(
            Lambda=float(r * mu[0] - mu[1] / r),
            Theta=float(0.5 * (r * mu[0] + mu[1] / r)),
            beta=math.log(s2 / s1),
            sigma2_theta=0.5 * (s1 * s2 + s12),
            sigma2_alpha=2.0 * (s1 * s2 - s12),
        )

    def sroc(self, fpr: np.ndarray | float) -> np.ndarray:
        """Rutter-Gatsonis SROC: ``logit(sens) = Lambda exp(-beta/2) + exp(-beta) logit(fpr)``."""
        return special.expit(self.Lambda * math.exp(-self.beta / 2) + math.exp(-self.beta) * special.logit(fpr))

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready (undefined parameters, when a between-study SD is zero, are ``None``)."""
        values = {
            "Lambda": self.Lambda,
            "Theta": self.Theta,
            "beta": self.beta,
            "sigma2_theta": self.sigma2_theta,
            "sigma2_alpha": self.sigma2_alpha,
        }
        return {name: _finite_or_none(value) for name, value in values.items()}


@dataclass(frozen=True)
class MetaRegression:
    """A study-level covariate in the bivariate model and its likelihood-ratio test.

    Attributes
    ----------
    covariate : str
    kind : {"numeric", "categorical"}
    terms : tuple of str
        Names of the design columns: ``"(Intercept)"``, then the covariate (numeric)
        or one dummy ``"name[level]"`` per non-reference level (the first level,
        in sorted order, is the reference, as R's factors).
    levels : tuple of str
        Levels of a categorical covariate (empty for a numeric one).
    lr_statistic, lr_df, lr_p_value : float, int, float
        Likelihood-ratio test against the model without the covariate, from ML fits
        of both (``2 (ll_with - ll_without)``, chi-square with ``2 (p - 1)`` df).
    loglik_ml_with, loglik_ml_without, aic_ml_with, aic_ml_without : float
        The ML log-likelihoods (with mada's Jacobian term) and AICs of both models.
    """

    covariate: str
    kind: str
    terms: tuple[str, ...]
    levels: tuple[str, ...]
    lr_statistic: float
    lr_df: int
    lr_p_value: float
    loglik_ml_with: float
    loglik_ml_without: float
    aic_ml_with: float
    aic_ml_without: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "covariate": self.covariate,
            "kind": self.kind,
            "terms": list(self.terms),
            "levels": list(self.levels),
            "lr_test": {"statistic": self.lr_statistic, "df": self.lr_df, "p_value": self.lr_p_value, "fits": "ML"},
            "loglik_ml": {"with": self.loglik_ml_with, "without": self.loglik_ml_without},
            "aic_ml": {"with": self.aic_ml_with, "without": self.aic_ml_without},
        }


def _ellipse(centre: np.ndarray, cov: np.ndarray, level: float, n: int = 100) -> np.ndarray:
    """``n`` points (closed) of the ``level`` ellipse of N(centre, cov) on the logit scale, as (FPR, sens)."""
    radius = math.sqrt(stats.chi2.ppf(level, 2))
    angle = np.linspace(0.0, 2.0 * math.pi, n)
    vals, vecs = np.linalg.eigh(cov)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    pts = centre[:, None] + radius * vecs @ (np.sqrt(np.maximum(vals, 0.0))[:, None] * circle)
    return np.stack([special.expit(pts[1]), special.expit(pts[0])], axis=1)


def mada_auc(sroc: Callable[[np.ndarray], np.ndarray], fpr: np.ndarray) -> float:
    """mada's area: ``(s_1/2 + s_2 + ... + s_{n-1} + s_n/2)/n`` of the SROC at the ``n`` points ``fpr``."""
    sens = np.asarray(sroc(np.asarray(fpr, dtype=np.float64)))
    return float((sens[0] / 2 + sens[1:-1].sum() + sens[-1] / 2) / len(sens))


@dataclass(frozen=True)
class Reitsma:
    """Result of :func:`reitsma`: the bivariate model of (logit sensitivity, logit FPR).

    Attributes
    ----------
    ids : tuple of str
        The studies.
    method : EstimationMethod
    level : float
        Confidence level of the intervals and regions.
    correction : ContinuityCorrection
    correction_note : str
        What the correction did to these studies.
    fit : BivariateFit
        The engine's estimates (coefficients, vcov, Psi, log-likelihood without the Jacobian).
    loglik, aic, bic : float
        As mada reports them (with the Jacobian term; ``2p + 3`` parameters, ``2k`` observations).
    sensitivity, fpr, specificity : PooledProportion or None
        Summary point (``None`` for a meta-regression).
    hsroc : HsrocParameters or None
    auc, pauc : float or None
        mada's AUC over FPR 0.01..0.99 and partial AUC over the observed FPR range.
    observed_fpr_range : tuple of float
        Range of the uncorrected study FPRs.
    confidence_region, prediction_region : numpy.ndarray or None
        ``(100, 2)`` closed ellipses in (FPR, sensitivity).
    regression : MetaRegression or None
        The covariate and its likelihood-ratio test, when one was given.
    notes : tuple of str
    """

    ids: tuple[str, ...]
    method: EstimationMethod
    level: float
    correction: ContinuityCorrection
    correction_note: str
    fit: BivariateFit
    loglik: float
    sensitivity: PooledProportion | None
    fpr: PooledProportion | None
    specificity: PooledProportion | None
    hsroc: HsrocParameters | None
    auc: float | None
    pauc: float | None
    observed_fpr_range: tuple[float, float]
    confidence_region: np.ndarray | None
    prediction_region: np.ndarray | None
    regression: MetaRegression | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def k(self) -> int:
        return len(self.ids)

    @property
    def terms(self) -> tuple[str, ...]:
        return self.regression.terms if self.regression is not None else ("(Intercept)",)

    @property
    def mu(self) -> np.ndarray:
        """Intercepts (mean logit sensitivity, mean logit FPR; at covariate 0/reference level in a regression)."""
        return self.fit.coefficients[0].copy()

    @property
    def vcov(self) -> np.ndarray:
        return self.fit.vcov

    @property
    def tau2_sens(self) -> float:
        return float(self.fit.psi[0, 0])

    @property
    def tau2_fpr(self) -> float:
        return float(self.fit.psi[1, 1])

    @property
    def rho(self) -> float:
        """Between-study correlation of logit sensitivity and logit FPR (mada's ``corRandom``)."""
        return self.fit.rho

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.fit.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.fit.n_obs) * self.fit.n_params

    def sroc(self, fpr: np.ndarray | float) -> np.ndarray:
        """Rutter-Gatsonis SROC curve: sensitivity at ``fpr`` (not defined for a meta-regression)."""
        if self.hsroc is None:
            raise ValueError("the SROC curve is not defined for a meta-regression")
        return self.hsroc.sroc(fpr)

    def coefficient_table(self) -> list[dict[str, Any]]:
        """One row per coefficient: outcome, term, estimate, se, z, p, CI (logit scale)."""
        z_crit = float(stats.norm.ppf(0.5 + self.level / 2))
        rows = []
        for j, outcome in enumerate(("tsens", "tfpr")):
            for i, term in enumerate(self.terms):
                est, se = float(self.fit.coefficients[i, j]), float(self.fit.se[i, j])
                rows.append(
                    {
                        "parameter": f"{outcome}.{term}",
                        "estimate": est,
                        "se": se,
                        "z": est / se,
                        "p_value": float(2 * stats.norm.sf(abs(est / se))),
                        "ci_lower": est - z_crit * se,
                        "ci_upper": est + z_crit * se,
                    }
                )
        return rows

    def summary_frame(self) -> list[dict[str, Any]]:
        """The estimates as rows (``pandas.DataFrame(result.summary_frame())`` gives a data frame).

        Rows: the logit-scale coefficients (with se, z, p), the pooled sensitivity,
        specificity and FPR, the between-study SDs and correlation, HSROC
        parameters, AUC and partial AUC, log-likelihood, AIC and BIC.
        """
        rows = self.coefficient_table()
        nan = math.nan

        def row(name: str, est: float, lower: float = nan, upper: float = nan) -> dict[str, Any]:
            return {
                "parameter": name,
                "estimate": est,
                "se": nan,
                "z": nan,
                "p_value": nan,
                "ci_lower": lower,
                "ci_upper": upper,
            }

        for name in ("sensitivity", "specificity", "fpr"):
            value = getattr(self, name)
            if value is not None:
                rows.append(row(name, value.estimate, value.ci_lower, value.ci_upper))
        rows += [
            row("tau_sens", math.sqrt(self.tau2_sens)),
            row("tau_fpr", math.sqrt(self.tau2_fpr)),
            row("rho", self.rho),
        ]
        if self.hsroc is not None:
            rows += [row(k, v) for k, v in self.hsroc.to_dict().items()]
            rows += [row("AUC", self.auc), row("pAUC", self.pauc)]
        rows += [row("logLik", self.loglik), row("AIC", self.aic), row("BIC", self.bic)]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, including the continuity correction and notes."""

        def opt(value):
            return None if value is None else value.to_dict()

        def region(points):
            return None if points is None else points.tolist()

        return {
            "model": "bivariate random-effects (Reitsma 2005) of logit sensitivity and logit FPR",
            "method": self.method.value,
            "level": self.level,
            "k": self.k,
            "ids": list(self.ids),
            "correction": {**self.correction.to_dict(), "applied": self.correction_note},
            "coefficients": self.coefficient_table(),
            "vcov": self.fit.vcov.tolist(),
            "sensitivity": opt(self.sensitivity),
            "specificity": opt(self.specificity),
            "fpr": opt(self.fpr),
            "tau2": {"sens": self.tau2_sens, "fpr": self.tau2_fpr},
            "rho": _finite_or_none(self.rho),
            "psi": self.fit.psi.tolist(),
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "n_params": self.fit.n_params,
            "hsroc": opt(self.hsroc),
            "auc": self.auc,
            "pauc": self.pauc,
            "observed_fpr_range": list(self.observed_fpr_range),
            "confidence_region_fpr_sens": region(self.confidence_region),
            "prediction_region_fpr_sens": region(self.prediction_region),
            "regression": opt(self.regression),
            "convergence": {"iterations": self.fit.iterations, "gradient_norm": self.fit.gradient_norm},
            "notes": list(self.notes),
        }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _logit_data(studies: DtaStudies, correction: ContinuityCorrection) -> tuple[np.ndarray, np.ndarray, float]:
    counts = studies.counts()
    tp, fp, fn, tn = correction.apply(counts).T
    if np.any(np.stack([tp, fp, fn, tn]) == 0):
        bad = [studies.ids[i] for i in np.flatnonzero((np.stack([tp, fp, fn, tn]) == 0).any(axis=0))]
        raise InputError(
            studies.source or "studies",
            f"zero cells in {', '.join(map(repr, bad))}: the logit model needs a continuity correction "
            f"(got {correction.value} with scope {correction.scope.value!r})",
        )
    sens, fpr = tp / (tp + fn), fp / (fp + tn)
    y = np.stack([special.logit(sens), special.logit(fpr)], axis=1)
    s = np.zeros((len(sens), 2, 2))
    s[:, 0, 0] = 1.0 / ((tp + fn) * sens * (1 - sens))
    s[:, 1, 1] = 1.0 / ((fp + tn) * fpr * (1 - fpr))
    jacobian = float(-np.sum(np.log(sens * (1 - sens)) + np.log(fpr * (1 - fpr))))
    return y, s, jacobian


def _covariate_design(studies: DtaStudies, name: str, categorical: bool | None):
    where = studies.source or "studies"
    if name not in studies.covariates:
        known = ", ".join(studies.covariates) or "none"
        raise InputError(where, f"no covariate {name!r} (covariates: {known})")
    values = list(studies.covariates[name])
    missing = [
        studies.ids[i]
        for i, v in enumerate(values)
        if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))
    ]
    if missing:
        raise InputError(where, f"covariate {name!r} is missing for {', '.join(map(repr, missing))}")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if categorical is None:
        categorical = not numeric
    if not categorical and not numeric:
        raise InputError(where, f"covariate {name!r} is not numeric")
    k = studies.k
    if categorical:
        labels = [_level(v) for v in values]
        levels = tuple(sorted(set(labels)))
        if len(levels) < 2:
            raise InputError(
                where, f"covariate {name!r} is constant ({levels[0]!r} in every study): nothing to regress on"
            )
        design = np.column_stack([np.ones(k)] + [[float(v == lev) for v in labels] for lev in levels[1:]])
        return design, "categorical", ("(Intercept)",) + tuple(f"{name}[{lev}]" for lev in levels[1:]), levels
    column = np.array(values, dtype=np.float64)
    if np.ptp(column) == 0:
        raise InputError(where, f"covariate {name!r} is constant ({column[0]:g} in every study): nothing to regress on")
    return np.column_stack([np.ones(k), column]), "numeric", ("(Intercept)", name), ()


def _level(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def reitsma(
    studies: DtaStudies,
    correction: ContinuityCorrection = _DEFAULT_CORRECTION,
    method: EstimationMethod | str = EstimationMethod.REML,
    level: float = 0.95,
    covariate: str | None = None,
    *,
    categorical: bool | None = None,
) -> Reitsma:
    """Bivariate random-effects meta-analysis of sensitivity and specificity (Reitsma 2005), as ``mada::reitsma``.

    Parameters
    ----------
    studies : DtaStudies
    correction : ContinuityCorrection
        Added to the cells before the logits and their variances are computed
        (default: mada's 0.5 to all cells of all studies when any cell is zero).
    method : {"reml", "ml"}
    level : float
        Confidence level of the intervals and regions.
    covariate : str, optional
        Name of a study-level covariate in ``studies.covariates``: a bivariate
        meta-regression (separate coefficients for logit sensitivity and logit
        FPR) with a likelihood-ratio test against the model without it.
    categorical : bool, optional
        Treat the covariate as categorical (dummies, first sorted level as
        reference) or numeric; by default categorical unless every value is a number.

    Returns
    -------
    Reitsma

    Raises
    ------
    InputError
        Fewer than 3 studies (the model has 5 parameters and each study gives
        2 observations; a meta-regression with ``p`` design columns needs
        ``p + 2``), zero cells left by the correction, an unknown, missing or
        constant covariate.
    BivariateConvergenceError
        The likelihood maximisation did not converge.
    """
    method = EstimationMethod(method)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    studies.require(3, "the bivariate model (2 means, 2 variances and a correlation from 2 logits per study)")
    y, s, jacobian = _logit_data(studies, correction)
    counts = studies.counts()
    raw_fpr = counts[:, 1] / (counts[:, 1] + counts[:, 3])
    fpr_range = (float(raw_fpr.min()), float(raw_fpr.max()))
    notes = [
        "logit-scale Wald intervals, back-transformed",
        "within-study variances from the continuity-corrected counts",
        "log-likelihood includes mada's Jacobian term of the logit transform",
    ]
    regression = None
    if covariate is None:
        fit = _fit(y, s, None, method)
    else:
        design, kind, terms, levels = _covariate_design(studies, covariate, categorical)
        p = design.shape[1]
        studies.require(p + 2, f"a bivariate meta-regression with {p} design columns ({2 * p + 3} parameters)")
        fit = _fit(y, s, design, method)
        ml_with = fit if method is EstimationMethod.ML else _fit(y, s, design, EstimationMethod.ML)
        ml_without = _fit(y, s, None, EstimationMethod.ML)
        lr = max(2.0 * (ml_with.loglik - ml_without.loglik), 0.0)
        df = 2 * (p - 1)
        regression = MetaRegression(
            covariate=covariate,
            kind=kind,
            terms=terms,
            levels=levels,
            lr_statistic=lr,
            lr_df=df,
            lr_p_value=float(stats.chi2.sf(lr, df)),
            loglik_ml_with=ml_with.loglik + jacobian,
            loglik_ml_without=ml_without.loglik + jacobian,
            aic_ml_with=-2 * (ml_with.loglik + jacobian) + 2 * ml_with.n_params,
            aic_ml_without=-2 * (ml_without.loglik + jacobian) + 2 * ml_without.n_params,
        )
        notes.append("likelihood-ratio test and AICs of the covariate from ML fits of both models")

    sens = fpr = spec = hsroc = auc = pauc = conf = pred = None
    if regression is None:
        mu, se = fit.coefficients[0], np.sqrt(np.diag(fit.vcov))
        sens = PooledProportion.from_logit(mu[0], se[0], level)
        fpr = PooledProportion.from_logit(mu[1], se[1], level)
        spec = fpr.complement()
        hsroc = HsrocParameters.from_bivariate(mu, fit.psi)
        if math.isfinite(hsroc.beta):
            auc = mada_auc(hsroc.sroc, np.arange(1, 100) / 100)
            lo, hi = max(0.01, fpr_range[0]), min(0.99, fpr_range[1])
            pauc = mada_auc(hsroc.sroc, np.linspace(lo, hi, 99))
        else:
            notes.append(
                "a between-study SD is (numerically) zero: correlation, HSROC parameters, SROC and AUC are undefined"
            )
        conf = _ellipse(mu, fit.vcov, level)
        pred = _ellipse(mu, fit.psi + fit.vcov, level)
        notes.append("AUC and pAUC as mada: trapezoid sum divided by the 99 points")

    return Reitsma(
        ids=studies.ids,
        method=method,
        level=level,
        correction=correction,
        correction_note=correction.describe(counts),
        fit=fit,
        loglik=fit.loglik + jacobian,
        sensitivity=sens,
        fpr=fpr,
        specificity=spec,
        hsroc=hsroc,
        auc=auc,
        pauc=pauc,
        observed_fpr_range=fpr_range,
        confidence_region=conf,
        prediction_region=pred,
        regression=regression,
        notes=tuple(notes),
    )


def _fit(y, s, design, method) -> BivariateFit:
    try:
        return fit_bivariate(y, s, design, method)
    except ValueError as exc:  # shapes are ours; what remains is about the data
        raise InputError("studies", str(exc)) from None


# ---------------------------------------------------------------------------------------------------------------------
# Heterogeneity: I² of the bivariate model (Zhou & Dendukuri 2014; Holling et al.), as mada's summary prints it


@dataclass(frozen=True)
class BivariateI2:
    """I² statistics of a bivariate DTA meta-analysis, in percent; see :func:`bivariate_i2`.

    Attributes
    ----------
    zhou_dendukuri : float
        Bivariate I² of Zhou & Dendukuri (2014).
    holling_unadjusted : tuple of float
        Holling's I² ``tau2 / (tau2 + s2)`` of the log PHM parameter, with the
        typical within-study variance ``s2`` of Higgins & Thompson, the harmonic
        mean and the arithmetic mean of the within-study variances (mada's order).
    holling_adjusted : tuple of float
        The same with the sample-size-adjusted within-study variances ``n v_i``.
    holling_tau2 : float
        DerSimonian-Laird between-study variance of the log PHM parameter (floored at 0).
    as_coded_in_mada : bool
        Whether the Zhou-Dendukuri inputs are those of mada 0.5.12's code
        rather than those of the paper (the Holling values are the same either way).
    """

    zhou_dendukuri: float
    holling_unadjusted: tuple[float, float, float]
    holling_adjusted: tuple[float, float, float]
    holling_tau2: float
    as_coded_in_mada: bool

    @property
    def holling_unadjusted_range(self) -> tuple[float, float]:
        return min(self.holling_unadjusted), max(self.holling_unadjusted)

    @property
    def holling_adjusted_range(self) -> tuple[float, float]:
        return min(self.holling_adjusted), max(self.holling_adjusted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": "percent",
            "variant": "as coded in mada 0.5.12" if self.as_coded_in_mada else "published formulas",
            "zhou_dendukuri": self.zhou_dendukuri,
            "holling_unadjusted": list(self.holling_unadjusted),
            "holling_adjusted": list(self.holling_adjusted),
            "holling_unadjusted_range": list(self.holling_unadjusted_range),
            "holling_adjusted_range": list(self.holling_adjusted_range),
            "holling_tau2": self.holling_tau2,
        }


def _zhou_dendukuri(tau2: np.ndarray, det_psi: float, mu: np.ndarray, inv_n: np.ndarray) -> float:
    """``sqrt|Psi| / (sqrt|Psi| + sqrt(s2_1 s2_2))`` with ``s2_j = (e^(mu_j + tau2_j/2) + e^(-mu_j + tau2_j/2) + 2) mean(1/n_j)``."""
    within = (np.exp(mu + tau2 / 2) + np.exp(-mu + tau2 / 2) + 2.0) * inv_n.mean(axis=0)
    between = math.sqrt(max(det_psi, 0.0))
    return float(100.0 * between / (between + math.sqrt(float(np.prod(within)))))


def _holling(corrected: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """I² of ``log theta_i``, ``theta_i = log(sens_i)/log(fpr_i)`` (the PHM ``sens = fpr^theta``), DL tau²."""
    tp, fp, fn, tn = corrected.T
    n1, n0 = tp + fn, fp + tn
    sens, fpr = tp / n1, fp / n0
    y = np.log(np.log(sens) / np.log(fpr))
    # delta method: var log(-log p) = (1 - p) / (n p log(p)^2); "adjusted": per observation (times n)
    unit1, unit0 = (1 - sens) / (sens * np.log(sens) ** 2), (1 - fpr) / (fpr * np.log(fpr) ** 2)
    v, v_adjusted = unit1 / n1 + unit0 / n0, unit1 + unit0
    k = len(y)
    w = 1.0 / v
    q = float(np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2))
    tau2 = max(0.0, (q - (k - 1)) / (w.sum() - np.sum(w**2) / w.sum()))

    def i2(variances: np.ndarray) -> tuple[float, float, float]:
        wv = 1.0 / variances
        typical = (
            (k - 1) * wv.sum() / (wv.sum() ** 2 - np.sum(wv**2)),  # Higgins & Thompson (2002)
            k / wv.sum(),  # harmonic mean
            variances.mean(),  # arithmetic mean
        )
        return tuple(float(100.0 * tau2 / (tau2 + s2)) for s2 in typical)

    return i2(v), i2(v_adjusted), float(tau2)


def bivariate_i2(result: Reitsma, studies: DtaStudies, *, as_coded_in_mada: bool = False) -> BivariateI2:
    """I² of a bivariate DTA meta-analysis: Zhou & Dendukuri's and Holling et al.'s, as mada's ``summary.reitsma``.

    Zhou & Dendukuri (2014) [1]_ take the between-study covariance ``Psi``
    (variances ``tau2_1``, ``tau2_2`` of logit sensitivity and logit FPR,
    correlation ``rho``) and the *expected* within-study variance of each
    logit under the random-effects model,
    ``s2_j = (exp(mu_j + tau2_j/2) + exp(-mu_j + tau2_j/2) + 2) * mean_i(1/n_ij)``
    (``n_i1`` diseased, ``n_i0`` non-diseased; the sign of ``mu_j`` does not
    matter, so FPR and specificity give the same), and define::

        I2_ZD = sqrt(|Psi|) / (sqrt(|Psi|) + sqrt(s2_1 s2_2)),   |Psi| = tau2_1 tau2_2 (1 - rho^2)

    It is 0 when ``Psi`` is singular (no heterogeneity, or ``|rho| = 1``).
    As ``s2_j`` grows like ``exp(tau2_j/2)``, I2_ZD increases with ``tau2``
    over the usual range of logit variances but falls again for very large
    ones (beyond about 2 when ``mu = 0``).

    Holling et al. [2]_ (as implemented in mada 0.5.12 [3]_) use the
    proportional hazards model ``sens = fpr^theta`` [4]_: per study
    ``y_i = log(log(sens_i) / log(fpr_i))`` with delta-method variance
    ``v_i = (1-p)/(n_1 p log(p)^2) + (1-u)/(n_0 u log(u)^2)`` (``p``, ``u`` the
    continuity-corrected sensitivity and FPR), the DerSimonian-Laird ``tau2``
    of the ``y_i`` (floored at 0), and ``I2 = tau2 / (tau2 + s2)`` with three
    "typical" within-study variances ``s2``: Higgins & Thompson's
    ``(k-1) sum w / ((sum w)^2 - sum w^2)``, the harmonic mean ``k / sum w``
    and the arithmetic mean of the ``v_i`` (``w = 1/v``). The *adjusted*
    versions replace ``v_i`` by the per-observation variances (``v_i`` without
    the ``1/n`` factors) in ``s2`` only, which removes the dependence on the
    study sizes (``tau2`` is unchanged, so they are much smaller).

    Parameters
    ----------
    result : Reitsma
        A fit without a covariate.
    studies : DtaStudies
        The studies ``result`` was fitted to (same ids, same order).
    as_coded_in_mada : bool
        ``False`` (default): the Zhou-Dendukuri formula as published, with
        ``tau2`` and ``rho`` from ``Psi`` and the numbers of diseased and
        non-diseased. ``True``: mada 0.5.12's code, which puts the squared
        *standard errors of the pooled logits* (``diag(vcov(mu))``) where the
        paper has ``tau2_1``, ``tau2_2`` (rho is still the between-study
        correlation) and uses the numbers of test positives ``TP + FP`` and
        test negatives ``TN + FN`` for ``n_i1``, ``n_i0``; this reproduces the
        printed values. The Holling values are computed the same way in both.

    Returns
    -------
    BivariateI2

    Raises
    ------
    ValueError
        A meta-regression, or studies that are not those of ``result``.

    References
    ----------
    .. [1] Y. Zhou and N. Dendukuri, "Statistics for quantifying heterogeneity
       in univariate and bivariate meta-analyses of binary data: the case of
       meta-analyses of diagnostic accuracy", Stat Med 33(16), 2014,
       2701-2717, doi:10.1002/sim.6115.
    .. [2] H. Holling, D. Böhning, E. Masoudi, W. Böhning and P. Sangnawakij,
       "Evaluation of a new version of I² with emphasis on diagnostic
       problems", Commun Stat Simul Comput 49(4), 2020, 942-972,
       doi:10.1080/03610918.2018.1489553 (the formulas above are mada's code;
       not checked against the paper's text).
    .. [3] mada 0.5.12, ``summary.reitsma`` in R/reitsma.R.
    .. [4] H. Holling, W. Böhning and D. Böhning, "Meta-analysis of diagnostic
       studies based upon SROC-curves: a mixed model approach using the
       Lehmann family", Stat Model 12(4), 2012, 347-375.

    Examples
    --------
    >>> from opencmr.meta.data import DtaStudies
    >>> studies = DtaStudies(("a", "b", "c", "d"), tp=[45, 30, 80, 22], fp=[10, 12, 30, 5],
    ...                      fn=[5, 8, 12, 6], tn=[90, 70, 150, 60])
    >>> i2 = bivariate_i2(reitsma(studies), studies)
    >>> 0 <= i2.zhou_dendukuri <= 100
    True
    """
    if result.regression is not None:
        raise ValueError("I² is defined here for the bivariate model without covariates")
    if tuple(studies.ids) != tuple(result.ids):
        raise ValueError("studies are not those the bivariate model was fitted to")
    counts = studies.counts()  # tp, fp, fn, tn
    tp, fp, fn, tn = counts.T
    mu = result.mu
    if as_coded_in_mada:
        tau2 = np.diag(result.vcov).copy()
        # rho is NaN when a between-study SD is zero (mada's corRandom): I² is then NaN, as mada prints it
        det_psi = float(tau2[0] * tau2[1] * (1.0 - result.rho**2))
        inv_n = np.stack([1.0 / (tp + fp), 1.0 / (tn + fn)], axis=1)
    else:
        tau2 = np.array([result.tau2_sens, result.tau2_fpr])
        det_psi = float(np.linalg.det(result.fit.psi))
        inv_n = np.stack([1.0 / (tp + fn), 1.0 / (fp + tn)], axis=1)
    zhou = _zhou_dendukuri(tau2, det_psi, mu, inv_n)
    unadjusted, adjusted, holling_tau2 = _holling(result.correction.apply(counts))
    return BivariateI2(
        zhou_dendukuri=zhou,
        holling_unadjusted=unadjusted,
        holling_adjusted=adjusted,
        holling_tau2=holling_tau2,
        as_coded_in_mada=as_coded_in_mada,
    )
