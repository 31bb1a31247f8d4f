"""The bivariate model against published outputs: mada's AuditC vignette (REML) and van Houwelingen 2002 (BCG, ML).

Expected numbers are copied from /work/shared/meta-reference/expected_outputs.json, which cites
* ``auditc_mada``: mada 0.5.12 vignette inst/doc/mada.pdf (cran/mada @5fcad806),
  output of ``fit.reitsma <- reitsma(AuditC); summary(fit.reitsma)``;
* ``bcg_colditz1994_generic_engine``: van Houwelingen, Arends & Stijnen 2002, Stat Med 21, pp. 596-605
  (via metafor's test_analysis_example_vanhouwelingen2002.r @3d2ba39b).
Each value is compared to the printed precision: |ours - printed| <= half a unit of the last printed digit.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from opencmr.errors import InputError, OutputError
from opencmr.meta.bivariate import (
    BivariateConvergenceError,
    EstimationMethod,
    _profile,
    fit_bivariate,
    reitsma,
)
from opencmr.meta.data import ContinuityCorrection, DtaStudies, read_dta_csv
from opencmr.meta.sroc_plot import plot_sroc

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "meta-reference"


def printed(value: float, expected: float, decimals: int) -> bool:
    """``value`` rounds to ``expected`` as printed with ``decimals`` decimals (half a unit, plus float slack)."""
    return abs(value - expected) <= 0.5 * 10.0**-decimals + 1e-9


@pytest.fixture(scope="module")
def auditc() -> DtaStudies:
    path = REFERENCE / "auditc_mada.csv"
    if not path.is_file():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return read_dta_csv(path)


@pytest.fixture(scope="module")
def auditc_reml(auditc):
    return reitsma(auditc)


def bcg_arms() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BCG trials: y = log odds (control, vaccinated), S diagonal 1/events + 1/non-events; and latitude."""
    path = REFERENCE / "bcg_colditz1994_metadat.csv"
    if not path.is_file():
        pytest.skip(f"reference data not found at {REFERENCE}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    events = np.array([[float(r["cpos"]), float(r["tpos"])] for r in rows])
    free = np.array([[float(r["cneg"]), float(r["tneg"])] for r in rows])
    s = np.zeros((len(rows), 2, 2))
    s[:, [0, 1], [0, 1]] = 1 / events + 1 / free
    return np.log(events / free), s, np.array([float(r["ablat"]) for r in rows])


# --- AuditC, REML: mada 0.5.12 vignette, summary(reitsma(AuditC)) --------------------------------------------------


def test_auditc_reml_coefficients(auditc_reml):
    rows = {row["parameter"]: row for row in auditc_reml.coefficient_table()}
    sens, fpr = rows["tsens.(Intercept)"], rows["tfpr.(Intercept)"]
    assert printed(sens["estimate"], 2.0997, 4)  # vignette: tsens.(Intercept) Estimate 2.0997 (print.reitsma)
    assert printed(sens["se"], 0.338, 3)  # vignette: Std. Error 0.338
    assert printed(sens["z"], 6.215, 3)  # vignette: z 6.215
    assert printed(sens["ci_lower"], 1.438, 3) and printed(sens["ci_upper"], 2.762, 3)  # vignette: 95%ci 1.438 2.762
    assert printed(fpr["estimate"], -1.2637, 4)  # vignette: tfpr.(Intercept) Estimate -1.2637
    assert printed(fpr["se"], 0.174, 3)  # vignette: Std. Error 0.174
    assert printed(fpr["z"], -7.249, 3)  # vignette: z -7.249
    assert printed(fpr["ci_lower"], -1.605, 3) and printed(fpr["ci_upper"], -0.922, 3)  # vignette: -1.605 -0.922


def test_auditc_reml_summary_point(auditc_reml):
    s, f = auditc_reml.sensitivity, auditc_reml.fpr
    for value, expected in zip((s.estimate, s.ci_lower, s.ci_upper), (0.891, 0.808, 0.941)):
        assert printed(value, expected, 3)  # vignette: sensitivity 0.891 [0.808, 0.941]
    for value, expected in zip((f.estimate, f.ci_lower, f.ci_upper), (0.220, 0.167, 0.285)):
        assert printed(value, expected, 3)  # vignette: false pos. rate 0.220 [0.167, 0.285]
    spec = auditc_reml.specificity
    assert spec.estimate == pytest.approx(1 - f.estimate) and spec.ci_lower == pytest.approx(1 - f.ci_upper)


def test_auditc_reml_variance_components_and_fit(auditc_reml):
    assert printed(math.sqrt(auditc_reml.tau2_sens), 1.175, 3)  # vignette: Std. Dev tsens 1.175
    assert printed(math.sqrt(auditc_reml.tau2_fpr), 0.638, 3)  # vignette: Std. Dev tfpr 0.638
    assert printed(auditc_reml.rho, 0.854, 3)  # vignette: corRandom tsens/tfpr 0.854
    assert printed(auditc_reml.loglik, 31.564, 3)  # vignette: logLik 31.564 (mvmeta constants + Jacobian)
    assert printed(auditc_reml.aic, -53.1279, 4)  # vignette (print.reitsma, 4 digits): AIC -53.1279
    assert printed(auditc_reml.bic, -46.4669, 4)  # vignette: BIC -46.4669
    assert printed(auditc_reml.auc, 0.887, 3)  # vignette: AUC 0.887
    assert printed(auditc_reml.pauc, 0.861, 3)  # vignette: Partial AUC (observed FPRs, normalized) 0.861


def test_auditc_hsroc_and_sroc_consistent(auditc_reml):
    """Harbord's conversion: the RG SROC passes through the summary point's Theta-line and has slope exp(-beta)."""
    h, mu = auditc_reml.hsroc, auditc_reml.mu
    s1, s2 = math.sqrt(auditc_reml.tau2_sens), math.sqrt(auditc_reml.tau2_fpr)
    assert h.beta == pytest.approx(math.log(s2 / s1))
    # back-conversion (Harbord 2007, eq. for mu_A, mu_B in terms of Lambda, Theta, beta), FPR sign convention
    assert math.exp(-h.beta / 2) * (h.Theta + h.Lambda / 2) == pytest.approx(mu[0])
    assert math.exp(h.beta / 2) * (h.Theta - h.Lambda / 2) == pytest.approx(mu[1])
    assert h.sigma2_theta + h.sigma2_alpha / 4 == pytest.approx(s1 * s2)
    fpr = np.array([0.1, 0.2])
    logit = np.log(auditc_reml.sroc(fpr) / (1 - auditc_reml.sroc(fpr)))
    assert (logit[1] - logit[0]) / (np.log(0.2 / 0.8) - np.log(0.1 / 0.9)) == pytest.approx(s1 / s2)


def test_auditc_regions(auditc_reml):
    conf, pred = auditc_reml.confidence_region, auditc_reml.prediction_region
    assert conf.shape == pred.shape == (100, 2)
    assert np.all((conf > 0) & (conf < 1))
    # the confidence region lies inside the prediction region, both around the summary point
    centre = (auditc_reml.fpr.estimate, auditc_reml.sensitivity.estimate)
    assert conf[:, 0].min() < centre[0] < conf[:, 0].max() and conf[:, 1].min() < centre[1] < conf[:, 1].max()
    assert pred[:, 0].min() < conf[:, 0].min() and pred[:, 1].min() < conf[:, 1].min()


def test_auditc_to_dict_is_json(auditc_reml):
    data = json.loads(json.dumps(auditc_reml.to_dict(), allow_nan=False))
    assert data["correction"] == {
        "value": 0.5,
        "scope": "all",
        "applied": "0.5 added to every cell of 14 of 14 studies (all)",
    }
    assert data["method"] == "reml" and data["k"] == 14 and data["notes"]
    names = [row["parameter"] for row in auditc_reml.summary_frame()]
    assert {"tsens.(Intercept)", "sensitivity", "specificity", "rho", "Lambda", "AUC", "BIC"} <= set(names)


def test_ml_versus_reml(auditc, auditc_reml):
    """REML corrects ML's downward bias of the variances: at the same Psi, ll_REML = ll_ML - log|X'WX|/2 + q log(2pi)/2."""
    ml = reitsma(auditc, method="ml")
    assert ml.tau2_sens < auditc_reml.tau2_sens and ml.tau2_fpr < auditc_reml.tau2_fpr
    # identity of the two criteria at one Psi, from the engine's internals
    fit = auditc_reml.fit
    x = np.tile(np.eye(2)[None], (auditc.k, 1, 1))
    counts = ContinuityCorrection().apply(auditc.counts())
    tp, fp, fn, tn = counts.T
    sens, fpr = tp / (tp + fn), fp / (fp + tn)
    yy = np.column_stack([np.log(sens / (1 - sens)), np.log(fpr / (1 - fpr))])
    s = np.zeros((auditc.k, 2, 2))
    s[:, 0, 0], s[:, 1, 1] = 1 / ((tp + fn) * sens * (1 - sens)), 1 / ((fp + tn) * fpr * (1 - fpr))
    f_ml, _, beta_ml, vcov = _profile(fit.psi, yy, s, x, EstimationMethod.ML)
    f_reml, _, beta_reml, _ = _profile(fit.psi, yy, s, x, EstimationMethod.REML)
    assert -f_reml == pytest.approx(fit.loglik)
    assert f_reml - f_ml == pytest.approx(0.5 * (-np.linalg.slogdet(vcov)[1] - 2 * math.log(2 * math.pi)))
    assert np.allclose(beta_ml, beta_reml)


# --- BCG, ML: van Houwelingen, Arends & Stijnen 2002 -----------------------------------------------------------------


def test_bcg_bivariate_ml_van_houwelingen():
    y, s, _ = bcg_arms()
    fit = fit_bivariate(y, s, method="ml")
    mu = fit.coefficients[0]
    assert printed(mu[0], -4.0960, 4) and printed(mu[1], -4.8337, 4)  # vH 2002 p.596-605: means CON -4.096, EXP -4.8337
    assert printed(fit.tau2[0], 2.4073, 4) and printed(fit.tau2[1], 1.4314, 4)  # vH 2002: tau2 CON 2.4073, EXP 1.4314
    assert printed(fit.rho, 0.9467, 4)  # vH 2002: rho 0.9467


def test_profiled_ml_equals_full_maximisation():
    """Profiling beta out by GLS gives the joint maximum: compare with Nelder-Mead over (beta, Psi) together."""
    y, s, lat = bcg_arms()
    design = np.column_stack([np.ones(len(lat)), lat - lat.mean()])
    fit = fit_bivariate(y, s, design, method="ml")

    def minus_ll(par):
        beta = par[:4].reshape(2, 2)  # rows: outcome; columns: intercept, slope
        chol = np.array([[math.exp(par[4]), 0], [par[5], math.exp(par[6])]])
        psi = chol @ chol.T
        r = y - design @ beta.T
        sigma = s + psi
        return 0.5 * sum(np.linalg.slogdet(c)[1] + ri @ np.linalg.solve(c, ri) for c, ri in zip(sigma, r))

    start = np.r_[fit.coefficients.T.ravel() + 0.05, np.log(np.sqrt(fit.tau2)) + 0.1, 0.1]
    res = optimize.minimize(
        minus_ll, start, method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-9, "fatol": 1e-12}
    )
    full = -res.fun - y.size / 2 * math.log(2 * math.pi)
    assert full <= fit.loglik + 1e-6  # the engine finds (at least) the joint maximum
    assert full == pytest.approx(fit.loglik, abs=1e-4)


