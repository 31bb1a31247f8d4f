"""The proportional hazards model and the sampled summary points against mada's AuditC vignette.

Expected numbers are copied from /work/shared/meta-reference/expected_outputs.json (key ``auditc_mada``),
which cites the mada 0.5.12 vignette inst/doc/mada.pdf (Doebler, Holling, Sousa-Pinto; GitHub mirror
cran/mada @5fcad806), data ``AuditC`` (= auditc_mada.csv), 0.5 added to every cell (mada's default):
* ``phm_homogeneous``:   ``summary(phm(AuditC, hetero = FALSE))``;
* ``phm_heterogeneous``: ``summary(phm(AuditC))`` and ``AUC(phm(AuditC))``;
* ``SummaryPts_sampling_zwinderman_bossuyt``: ``summary(SummaryPts(reitsma(AuditC), n.iter = 10^6))``.
Deterministic values are compared to their printed precision: |ours - printed| <= half a unit of the last
printed digit. The sampled ones are Monte Carlo (see ``test_summary_points_auditc``).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from opencmr.errors import InputError
from opencmr.meta.bivariate import reitsma
from opencmr.meta.data import ContinuityCorrection, CorrectionScope, DtaStudies, read_dta_csv
from opencmr.meta.phm import phm
from opencmr.meta.summary_points import summary_points


def printed(value: float, expected: float, decimals: int) -> bool:
    """``value`` rounds to ``expected`` as printed with ``decimals`` decimals (half a unit, plus float slack)."""
    return abs(value - expected) <= 0.5 * 10.0**-decimals + 1e-12


@pytest.fixture(scope="module")
def auditc(meta_reference) -> DtaStudies:
    return read_dta_csv(meta_reference / "auditc_mada.csv")


@pytest.fixture(scope="module")
def published(meta_reference) -> dict:
    return json.loads((meta_reference / "expected_outputs.json").read_text())["auditc_mada"]


def test_phm_homogeneous_auditc(auditc, published):
    fit = phm(auditc, hetero=False)
    ref = published["phm_homogeneous"]
    # mada vignette, summary(phm(AuditC, hetero = FALSE)): theta 0.004586893 [0.003508507, 0.005665280]
    assert ref["theta"] == [0.004586893, 0.003508507, 0.00566528]
    assert printed(fit.theta.estimate, 0.004586893, 9)
    assert printed(fit.theta.ci_lower, 0.003508507, 9)
    assert printed(fit.theta.ci_upper, 0.005665280, 9)
    # same output: "Log-likelihood: -61.499 on 1 degrees of freedom"
    assert ref["logLik"] == -61.499
    assert printed(fit.loglik, -61.499, 3)
    # same output: Chi-square goodness of fit test ... Chi-square = 222.47
    assert ref["chisq_gof"] == 222.47
    assert printed(fit.gof_statistic, 222.47, 2)
    assert fit.tau2 is None and fit.n_params == 1 and fit.gof_df == auditc.k - 1
    assert fit.converged


def test_phm_heterogeneous_auditc(auditc, published):
    fit = phm(auditc)
    ref = published["phm_heterogeneous"]
    # mada vignette, summary(phm(AuditC)):
    #   theta   0.084631351 [ 0.047449859, 0.121812844]
    #   taus_sq 0.003706143 [-0.001277798, 0.008690085]
    assert ref["theta"] == [0.084631351, 0.047449859, 0.121812844]
    assert ref["taus_sq"] == [0.003706143, -0.001277798, 0.008690085]
    assert printed(fit.theta.estimate, 0.084631351, 9)
    assert printed(fit.theta.ci_lower, 0.047449859, 9)
    assert printed(fit.theta.ci_upper, 0.121812844, 9)
    assert printed(fit.tau2.estimate, 0.003706143, 9)
    assert printed(fit.tau2.ci_lower, -0.001277798, 9)
    assert printed(fit.tau2.ci_upper, 0.008690085, 9)
    # same output: "Log-likelihood: 31.121 on 2 degrees of freedom", "AIC: -58.2", "BIC: -57"
    assert (ref["logLik"], ref["AIC"], ref["BIC"]) == (31.121, -58.2, -57)
    assert printed(fit.loglik, 31.121, 3)
    assert printed(fit.aic, -58.2, 1)
    assert printed(fit.bic, -57, 0)
    # same output: Chi-square goodness of fit test (... under heterogeneity): Chi-square = 13.726
    assert ref["chisq_gof"] == 13.726
    assert printed(fit.gof_statistic, 13.726, 3)
    # mada vignette, AUC(phm(AuditC)): AUC 0.922 [0.891, 0.955]; pAUC 0.891 [0.848, 0.937]
    # (expected_outputs.json lists them as [estimate, upper, lower])
    assert ref["AUC"] == [0.922, 0.955, 0.891] and ref["pAUC"] == [0.891, 0.937, 0.848]
    assert printed(fit.auc.estimate, 0.922, 3)
    assert printed(fit.auc.ci_lower, 0.891, 3)
    assert printed(fit.auc.ci_upper, 0.955, 3)
    assert printed(fit.pauc.estimate, 0.891, 3)
    assert printed(fit.pauc.ci_lower, 0.848, 3)
    assert printed(fit.pauc.ci_upper, 0.937, 3)


def test_phm_derived_quantities(auditc):
    fit = phm(auditc)
    theta = fit.theta.estimate
    # AUC is the area under fpr^theta; pAUC the mean height over the observed (uncorrected) FPR range
    assert math.isclose(fit.auc.estimate, 1 / (1 + theta))
    a, b = fit.observed_fpr_range
    u = np.linspace(a, b, 200_001)
    heights = fit.sroc(u)
    mean_height = float(np.sum((heights[1:] + heights[:-1]) / 2 * np.diff(u)) / (b - a))
    assert math.isclose(fit.pauc.estimate, mean_height, rel_tol=1e-8)
    # uncorrected FPRs, as mada's AUC.phm uses fpr(x$data): study 3 (12/204) and study 8 (3226/6203)
    assert (a, b) == (12 / 204, 3226 / 6203)
    assert np.allclose(fit.sroc([0.1, 0.5]), np.array([0.1, 0.5]) ** theta)
    # gof p-value on k - 2 df (mada's p.value), not on the printed "df = 2"
    assert fit.gof_df == auditc.k - 2
    assert 0 < fit.gof_p_value < 1
    names = [row["parameter"] for row in fit.summary_frame()]
    assert names == ["theta", "tau2", "AUC", "pAUC", "logLik", "AIC", "BIC", "chisq_gof"]
    data = json.loads(json.dumps(fit.to_dict()))
    assert data["correction"]["applied"].startswith("0.5 added to every cell of 14 of 14")
    assert data["goodness_of_fit"]["df"] == 12 and data["tau2"]["ci_lower"] < 0


def test_phm_near_homogeneous_refits_with_floored_tau2():
    # nearly identical studies: mada's iteration lets tau^2 go negative and oscillates without
    # converging (it only warns); we refit with tau^2 floored at 0, which converges, and say so
    studies = DtaStudies(tuple("abcd"), tp=[40, 45, 35, 41], fp=[10, 11, 9, 10], fn=[10] * 4, tn=[90] * 4)
    fit = phm(studies)
    assert fit.converged and fit.tau2.estimate == 0.0
    assert any("floored at 0" in note for note in fit.notes)
    # with tau^2 = 0 the estimate is a precision-weighted mean of the study thetas: inside their range
    assert fit.study_theta.min() < fit.theta.estimate < fit.study_theta.max()
    homogeneous = phm(studies, hetero=False)
    assert math.isclose(fit.theta.estimate, homogeneous.theta.estimate, rel_tol=0.05)


def test_phm_input_errors():
    few = DtaStudies(("a", "b"), tp=[10, 12], fp=[3, 4], fn=[2, 3], tn=[20, 30])
    with pytest.raises(InputError, match="at least 3 studies"):
        phm(few)
    assert phm(few, hetero=False).gof_df == 1
    zero = DtaStudies(tuple("abc"), tp=[10, 12, 9], fp=[0, 4, 5], fn=[2, 3, 1], tn=[20, 30, 25])
    with pytest.raises(InputError, match="zero cells in 'a'"):
        phm(zero, correction=ContinuityCorrection(0.5, CorrectionScope.NONE))
    with pytest.raises(ValueError, match="level"):
        phm(few, hetero=False, level=1.0)


def test_summary_points_auditc(auditc, published):
    """Monte Carlo: mada draws 10^6 samples with R's generator, we draw 2e5 with numpy's.

    With 2e5 draws the Monte Carlo standard error of the means and medians is below 0.1 % and that of
    the 2.5 %/97.5 % quantiles about 0.3 % (log-normal-like draws, SD of log DOR about 0.23); the
    printed values carry 3 significant digits (rounding up to 0.6 %) and their own Monte Carlo error.
    A 2 % relative tolerance leaves room for all of that, and still fails for a wrong covariance
    (sampling Psi + vcov or vcov without the correlation moves the intervals by far more).
    """
    fit = reitsma(auditc)
    points = summary_points(fit, n_draws=200_000, seed=0)
    ref = published["SummaryPts_sampling_zwinderman_bossuyt"]
    # mada vignette, summary(SummaryPts(fit.reitsma)), columns Mean, Median, 2.5%, 97.5%:
    expected = {
        "posLR": (4.06, 4.03, 3.26, 4.99),
        "negLR": (0.145, 0.140, 0.0811, 0.234),
        "invnegLR": (7.44, 7.14, 4.28, 12.3),
        "DOR": (29.7, 28.9, 18.4, 45.3),
    }
    rows = {row["parameter"]: row for row in points.summary_frame()}
    for name, (mean, median, lower, upper) in expected.items():
        assert ref[name] == {"mean": mean, "median": median, "ci": [lower, upper]}
        got = rows[name]
        for key, value in (("mean", mean), ("median", median), ("ci_lower", lower), ("ci_upper", upper)):
            assert math.isclose(got[key], value, rel_tol=0.02), (name, key, got[key], value)


def test_summary_points_reproducible_and_consistent(auditc):
    fit = reitsma(auditc)
    one, two = summary_points(fit, n_draws=5000, seed=7), summary_points(fit, n_draws=5000, seed=7)
    assert one.to_dict() == two.to_dict()
    assert one.to_dict() != summary_points(fit, n_draws=5000, seed=8).to_dict()
    # 1/LR- is the reciprocal per draw: its median and interval are the reciprocals of LR-'s
    assert math.isclose(one.inv_neg_lr.median, 1 / one.neg_lr.median, rel_tol=1e-6)
    assert math.isclose(one.dor.median, math.exp(fit.mu[0] - fit.mu[1]), rel_tol=0.03)
    json.dumps(one.to_dict())


def test_summary_points_rejects_regression():
    studies = DtaStudies(
        tuple("abcdef"),
        tp=[45, 30, 80, 22, 50, 33],
        fp=[10, 12, 30, 5, 9, 14],
        fn=[5, 8, 12, 6, 7, 9],
        tn=[90, 70, 150, 60, 85, 66],
        covariates={"x": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)},
    )
    with pytest.raises(ValueError, match="meta-regression"):
        summary_points(reitsma(studies, covariate="x"))
    with pytest.raises(ValueError, match="n_draws"):
        summary_points(reitsma(studies), n_draws=1)


def test_phm_identical_studies_have_no_standard_errors():
    # identical tables: the scores of theta and tau^2 are proportional, the information is singular
    studies = DtaStudies(tuple("abcd"), tp=[40] * 4, fp=[10] * 4, fn=[10] * 4, tn=[90] * 4)
    fit = phm(studies)
    assert fit.converged and fit.tau2.estimate == 0.0
    assert math.isnan(fit.theta.se) and math.isnan(fit.auc.ci_lower)
    assert any("singular" in note for note in fit.notes)
    # the adjusted profile estimate shrinks the common log(sens)/log(fpr) = log 0.8 / log 0.1 slightly
    assert 0.9 * math.log(0.8) / math.log(0.1) < fit.theta.estimate < math.log(0.8) / math.log(0.1)
    json.dumps(fit.to_dict())
