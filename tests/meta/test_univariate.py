"""Univariate DTA meta-analysis and the inverse-variance engine against published outputs.

Expected numbers are copied from /work/shared/meta-reference/expected_outputs.json; the
source of each is written beside it:

* [mada] mada 0.5.12 vignette (inst/doc/mada.pdf, cran/mada @5fcad806), AuditC data,
  ``madad(AuditC)``, ``madauni(AuditC)`` (DSL), ``madauni(AuditC, method = "MH")``,
  ``forest(madad(AuditC), type = "sens"/"spec")``, ``forest(madauni(AuditC))``;
  correction 0.5 on all cells of all studies (studies 7 and 8 have a zero), 95%.
* [metan] Stata metan output quoted by metafor's tests (cran/metafor @3d2ba39b,
  tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r), BCG data (dat.bcg).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from opencmr.errors import InputError, OutputError
from opencmr.meta.data import ContinuityCorrection, DtaStudies, read_dta_csv
from opencmr.meta.per_study import per_study, proportion_ci
from opencmr.meta.plots import plot_paired_forest
from opencmr.meta.pooling import inverse_variance, q_profile_tau2_ci
from opencmr.meta.univariate import (
    Convention,
    equal_proportions_test,
    mantel_haenszel,
    moses_littenberg,
    univariate_dta,
)

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "meta-reference"
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared meta-analysis reference data not present")


def r3(x: float) -> float:
    return round(float(x), 3)


@pytest.fixture(scope="module")
def auditc() -> DtaStudies:
    return read_dta_csv(REFERENCE / "auditc_mada.csv")


@pytest.fixture(scope="module")
def fit(auditc: DtaStudies):
    return univariate_dta(auditc, convention="mada")  # the vignette was printed by mada


@pytest.fixture(scope="module")
def bcg() -> dict[str, np.ndarray]:
    rows = np.genfromtxt(
        REFERENCE / "bcg_colditz1994_metadat.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    return {k: rows[k].astype(float) for k in ("tpos", "tneg", "cpos", "cneg")}


# --- per study: madad(AuditC) -------------------------------------------------------------------


def test_auditc_per_study_sens_spec_wilson(fit) -> None:
    ps = fit.per_study
    # [mada] madad(AuditC) "Diagnostic accuracies": sens [2.5%, 97.5%] and spec, studies 1, 2, 14
    sens = {0: (0.833, 0.716, 0.908), 1: (0.711, 0.64, 0.772), 13: (0.748, 0.684, 0.802)}
    spec = {0: (0.879, 0.855, 0.899), 1: (0.85, 0.833, 0.866), 13: (0.749, 0.702, 0.792)}
    for i, expected in sens.items():
        assert (r3(ps.sensitivity[i]), r3(ps.sensitivity_ci[i, 0]), r3(ps.sensitivity_ci[i, 1])) == expected
    for i, expected in spec.items():
        assert (r3(ps.specificity[i]), r3(ps.specificity_ci[i, 0]), r3(ps.specificity_ci[i, 1])) == expected
    # [mada] madad(AuditC)$fpr$fpr and $fpr$fpr.ci[1, ] (7-8 decimals as printed: half a unit of the 7th)
    fpr = [
        0.12083333,
        0.15005507,
        0.06097561,
        0.22112676,
        0.18061486,
        0.4335443,
        0.20988806,
        0.5200677,
        0.2890625,
        0.17008929,
        0.2306867,
        0.19131238,
        0.27564103,
        0.25070822,
    ]
    np.testing.assert_allclose(ps.fpr, fpr, rtol=0, atol=5e-8)
    np.testing.assert_allclose(ps.fpr_ci[0], [0.10050071, 0.1446182], rtol=0, atol=5e-8)
    assert ps.corrected.all() and ps.counts[6, 2] == 0.5


def test_auditc_forest_rounded_strings(fit) -> None:
    ps = fit.per_study
    # [mada] forest(madad(AuditC), type = "sens") / type = "spec", labels as printed
    sens = [
        "0.83 [0.72, 0.91]",
        "0.71 [0.64, 0.77]",
        "0.65 [0.47, 0.79]",
        "0.91 [0.79, 0.97]",
        "0.87 [0.81, 0.91]",
        "0.97 [0.91, 0.99]",
        "0.99 [0.93, 1.00]",
        "1.00 [0.99, 1.00]",
        "0.92 [0.82, 0.96]",
        "0.74 [0.67, 0.80]",
        "0.85 [0.79, 0.90]",
        "0.94 [0.85, 0.98]",
        "0.96 [0.84, 0.99]",
        "0.75 [0.68, 0.80]",
    ]
    spec = [
        "0.88 [0.86, 0.90]",
        "0.85 [0.83, 0.87]",
        "0.94 [0.90, 0.96]",
        "0.78 [0.73, 0.82]",
        "0.82 [0.80, 0.84]",
        "0.57 [0.49, 0.64]",
        "0.79 [0.75, 0.82]",
        "0.48 [0.47, 0.49]",
        "0.71 [0.64, 0.77]",
        "0.83 [0.82, 0.84]",
        "0.77 [0.73, 0.81]",
        "0.81 [0.77, 0.84]",
        "0.72 [0.62, 0.81]",
        "0.75 [0.70, 0.79]",
    ]
    # [mada] forest(madauni(AuditC)) log DOR per study (14), then "Summary (DSL) 3.27 [2.89, 3.65]"
    lndor = [
        "3.59 [2.87, 4.32]",
        "2.63 [2.28, 2.98]",
        "3.35 [2.41, 4.30]",
        "3.60 [2.48, 4.73]",
        "3.41 [2.91, 3.91]",
        "3.79 [2.49, 5.08]",
        "6.25 [3.46, 9.04]",
        "7.24 [4.46, 10.01]",
        "3.28 [2.35, 4.21]",
        "2.62 [2.29, 2.96]",
        "2.93 [2.45, 3.41]",
        "4.24 [3.14, 5.34]",
        "4.10 [2.39, 5.81]",
        "2.18 [1.78, 2.58]",
    ]

    def fmt(e: np.ndarray, ci: np.ndarray) -> list[str]:
        return [f"{a:.2f} [{b:.2f}, {c:.2f}]" for a, (b, c) in zip(e, ci)]

    assert fmt(ps.sensitivity, ps.sensitivity_ci) == sens
    assert fmt(ps.specificity, ps.specificity_ci) == spec
    assert fmt(np.log(ps.dor), np.log(ps.dor_ci)) == lndor
    assert fmt([fit.dor.random.estimate], [fit.dor.random.ci]) == ["3.27 [2.89, 3.65]"]


def test_auditc_per_study_ratios(fit) -> None:
    ps = fit.per_study
    # [mada] madad(AuditC) "Diagnostic OR and likelihood ratios", studies 1 and 14
    expected = {
        0: {"dor": (36.379, 17.587, 75.251), "positive_lr": (6.897, 5.556, 8.561), "negative_lr": (0.19, 0.106, 0.339)},
        13: {"dor": (8.85, 5.949, 13.165), "positive_lr": (2.982, 2.448, 3.632), "negative_lr": (0.337, 0.264, 0.43)},
    }
    for i, measures in expected.items():
        for name, values in measures.items():
            ci = getattr(ps, f"{name}_ci")[i]
            assert (r3(getattr(ps, name)[i]), r3(ci[0]), r3(ci[1])) == values, (i, name)


def test_auditc_chisquare_and_correlation(fit) -> None:
    # [mada] madad(AuditC): "Test for equality of sensitivities: X-squared = 272.3603, df = 13"
    assert round(fit.sensitivity_test.statistic, 4) == 272.3603 and fit.sensitivity_test.df == 13
    # [mada] "Test for equality of specificities: X-squared = 2204.8, df = 13" (format() to 5 digits)
    assert round(fit.specificity_test.statistic, 1) == 2204.8 and fit.specificity_test.df == 13
    # [mada] "Correlation of sensitivities and false positive rates": rho 0.677 [0.228, 0.888]
    th = fit.threshold
    assert (r3(th.pearson_r), r3(th.pearson_ci[0]), r3(th.pearson_ci[1])) == (0.677, 0.228, 0.888)
    assert -1 <= th.spearman_rho <= 1 and 0 <= th.spearman_p <= 1


# --- pooled ratios: madauni(AuditC) -------------------------------------------------------------


def test_auditc_dsl_dor_mada_convention(fit) -> None:
    dor, het = fit.dor.random, fit.dor.heterogeneity
    # [mada] summary(madauni(AuditC)): DOR 26.337 [17.971, 38.596]; lnDOR 3.271 [2.889, 3.653]
    assert (r3(dor.value), r3(dor.value_ci[0]), r3(dor.value_ci[1])) == (26.337, 17.971, 38.596)
    assert (r3(dor.estimate), r3(dor.ci[0]), r3(dor.ci[1])) == (3.271, 2.889, 3.653)
    # [mada] tau^2 0.311 [0.000, 3.787]; tau 0.557 [0.000, 1.946] (Q-profile as coded in summary.madauni)
    assert (r3(het.tau2), r3(het.tau2_ci[0]), r3(het.tau2_ci[1])) == (0.311, 0.0, 3.787)
    assert (r3(het.tau), r3(np.sqrt(het.tau2_ci[1]))) == (0.557, 1.946)
    # [mada] "Cochran's Q: 19.683 (13 df, p = 0.103)"; "Higgins' I^2: 33.955%" (random-effects weights)
    assert (r3(het.q), het.df, r3(het.p_value), r3(het.i2)) == (19.683, 13, 0.103, 33.955)
    assert het.weights == "random (mada)"


def test_auditc_mh_dor_mada_convention(fit) -> None:
    # [mada] madauni(AuditC, method = "MH"): DOR 17.93335 (printed unrounded)
    assert round(fit.dor.fixed.value, 5) == 17.93335


def test_textbook_convention_differs_where_documented(auditc) -> None:
    t = univariate_dta(auditc, convention="textbook")
    m = univariate_dta(auditc)
    assert t.convention is Convention.TEXTBOOK
    # same DL estimate and tau2; Q with fixed weights (my re-derivation, not published: 52.337 -> 75.2%)
    assert t.dor.random.estimate == pytest.approx(m.dor.random.estimate)
    assert t.dor.heterogeneity.tau2 == pytest.approx(m.dor.heterogeneity.tau2)
    assert round(t.dor.heterogeneity.q, 3) == 52.337 and round(t.dor.heterogeneity.i2, 1) == 75.2
    # textbook MH DOR = ratio of sums on the uncorrected counts
    c = auditc.counts().astype(float)
    n = c.sum(axis=1)
    expected = np.sum(c[:, 0] * c[:, 3] / n) / np.sum(c[:, 1] * c[:, 2] / n)
    assert t.dor.fixed.value == pytest.approx(expected)


def test_mantel_haenszel_single_stratum_is_crude_ratio() -> None:
    counts = np.array([[30, 10, 5, 55]])
    tp, fp, fn, tn = counts[0]
    for name, crude in (
        ("dor", tp * tn / (fp * fn)),
        ("positive_lr", (tp / 35) / (fp / 65)),
        ("negative_lr", (fn / 35) / (tn / 65)),
    ):
        p = mantel_haenszel(counts, name, convention="textbook")
        assert p.value == pytest.approx(crude)
    # RBG variance reduces to Woolf's for one table; Greenland-Robins to the log RR variance
    assert mantel_haenszel(counts, "dor", convention="textbook").se ** 2 == pytest.approx(
        1 / 30 + 1 / 10 + 1 / 5 + 1 / 55
    )
    assert mantel_haenszel(counts, "positive_lr", convention="textbook").se ** 2 == pytest.approx(
        1 / 30 - 1 / 35 + 1 / 10 - 1 / 65
    )
    assert mantel_haenszel(counts, "negative_lr", convention="textbook").se ** 2 == pytest.approx(
        1 / 5 - 1 / 35 + 1 / 55 - 1 / 65
    )


# --- the generic engine: BCG (metan values) -----------------------------------------------------


def test_bcg_log_rr_fixed_and_dl(bcg) -> None:
    a, b, c, d = bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"]
    y = np.log(a / (a + b)) - np.log(c / (c + d))
    v = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    r = inverse_variance(y, v, back_transform="exp")
    r4 = lambda x: round(float(x), 4)
    # [metan] FE: est -0.4303 [-0.5097, -0.3509], z -10.6247, Q 152.233, RR 0.6503 [0.6007, 0.7040]
    assert (r4(r.fixed.estimate), r4(r.fixed.ci[0]), r4(r.fixed.ci[1]), r4(r.fixed.z)) == (
        -0.4303,
        -0.5097,
        -0.3509,
        -10.6247,
    )
    assert round(r.heterogeneity.q, 3) == 152.233
    assert tuple(map(r4, (r.fixed.value, *r.fixed.value_ci))) == (0.6503, 0.6007, 0.704)
    # [metan] DL: est -0.7141 [-1.0644, -0.3638], z -3.9952, tau2 0.3088, I2 92.1173, RR 0.4896 [0.3449, 0.6950]
    assert (r4(r.random.estimate), r4(r.random.ci[0]), r4(r.random.ci[1]), r4(r.random.z)) == (
        -0.7141,
        -1.0644,
        -0.3638,
        -3.9952,
    )
    assert (r4(r.tau2), r4(r.heterogeneity.i2)) == (0.3088, 92.1173)
    assert tuple(map(r4, (r.random.value, *r.random.value_ci))) == (0.4896, 0.3449, 0.695)


def test_bcg_log_or_fixed_and_dl(bcg) -> None:
    a, b, c, d = bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"]
    r = inverse_variance(np.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d, back_transform="exp")
    r4 = lambda x: round(float(x), 4)
    # [metan] FE: est -0.4361 [-0.5190, -0.3533], z -10.3190, Q 163.1649, OR 0.6465 [0.5951, 0.7024]
    assert (r4(r.fixed.estimate), r4(r.fixed.ci[0]), r4(r.fixed.ci[1]), r4(r.fixed.z)) == (
        -0.4361,
        -0.519,
        -0.3533,
        -10.319,
    )
    assert r4(r.heterogeneity.q) == 163.1649
    assert tuple(map(r4, (r.fixed.value, *r.fixed.value_ci))) == (0.6465, 0.5951, 0.7024)
    # [metan] DL: est -0.7474 [-1.1242, -0.3706], z -3.8873, tau2 0.3663, I2 92.6455, OR 0.4736 [0.3249, 0.6903]
    assert (r4(r.random.estimate), r4(r.random.ci[0]), r4(r.random.ci[1]), r4(r.random.z)) == (
        -0.7474,
        -1.1242,
        -0.3706,
        -3.8873,
    )
    assert (r4(r.tau2), r4(r.heterogeneity.i2)) == (0.3663, 92.6455)
    assert tuple(map(r4, (r.random.value, *r.random.value_ci))) == (0.4736, 0.3249, 0.6903)


def test_tau2_floored_at_zero_on_homogeneous_data() -> None:
    # identical true effect, small scatter: Q < k - 1, so (Q - df) / c < 0 and tau2 must be 0, not negative
    y = np.array([0.50, 0.52, 0.49, 0.51, 0.50])
    v = np.array([0.04, 0.05, 0.03, 0.06, 0.04])
    r = inverse_variance(y, v)
    assert r.heterogeneity.q < len(y) - 1
    assert r.tau2 == 0.0 and r.heterogeneity.i2 == 0.0
    assert r.random.estimate == pytest.approx(r.fixed.estimate) and r.random.se == pytest.approx(r.fixed.se)
    assert q_profile_tau2_ci(y, v) == (0.0, 0.0)


def test_engine_errors() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        inverse_variance([0.1], [0.01])
    with pytest.raises(ValueError, match="positive"):
        inverse_variance([0.1, 0.2], [0.01, 0.0])
    with pytest.raises(ValueError, match="finite"):
        inverse_variance([0.1, np.inf], [0.01, 0.02])
    with pytest.raises(ValueError, match="same length"):
        inverse_variance([0.1, 0.2], [0.01])


# --- zero cells, correction scopes, small k ----------------------------------------------------


def _zero_studies() -> DtaStudies:
    return DtaStudies(
        ("a", "b", "c", "d"),
        np.array([20, 15, 30, 12]),
        np.array([0, 4, 6, 3]),
        np.array([5, 3, 0, 2]),
        np.array([40, 35, 50, 28]),
    )


def test_correction_scopes() -> None:
    s = _zero_studies()
    all_ = univariate_dta(s, ContinuityCorrection(0.5, "all"))
    single = univariate_dta(s, ContinuityCorrection(0.5, "single"))
    none = univariate_dta(s, ContinuityCorrection(0.5, "none"))
    assert all_.per_study.corrected.tolist() == [True] * 4
    assert single.per_study.corrected.tolist() == [True, False, True, False]
    assert single.per_study.counts[1].tolist() == [15, 4, 3, 35]
    assert none.per_study.corrected.tolist() == [False] * 4
    # uncorrected zero cells: ratios undefined, left out of DL with a note
    assert np.isinf(none.per_study.dor[0]) and np.isinf(none.per_study.dor[2])
    assert none.dor.excluded == ("a", "c") and none.dor.random.k == 2
    assert any("without a, c" in n for n in none.notes)
    assert all_.dor.excluded == () and all_.dor.random.k == 4
    d = all_.to_dict()
    assert d["correction"] == {"value": 0.5, "scope": "all"}
    assert "4 of 4 studies" in d["correction_applied"]
    json.dumps(none.to_dict(), allow_nan=False)  # non-finite numbers written as null


def test_fewer_than_two_studies() -> None:
    one = DtaStudies(("a",), np.array([10]), np.array([2]), np.array([3]), np.array([20]))
    with pytest.raises(InputError, match="at least 2 studies"):
        univariate_dta(one)
    with pytest.raises(ValueError, match="fewer than 2 studies"):
        univariate_dta(
            _zero_studies().__class__(
                ("a", "c"), np.array([20, 30]), np.array([0, 6]), np.array([5, 0]), np.array([40, 50])
            ),
            ContinuityCorrection(0.5, "none"),
        )


def test_proportion_ci_methods() -> None:
    # Clopper-Pearson for 0/10: upper = 1 - 0.025^(1/10); for 10/10 lower = 0.025^(1/10)
    lo, hi = proportion_ci(np.array([0.0, 10.0]), np.array([10.0, 10.0]), method="clopper-pearson")
    assert lo[0] == 0 and hi[1] == 1
    assert hi[0] == pytest.approx(1 - 0.025**0.1) and lo[1] == pytest.approx(0.025**0.1)
    ps = per_study(_zero_studies(), proportion_ci="clopper-pearson")
    assert ps.proportion_ci.value == "clopper-pearson"
    with pytest.raises(ValueError):
        proportion_ci(1, 2, method="wald")


def test_equal_proportions_homogeneous() -> None:
    t = equal_proportions_test([10, 10, 10], [50, 50, 50])
    assert t.statistic == 0 and t.p_value == 1 and t.i2 == 0


# --- Moses-Littenberg ---------------------------------------------------------------------------


def test_moses_littenberg_symmetric_curve() -> None:
    # every study on the symmetric curve with ln DOR = 2 (b = 0): Q* = expit(1), closed-form AUC (Walter 2002)
    sens = np.array([0.6, 0.7, 0.8, 0.9, 0.95])
    lf = np.log(sens / (1 - sens)) - 2.0
    fpr = 1 / (1 + np.exp(-lf))
    n = 1000.0
    counts = np.column_stack([sens * n, fpr * n, (1 - sens) * n, (1 - fpr) * n])
    for weighted in (False, True):
        m = moses_littenberg(counts, weighted=weighted)
        assert m.a == pytest.approx(2.0) and m.b == pytest.approx(0.0, abs=1e-9)
        assert m.q_star == pytest.approx(1 / (1 + np.exp(-1.0)))
        dor = np.exp(2.0)
        assert m.auc == pytest.approx(dor / (dor - 1) ** 2 * ((dor - 1) - np.log(dor)), rel=1e-6)
        assert m.sensitivity_at(0.5) == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_auditc_sroc_and_summary_frame(fit) -> None:
    for m in (fit.sroc_unweighted, fit.sroc_weighted):
        assert m.k == 14 and 0.5 < m.auc < 1 and m.q_star_ci[0] < m.q_star < m.q_star_ci[1]
    frame = fit.summary_frame()
    rows = frame.to_dict("records") if hasattr(frame, "to_dict") else frame
    assert len(rows) == 10 and {r["model"] for r in rows} == {"fixed", "random"}
    assert fit.sensitivity.random.back_transform.value == "expit"
    assert 0 < fit.sensitivity.random.value < 1
    json.dumps(fit.to_dict(), allow_nan=False)


# --- paired forest plot -------------------------------------------------------------------------


def test_paired_forest_png_and_svg(fit, tmp_path: Path) -> None:
    png = plot_paired_forest(fit.per_study, fit, tmp_path / "forest.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    svg = plot_paired_forest(fit.per_study, (fit.sensitivity.fixed, fit.specificity.fixed), tmp_path / "f.svg")
    text = svg.read_text()
    assert "<svg" in text and "Study 14" in text
    with pytest.raises(OutputError, match="already exists"):
        plot_paired_forest(fit.per_study, fit, png)
    plot_paired_forest(fit.per_study, None, png, overwrite=True)
    with pytest.raises(ValueError, match="PNG or SVG"):
        plot_paired_forest(fit.per_study, fit, tmp_path / "forest.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.svg", "forest.png"]  # no partial files left