# --- meta-regression -----------------------------------------------------------------------------------------------


def _bcg_as_studies() -> DtaStudies:
    """BCG as 2x2 tables with latitude and allocation (not diagnostic data: exercises the covariate code only)."""
    path = REFERENCE / "bcg_colditz1994_metadat.csv"
    if not path.is_file():
        pytest.skip(f"reference data not found at {REFERENCE}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    records = [
        {
            "study": r["author"] + " " + r["year"],
            "TP": r["tpos"],
            "FN": r["tneg"],
            "FP": r["cpos"],
            "TN": r["cneg"],
            "ablat": r["ablat"],
            "alloc": r["alloc"],
        }
        for r in rows
    ]
    return DtaStudies.from_records([{k: (float(v) if k == "ablat" else v) for k, v in r.items()} for r in records])


def test_meta_regression_numeric_lrt_is_ml_likelihood_ratio():
    studies = _bcg_as_studies()
    with_cov = reitsma(studies, covariate="ablat")
    reg = with_cov.regression
    assert reg.kind == "numeric" and reg.terms == ("(Intercept)", "ablat") and reg.lr_df == 2
    ml_without = reitsma(studies, method="ml")
    ml_with = reitsma(studies, method="ml", covariate="ablat")
    assert reg.loglik_ml_without == pytest.approx(ml_without.loglik)
    assert reg.loglik_ml_with == pytest.approx(ml_with.loglik)
    assert reg.lr_statistic == pytest.approx(2 * (ml_with.loglik - ml_without.loglik))
    assert reg.aic_ml_without == pytest.approx(ml_without.aic) and reg.aic_ml_with == pytest.approx(ml_with.aic)
    assert reg.lr_statistic > 5 and 0 < reg.lr_p_value < 0.05  # latitude explains much of the BCG heterogeneity
    assert with_cov.sensitivity is None and with_cov.hsroc is None and with_cov.fit.coefficients.shape == (2, 2)
    with pytest.raises(ValueError, match="meta-regression"):
        with_cov.sroc(0.2)
    json.dumps(with_cov.to_dict())


