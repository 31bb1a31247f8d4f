"""Univariate meta-analysis of diagnostic test accuracy: what MetaDisc 1.4 and mada's madad/madauni report.

Pooled sensitivity and specificity, LR+, LR- and DOR (fixed and random
effects) with heterogeneity, the chi-square tests of equal sensitivities and
specificities, the threshold effect and the Moses-Littenberg SROC, from
:class:`~opencmr.meta.data.DtaStudies`. The per-study quantities are in
:mod:`opencmr.meta.per_study`, the inverse-variance engine in
:mod:`opencmr.meta.pooling`.

Conventions (``convention="textbook"``, the default, follows the cited
formulas; ``"mada"`` reproduces mada 0.5.12's printed numbers, quirks included):

* DerSimonian-Laird of log ratios: mada prints Cochran's Q and I² recomputed
  with the random-effects weights 1/(v_i + τ²) and a τ² CI from a profile
  that keeps μ̂ fixed and adds to the DL τ² (see :func:`q_profile_tau2_ci`);
  the textbook Q uses the fixed weights 1/v_i (the Q the DL τ² is made from)
  and the Viechtbauer (2007) Q-profile. τ² itself is the same.
* Mantel-Haenszel: mada averages the *corrected* per-study ratios with
  weights from the *uncorrected* counts (FP·FN/N for the DOR, FP·n1/N for LR+,
  TN·n1/N for LR-), so a study with FN = 0 has DOR weight 0; textbook is the
  MH ratio of sums on the uncorrected counts. mada's variances are the
  Robins-Breslow-Greenland one with the Σ P_i S_i term dropped (the code uses
  R's ``F``, i.e. FALSE, for ``FF``) and Greenland-Robins variances for LR+ and
  LR- whose denominators (and, for LR-, numerator) use other cells than the
  published formula; textbook uses the published formulas.

Pooled sensitivity and specificity (no mada counterpart): fixed effect is the
pooled proportion Σ TP / Σ (TP + FN) with the per-study CI method, random
effects is DerSimonian-Laird on the logit scale with v = 1/TP + 1/FN
(corrected counts). MetaDisc 1.4 is believed to do this, but its exact
weighting and CI scale are UNVERIFIED (no MetaDisc output was available).

References
----------
.. [1] J. Zamora, V. Abraira, A. Muriel, K. Khan and A. Coomarasamy,
   "Meta-DiSc: a software for meta-analysis of test accuracy data",
   BMC Med Res Methodol 6, 2006, 31, doi:10.1186/1471-2288-6-31.
.. [2] P. Doebler, mada: Meta-Analysis of Diagnostic Accuracy, R package
   0.5.12 (``madad``, ``madauni``, ``mslSROC``).
.. [3] N. Mantel and W. Haenszel, "Statistical aspects of the analysis of
   data from retrospective studies of disease", J Natl Cancer Inst 22, 1959,
   719-748, doi:10.1093/jnci/22.4.719.
.. [4] J. Robins, N. Breslow and S. Greenland, "Estimators of the
   Mantel-Haenszel variance consistent in both sparse data and large-strata
   limiting models", Biometrics 42, 1986, 311-323, doi:10.2307/2531052.
.. [5] S. Greenland and J. M. Robins, "Estimation of a common effect
   parameter from sparse follow-up data", Biometrics 41, 1985, 55-68,
   doi:10.2307/2530643.
.. [6] L. E. Moses, D. Shapiro and B. Littenberg, "Combining independent
   studies of a diagnostic test into a summary ROC curve", Stat Med 12, 1993,
   1293-1316, doi:10.1002/sim.4780121403.
.. [7] J. P. T. Higgins et al., "Measuring inconsistency in meta-analyses",
   BMJ 327, 2003, 557-560, doi:10.1136/bmj.327.7414.557.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from scipy import integrate, special, stats

from opencmr.meta.data import ContinuityCorrection, DtaStudies
from opencmr.meta.per_study import PerStudy, ProportionCi, _binomial_ci, _json, per_study, records_frame
from opencmr.meta.pooling import (
    BackTransform,
    Heterogeneity,
    Pooled,
    higgins_i2,
    inverse_variance,
    q_profile_tau2_ci,
)

__all__ = [
    "ChiSquareTest",
    "Convention",
    "MosesLittenberg",
    "PooledMeasure",
    "ThresholdEffect",
    "UnivariateDta",
    "equal_proportions_test",
    "mantel_haenszel",
    "moses_littenberg",
    "threshold_effect",
    "univariate_dta",
]

_DEFAULT_CORRECTION = ContinuityCorrection()  # frozen, safe as a default


class Convention(str, Enum):
    """Whose formulas to follow where mada's code differs from the textbook (see the module docstring)."""

    MADA = "mada"
    """Reproduce mada 0.5.12's printed numbers, quirks included (default)."""
    TEXTBOOK = "textbook"
    """The published formulas (Higgins 2003 Q/I², Robins-Breslow-Greenland, Greenland-Robins)."""


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return float(stats.norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class PooledMeasure:
    """One measure pooled by a fixed-effect and a random-effects model, with heterogeneity.

    Attributes
    ----------
    name : str
        ``"sensitivity"``, ``"specificity"``, ``"positive_lr"``, ``"negative_lr"`` or ``"dor"``.
    fixed : Pooled
        Pooled proportion (sens/spec) or Mantel-Haenszel (ratios).
    random : Pooled
        DerSimonian-Laird (logit scale for sens/spec, log scale for ratios).
    heterogeneity : Heterogeneity
        Q, I², τ² of the DerSimonian-Laird analysis (``weights`` says which Q).
    excluded : tuple of str
        Studies left out of the random-effects analysis (undefined on its
        scale: a zero cell without continuity correction).
    """

    name: str
    fixed: Pooled
    random: Pooled
    heterogeneity: Heterogeneity
    excluded: tuple[str, ...] = ()

    def records(self) -> list[dict[str, Any]]:
        return [
            {"measure": self.name, "model": model, **p.record(), **self.heterogeneity.record()}
            for model, p in (("fixed", self.fixed), ("random", self.random))
        ]


@dataclass(frozen=True)
class ChiSquareTest:
    """Pearson chi-square test of equal proportions over ``k`` studies (``k x 2`` table), with I² (percent)."""

    statistic: float
    df: int
    p_value: float
    i2: float

    def record(self) -> dict[str, Any]:
        return {"X2": self.statistic, "df": self.df, "p_value": self.p_value, "I2_percent": self.i2}


@dataclass(frozen=True)
class ThresholdEffect:
    """Threshold effect: Spearman ρ of logit(TPR) and logit(FPR) (MetaDisc) and Pearson r of sens and FPR (mada).

    ``pearson_ci`` is the Fisher-z interval with SE 1/sqrt(k - 3) (NaN for ``k <= 3``).
    A positive correlation suggests a threshold effect.
    """

    spearman_rho: float
    spearman_p: float
    pearson_r: float
    pearson_ci: tuple[float, float]
    k: int

    def record(self) -> dict[str, Any]:
        return {
            "spearman_rho_logit_tpr_logit_fpr": self.spearman_rho,
            "spearman_p_value": self.spearman_p,
            "pearson_r_sens_fpr": self.pearson_r,
            "pearson_lower": self.pearson_ci[0],
            "pearson_upper": self.pearson_ci[1],
            "k": self.k,
        }


@dataclass(frozen=True)
class MosesLittenberg:
    """Moses-Littenberg SROC fit D = a + b S, D = logit TPR - logit FPR, S = logit TPR + logit FPR.

    Attributes
    ----------
    weighting : str
        ``"unweighted"`` (OLS) or ``"inverse variance"`` (WLS, weights 1/var(D)).
    a, b : float
        Intercept and slope; ``se_a``, ``se_b`` their standard errors
        (residual variance on k - 2 df, as R's ``lm``).
    q_star : float
        Q* = expit(a/2), where sensitivity = specificity on the curve.
    q_star_ci : tuple of float
        expit((a ± z SE(a)) / 2).
    auc : float
        ∫₀¹ of the curve over FPR (numerical); NaN when b >= 1 (no proper curve).
    k : int
    """

    weighting: str
    a: float
    b: float
    se_a: float
    se_b: float
    q_star: float
    q_star_ci: tuple[float, float]
    auc: float
    k: int

    def sensitivity_at(self, fpr: Any) -> np.ndarray:
        """The SROC: logit TPR = a/(1-b) + (1+b)/(1-b) logit FPR."""
        x = special.logit(np.asarray(fpr, dtype=np.float64))
        return special.expit(self.a / (1 - self.b) + (1 + self.b) / (1 - self.b) * x)

    def record(self) -> dict[str, Any]:
        return {
            "weighting": self.weighting,
            "a": self.a,
            "b": self.b,
            "se_a": self.se_a,
            "se_b": self.se_b,
            "Q_star": self.q_star,
            "Q_star_lower": self.q_star_ci[0],
            "Q_star_upper": self.q_star_ci[1],
            "AUC": self.auc,
            "k": self.k,
        }


@dataclass(frozen=True)
class UnivariateDta:
    """Result of :func:`univariate_dta`.

    Attributes
    ----------
    per_study : PerStudy
    sensitivity, specificity, positive_lr, negative_lr, dor : PooledMeasure
    sensitivity_test, specificity_test : ChiSquareTest
        Equality of sensitivities / specificities (k x 2 chi-square, df k-1).
    threshold : ThresholdEffect
    sroc_unweighted, sroc_weighted : MosesLittenberg
    correction : ContinuityCorrection
    convention : Convention
    level : float
    notes : tuple of str
    """

    per_study: PerStudy
    sensitivity: PooledMeasure
    specificity: PooledMeasure
    positive_lr: PooledMeasure
    negative_lr: PooledMeasure
    dor: PooledMeasure
    sensitivity_test: ChiSquareTest
    specificity_test: ChiSquareTest
    threshold: ThresholdEffect
    sroc_unweighted: MosesLittenberg
    sroc_weighted: MosesLittenberg
    correction: ContinuityCorrection
    convention: Convention
    level: float
    notes: tuple[str, ...] = field(default=())

    @property
    def k(self) -> int:
        return self.per_study.k

    @property
    def measures(self) -> tuple[PooledMeasure, ...]:
        return (self.sensitivity, self.specificity, self.positive_lr, self.negative_lr, self.dor)

    def summary_frame(self) -> Any:
        """Pooled estimates, one row per measure and model (a DataFrame if pandas is installed, else dicts)."""
        return records_frame([row for m in self.measures for row in m.records()])

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (non-finite numbers as ``None``), with the correction used and the notes."""

        def clean(obj: Any) -> Any:
            if isinstance(obj, dict):
                return {k: clean(v) for k, v in obj.items()}
            if isinstance(obj, list | tuple):
                return [clean(v) for v in obj]
            if isinstance(obj, np.floating | float):
                return _json(float(obj))
            return obj

        return clean(
            {
                "k": self.k,
                "level": self.level,
                "convention": self.convention.value,
                "correction": self.correction.to_dict(),
                "correction_applied": self.correction.describe(self.per_study.raw_counts),
                "pooled": {m.name: {"rows": m.records(), "excluded": list(m.excluded)} for m in self.measures},
                "equal_sensitivities": self.sensitivity_test.record(),
                "equal_specificities": self.specificity_test.record(),
                "threshold_effect": self.threshold.record(),
                "moses_littenberg": {
                    "unweighted": self.sroc_unweighted.record(),
                    "weighted": self.sroc_weighted.record(),
                },
                "per_study": self.per_study.to_dict()["studies"],
                "notes": list(self.notes),
            }
        )


# --- Mantel-Haenszel -------------------------------------------------------------------------------


def mantel_haenszel(
    raw_counts: np.ndarray,
    measure: str,
    *,
    ratios: np.ndarray | None = None,
    level: float = 0.95,
    convention: Convention | str = Convention.TEXTBOOK,
) -> Pooled:
    """Fixed-effect Mantel-Haenszel DOR, LR+ or LR- (log scale; ``value`` back-transforms).

    Parameters
    ----------
    raw_counts : numpy.ndarray
        ``(k, 4)`` uncorrected counts, TP, FP, FN, TN.
    measure : {"dor", "positive_lr", "negative_lr"}
    ratios : numpy.ndarray, optional
        Per-study ratios (continuity-corrected), needed by ``convention="mada"``,
        which averages them with weights from ``raw_counts``.
    convention : {"mada", "textbook"}
        See the module docstring.

    Notes
    -----
    Textbook: DOR_MH = Σ(TP·TN/N) / Σ(FP·FN/N) with the Robins-Breslow-Greenland
    variance; LR+_MH = Σ(TP·n0/N) / Σ(FP·n1/N) and LR-_MH = Σ(FN·n0/N) / Σ(TN·n1/N)
    with the Greenland-Robins variance of a log risk ratio (n1 = TP + FN, n0 = FP + TN).
    """
    convention = Convention(convention)
    z = _z(level)
    tp, fp, fn, tn = np.asarray(raw_counts, dtype=np.float64).T
    n1, n0 = tp + fn, fp + tn
    n = n1 + n0
    if measure == "dor":
        num_w, den_w = tp * tn / n, fp * fn / n
    elif measure == "positive_lr":
        num_w, den_w = tp * n0 / n, fp * n1 / n
    elif measure == "negative_lr":
        num_w, den_w = fn * n0 / n, tn * n1 / n
    else:
        raise ValueError(f"measure must be dor, positive_lr or negative_lr, got {measure!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        if convention is Convention.MADA:
            if ratios is None:
                raise ValueError("convention='mada' needs the corrected per-study ratios")
            ratios = np.asarray(ratios, dtype=np.float64)
            estimate = float(np.log(np.sum(np.where(den_w > 0, den_w * ratios, 0.0)) / np.sum(den_w)))
        else:
            estimate = float(np.log(np.sum(num_w) / np.sum(den_w)))
        # variance terms (uncorrected counts in both conventions, as mada)
        if measure == "dor":
            p_, q_ = (tp + tn) / n, (fp + fn) / n
            r, s = tp * tn / n, fp * fn / n
            big_r, big_s = r.sum(), s.sum()
            ps = 0.0 if convention is Convention.MADA else np.sum(p_ * s)  # mada: R's F (FALSE) for FF
            var = 0.5 * (
                np.sum(p_ * r) / big_r**2 + (ps + np.sum(q_ * r)) / (big_r * big_s) + np.sum(q_ * s) / big_s**2
            )
        else:
            p_pos = np.sum((n1 * n0 * (tp + fp) - tp * fp * n) / n**2)
            if convention is Convention.MADA:
                # mada 0.5.12 madauni: posLR P/(U V) with V = Σ FN n1/N; negLR P/(U' V') with the LR+ P, U' = Σ FP n0/N
                if measure == "positive_lr":
                    var = p_pos / (np.sum(tp * n0 / n) * np.sum(fn * n1 / n))
                else:
                    var = p_pos / (np.sum(fp * n0 / n) * np.sum(tn * n1 / n))
            elif measure == "positive_lr":
                var = p_pos / (np.sum(tp * n0 / n) * np.sum(fp * n1 / n))
            else:
                p_neg = np.sum((n1 * n0 * (fn + tn) - fn * tn * n) / n**2)
                var = p_neg / (np.sum(fn * n0 / n) * np.sum(tn * n1 / n))
    se = float(np.sqrt(var))
    method = "Mantel-Haenszel" + (" (mada)" if convention is Convention.MADA else "")
    return Pooled(
        _LOG_NAMES[measure],
        method,
        estimate,
        se,
        (estimate - z * se, estimate + z * se),
        level,
        len(tp),
        BackTransform.EXP,
    )


_LOG_NAMES = {
    "dor": "log DOR",
    "positive_lr": "log LR+",
    "negative_lr": "log LR-",
    "sensitivity": "logit sensitivity",
    "specificity": "logit specificity",
}


def _dl_heterogeneity(
    y: np.ndarray, v: np.ndarray, level: float, convention: Convention
) -> tuple[Pooled, Heterogeneity]:
    """DerSimonian-Laird pooled estimate and heterogeneity in the chosen convention."""
    fit = inverse_variance(y, v, level=level)
    if convention is Convention.TEXTBOOK:
        return fit.random, fit.heterogeneity
    df = fit.heterogeneity.df
    q = fit.q_random
    het = Heterogeneity(
        q=q,
        df=df,
        p_value=float(stats.chi2.sf(q, df)),
        i2=higgins_i2(q, df),
        tau2=fit.tau2,
        tau2_ci=q_profile_tau2_ci(y, v, level, mada=True, tau2=fit.tau2),
        weights="random (mada)",
    )
    return fit.random, het


def _finite(ids: tuple[str, ...], y: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    return ok, tuple(s for s, good in zip(ids, ok) if not good)


def _pool_ratio(ps: PerStudy, name: str, level: float, convention: Convention) -> PooledMeasure:
    ratio = getattr(ps, name)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(ratio)
    v = getattr(ps, f"se_log_{name}") ** 2
    ok, excluded = _finite(ps.ids, y, v)
    if ok.sum() < 2:
        raise ValueError(f"{name}: fewer than 2 studies with a defined log ratio (zero cells without correction?)")
    random, het = _dl_heterogeneity(y[ok], v[ok], level, convention)
    random = _renamed(random, _LOG_NAMES[name], BackTransform.EXP)
    fixed = mantel_haenszel(ps.raw_counts, name, ratios=ratio, level=level, convention=convention)
    return PooledMeasure(name, fixed, random, het, excluded)


def _renamed(p: Pooled, measure: str, bt: BackTransform) -> Pooled:
    return Pooled(measure, p.method, p.estimate, p.se, p.ci, p.level, p.k, bt)


def _pool_proportion(ps: PerStudy, name: str, level: float) -> PooledMeasure:
    j_event, j_other = (0, 2) if name == "sensitivity" else (3, 1)  # TP of TP+FN; TN of TN+FP
    x, other = ps.counts[:, j_event], ps.counts[:, j_other]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(x / other)
        v = 1 / x + 1 / other
    ok, excluded = _finite(ps.ids, y, v)
    if ok.sum() < 2:
        raise ValueError(f"{name}: fewer than 2 studies with a defined logit (zero cells without correction?)")
    fit = inverse_variance(y[ok], v[ok], level=level)
    random = _renamed(fit.random, _LOG_NAMES[name], BackTransform.EXPIT)
    # fixed: pooled proportion of the uncorrected counts, CI by the per-study method
    raw_x, raw_n = ps.raw_counts[:, j_event].sum(), ps.raw_counts[:, j_event].sum() + ps.raw_counts[:, j_other].sum()
    prop = raw_x / raw_n
    lo, hi = (float(c) for c in _binomial_ci(raw_x, raw_n, level, ps.proportion_ci))
    se = float(np.sqrt(prop * (1 - prop) / raw_n))
    fixed = Pooled(
        name,
        f"pooled proportion ({ps.proportion_ci.value} CI)",
        float(prop),
        se,
        (lo, hi),
        level,
        ps.k,
        BackTransform.NONE,
    )
    return PooledMeasure(name, fixed, random, fit.heterogeneity, excluded)


# --- tests of equality, threshold effect, SROC -------------------------------------------------------


def equal_proportions_test(x: np.ndarray, n: np.ndarray) -> ChiSquareTest:
    """Pearson chi-square on the ``k x 2`` table of ``x`` events in ``n`` (R's ``prop.test``, no Yates), I² from it.

    Examples
    --------
    >>> t = equal_proportions_test([10, 20, 30], [50, 50, 50])
    >>> round(t.statistic, 4), t.df
    (16.6667, 2)
    """
    x = np.asarray(x, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if len(x) < 2:
        raise ValueError(f"the test of equal proportions needs at least 2 studies, got {len(x)}")
    p = x.sum() / n.sum()
    if p in (0.0, 1.0):
        stat = 0.0
    else:
        stat = float(np.sum((x - n * p) ** 2 / (n * p * (1 - p))))
    df = len(x) - 1
    return ChiSquareTest(stat, df, float(stats.chi2.sf(stat, df)), higgins_i2(stat, df))


def threshold_effect(counts: np.ndarray, level: float = 0.95) -> ThresholdEffect:
    """Spearman ρ(logit TPR, logit FPR) with its p-value, and Pearson r(sens, FPR) with a Fisher-z CI.

    ``counts`` are the ``(k, 4)`` (corrected) counts TP, FP, FN, TN.
    """
    tp, fp, fn, tn = np.asarray(counts, dtype=np.float64).T
    sens, fpr = tp / (tp + fn), fp / (fp + tn)
    k = len(tp)
    with np.errstate(divide="ignore"):
        rho, p = stats.spearmanr(special.logit(sens), special.logit(fpr))
    r = float(np.corrcoef(sens, fpr)[0, 1])
    if k > 3 and abs(r) < 1:
        z = _z(level)
        zr, half = np.arctanh(r), z / np.sqrt(k - 3)
        ci = (float(np.tanh(zr - half)), float(np.tanh(zr + half)))
    else:
        ci = (float("nan"), float("nan"))
    return ThresholdEffect(float(rho), float(p), r, ci, k)


def moses_littenberg(counts: np.ndarray, weighted: bool = False, level: float = 0.95) -> MosesLittenberg:
    """Moses-Littenberg SROC from ``(k, 4)`` (corrected) counts TP, FP, FN, TN; studies with undefined D or S are dropped.

    ``weighted=True`` fits by weighted least squares with weights 1/var(D),
    var(D) = 1/TP + 1/FP + 1/FN + 1/TN; otherwise ordinary least squares.
    """
    tp, fp, fn, tn = np.asarray(counts, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        lt, lf = np.log(tp / fn), np.log(fp / tn)
        d, s = lt - lf, lt + lf
        w = 1 / (1 / tp + 1 / fp + 1 / fn + 1 / tn) if weighted else np.ones_like(d)
    ok = np.isfinite(d) & np.isfinite(s) & np.isfinite(w) & (w > 0)
    d, s, w = d[ok], s[ok], w[ok]
    k = len(d)
    if k < 2:
        raise ValueError(f"the Moses-Littenberg SROC needs at least 2 studies with finite D and S, got {k}")
    x = np.column_stack([np.ones(k), s])
    xtw = x.T * w
    cov_unscaled = np.linalg.pinv(xtw @ x)
    a, b = cov_unscaled @ (xtw @ d)
    if k > 2:
        resid = d - (a + b * s)
        sigma2 = float(np.sum(w * resid**2) / (k - 2))
        se_a, se_b = np.sqrt(np.diag(cov_unscaled) * sigma2)
    else:
        se_a = se_b = float("nan")
    z = _z(level)
    q_ci = (float(special.expit((a - z * se_a) / 2)), float(special.expit((a + z * se_a) / 2)))
    if b < 1:
        c0, c1 = a / (1 - b), (1 + b) / (1 - b)
        auc = float(integrate.quad(lambda f: special.expit(c0 + c1 * special.logit(f)), 0, 1, limit=200)[0])
    else:
        auc = float("nan")
    return MosesLittenberg(
        "inverse variance" if weighted else "unweighted",
        float(a),
        float(b),
        float(se_a),
        float(se_b),
        float(special.expit(a / 2)),
        q_ci,
        auc,
        k,
    )


# --- top level --------------------------------------------------------------------------------------


def univariate_dta(
    studies: DtaStudies,
    correction: ContinuityCorrection = _DEFAULT_CORRECTION,
    level: float = 0.95,
    *,
    convention: Convention | str = Convention.TEXTBOOK,
    proportion_ci: ProportionCi | str = ProportionCi.WILSON,
) -> UnivariateDta:
    """Univariate DTA meta-analysis: per-study accuracy, pooled measures, heterogeneity, threshold effect, SROC.

    Parameters
    ----------
    studies : DtaStudies
        At least 2 studies.
    correction : ContinuityCorrection
        Added to the cells of the studies it selects (default: 0.5 to every
        cell of every study when any cell is zero, as mada). The per-study
        quantities, DerSimonian-Laird analyses, chi-square tests, threshold
        effect and SROC use the corrected counts; the Mantel-Haenszel weights
        and the pooled proportions use the uncorrected counts.
    level : float
        Confidence level of all intervals.
    convention : {"mada", "textbook"}
        ``"mada"`` (default) reproduces mada 0.5.12's printed Q, I², τ² CI and
        Mantel-Haenszel numbers; ``"textbook"`` uses the published formulas
        (see the module docstring).
    proportion_ci : {"wilson", "clopper-pearson"}
        CI of per-study (and fixed-effect pooled) sensitivity, specificity, FPR.

    Raises
    ------
    InputError
        Fewer than 2 studies.
    ValueError
        A measure has fewer than 2 studies with a defined value (zero cells and no correction).

    Examples
    --------
    >>> import numpy as np
    >>> s = DtaStudies(("a", "b", "c"), np.array([40, 30, 45]), np.array([10, 8, 12]),
    ...                np.array([10, 9, 6]), np.array([90, 70, 80]))
    >>> r = univariate_dta(s)
    >>> print(f"{r.dor.random.value:.2f}")
    37.34
    """
    studies.require(2, "univariate pooling")
    convention = Convention(convention)
    ps = per_study(studies, correction, level, proportion_ci)
    notes = [
        f"continuity correction: {correction.describe(ps.raw_counts)}",
        f"convention: {convention.value}"
        + (
            " (Q and I² of DerSimonian-Laird ratios with random-effects weights, as mada prints them)"
            if convention is Convention.MADA
            else ""
        ),
        *(
            [
                (
                    "Mantel-Haenszel (mada): weights from the uncorrected counts, per-study ratios corrected; "
                    "variances as coded in mada 0.5.12 (RBG without the sum P*S term; LR+/LR- variances not the "
                    "Greenland-Robins formula, LR- CI far too narrow): use convention='textbook' for the published ones"
                )
            ]
            if convention is Convention.MADA
            else []
        ),
        (
            "pooled sensitivity/specificity: fixed = pooled proportion of the uncorrected counts, random = "
            "DerSimonian-Laird on the logit scale; believed to match MetaDisc 1.4 but unverified"
        ),
    ]
    measures = {name: _pool_proportion(ps, name, level) for name in ("sensitivity", "specificity")}
    measures |= {name: _pool_ratio(ps, name, level, convention) for name in ("positive_lr", "negative_lr", "dor")}
    for m in measures.values():
        if m.excluded:
            notes.append(f"{m.name}: random effects without {', '.join(m.excluded)} (undefined on the log/logit scale)")
    c = ps.counts
    return UnivariateDta(
        per_study=ps,
        **measures,
        sensitivity_test=equal_proportions_test(c[:, 0], c[:, 0] + c[:, 2]),
        specificity_test=equal_proportions_test(c[:, 3], c[:, 3] + c[:, 1]),
        threshold=threshold_effect(c, level),
        sroc_unweighted=moses_littenberg(c, weighted=False, level=level),
        sroc_weighted=moses_littenberg(c, weighted=True, level=level),
        correction=correction,
        convention=convention,
        level=level,
        notes=tuple(notes),
    )