def test_meta_regression_categorical_dummies_and_shift_invariance():
    studies = _bcg_as_studies()
    cat = reitsma(studies, method="ml", covariate="alloc")
    assert cat.regression.levels == ("alternate", "random", "systematic")
    assert cat.regression.terms == ("(Intercept)", "alloc[random]", "alloc[systematic]") and cat.regression.lr_df == 4
    # the intercept of a categorical model is the reference level ("alternate": trials 5 and 6)
    assert cat.fit.coefficients.shape == (3, 2)
    # a numeric covariate shifted by a constant changes only the intercept, not the likelihood
    shifted = DtaStudies(
        studies.ids,
        studies.tp,
        studies.fp,
        studies.fn,
        studies.tn,
        covariates={"ablat": tuple(v - 30 for v in studies.covariates["ablat"])},
    )
    a = reitsma(studies, method="ml", covariate="ablat")
    b = reitsma(shifted, method="ml", covariate="ablat")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)
    assert a.fit.coefficients[1] == pytest.approx(b.fit.coefficients[1], abs=1e-4)


# --- errors ----------------------------------------------------------------------------------------------------------


def test_too_few_studies():
    studies = DtaStudies(("a", "b"), tp=[10, 20], fp=[3, 4], fn=[2, 5], tn=[30, 40])
    with pytest.raises(InputError, match="needs at least 3 studies, got 2"):
        reitsma(studies)


def test_constant_unknown_and_missing_covariate():
    base = {"tp": [10, 20, 15, 9], "fp": [3, 4, 6, 2], "fn": [2, 5, 4, 3], "tn": [30, 40, 35, 28]}
    ids = ("a", "b", "c", "d")
    with pytest.raises(InputError, match="constant"):
        reitsma(DtaStudies(ids, **base, covariates={"x": (1.0, 1.0, 1.0, 1.0)}), covariate="x")
    with pytest.raises(InputError, match="constant"):
        reitsma(DtaStudies(ids, **base, covariates={"g": ("CT",) * 4}), covariate="g")
    with pytest.raises(InputError, match="no covariate 'y'"):
        reitsma(DtaStudies(ids, **base, covariates={"x": (1.0, 2.0, 3.0, 4.0)}), covariate="y")
    with pytest.raises(InputError, match="missing for 'b'"):
        reitsma(DtaStudies(ids, **base, covariates={"x": (1.0, "", 3.0, 4.0)}), covariate="x")
    with pytest.raises(InputError, match="needs at least 5 studies, got 4"):  # 3 levels: 9 parameters, 8 observations
        reitsma(DtaStudies(ids, **base, covariates={"g": ("A", "B", "C", "C")}), covariate="g")


def test_zero_cells_without_correction():
    studies = DtaStudies(("a", "b", "c"), tp=[10, 20, 0], fp=[3, 4, 6], fn=[2, 5, 4], tn=[30, 40, 35])
    with pytest.raises(InputError, match="zero cells in 'c'"):
        reitsma(studies, correction=ContinuityCorrection(scope="none"))
    single = reitsma(studies, correction=ContinuityCorrection(scope="single"))
    assert single.correction_note == "0.5 added to every cell of 1 of 3 studies (single)"


def test_homogeneous_studies_give_zero_variances_and_no_sroc(tmp_path):
    """Identical proportions: Psi at the boundary (0); the fit converges, the HSROC/SROC/AUC are undefined."""
    studies = DtaStudies(
        tuple("abcde"), tp=[40, 41, 39, 80, 20], fp=[10, 10, 11, 20, 5], fn=[10, 9, 11, 20, 5], tn=[90, 91, 89, 180, 45]
    )
    for method in ("reml", "ml"):
        fit = reitsma(studies, method=method)
        assert fit.tau2_sens < 1e-8 and fit.tau2_fpr < 1e-8
        assert math.isnan(fit.rho) and math.isnan(fit.hsroc.beta) and fit.auc is None
        tp, fn = studies.tp.astype(float), studies.fn.astype(float)
        weight = tp * fn / (tp + fn)  # 1 / var(logit sens) = n p (1 - p)
        fixed = np.sum(weight * np.log(tp / fn)) / weight.sum()  # the fixed-effect (inverse-variance) pooled logit
        assert fit.sensitivity.logit == pytest.approx(fixed, abs=1e-6)
        json.dumps(fit.to_dict(), allow_nan=False)
        plot_sroc(fit, studies, tmp_path / f"{method}.png")


def test_non_convergence_is_reported(monkeypatch):
    y, s, _ = bcg_arms()
    from opencmr.meta import bivariate

    monkeypatch.setattr(bivariate, "_GRADIENT_TOLERANCE", 0.0)
    with pytest.raises(BivariateConvergenceError, match="did not converge"):
        fit_bivariate(y, s, method="ml")


# --- SROC plot -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_sroc_written(tmp_path, auditc, auditc_reml, suffix):
    path = plot_sroc(auditc_reml, auditc, tmp_path / f"sroc{suffix}", extra_points={"opencmr (ACDC CV)": (0.93, 0.05)})
    data = path.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert b"<svg" in data[:2000] and b"opencmr (ACDC CV)" in data
    with pytest.raises(OutputError, match="already exists"):
        plot_sroc(auditc_reml, auditc, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial files left


def test_plot_sroc_refuses(tmp_path, auditc, auditc_reml):
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_sroc(auditc_reml, auditc, tmp_path / "sroc.pdf")
    with pytest.raises(ValueError, match="must lie in"):
        plot_sroc(auditc_reml, auditc, tmp_path / "sroc.png", extra_points={"bad": (1.2, 0.1)})
    studies = _bcg_as_studies()
    with pytest.raises(ValueError, match="without covariate"):
        plot_sroc(reitsma(studies, covariate="ablat"), studies, tmp_path / "sroc.png")
