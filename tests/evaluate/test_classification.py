"""Diagnostic classifier evaluation: Wilson intervals, 2 x 2 tables, AUC, Brier, ECE, plots and ``opencmr evaluate-diagnosis``.

Expected numbers are worked by hand in the comments, or taken from the
published example they are written beside (paper and table named), or from
the R output of the reference implementation (package, call and where the
output was read named).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.errors import InputError, OutputError
from opencmr.evaluate.classification import (
    ACDC_GROUPS,
    TWO_BY_TWO_COLUMNS,
    TwoByTwo,
    _stratified_resamples,
    brier_score,
    brier_score_ovr,
    confusion_matrix,
    evaluate_classification,
    expected_calibration_error,
    plot_confusion,
    plot_reliability,
    plot_roc,
    proportion,
    read_diagnosis_table,
    reliability_diagram,
    roc_auc_binary,
    roc_auc_ovr,
    roc_curve_binary,
    roc_curve_ovr,
    two_by_two,
    wilson_interval,
)

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Z = 1.959963984540054  # qnorm(0.975)
Z2 = Z * Z  # 3.841459


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) > 1000


def _onehot_proba(pred: list[str], classes: tuple[str, ...], confidence: float = 0.8) -> np.ndarray:
    """Probability ``confidence`` on the predicted class, the rest shared equally."""
    k = len(classes)
    p = np.full((len(pred), k), (1.0 - confidence) / (k - 1))
    p[np.arange(len(pred)), [classes.index(g) for g in pred]] = confidence
    return p


# ---------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    ("successes", "n", "lower", "upper"),
    [
        # Newcombe 1998 (Stat Med 17:857, doi:10.1002/(SICI)1097-0258(19980430)17:8<857::AID-SIM777>3.0.CO;2-E),
        # Table I, method 3 (score interval without continuity correction), 4 decimals as printed there.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_reproduces_newcombe_table_1(successes: int, n: int, lower: float, upper: float) -> None:
    low, high = wilson_interval(successes, n)
    assert (round(low, 4), round(high, 4)) == (lower, upper)


@pytest.mark.parametrize(
    ("successes", "n", "lower", "upper"),
    [
        # R: binom::binom.confint(x, n, tol = 1e-8), row "wilson" (the last of its 11 methods), as recorded in
        # statsmodels/stats/tests/results/results_proportion.py (res_binom[(x, n)].ci_low / .ci_upp, last entry).
        (18, 20, 0.6989663547715128, 0.972133518786232),
        (4, 20, 0.0806576625797981, 0.4160174322518935),
        (4, 200, 0.00780442641634947, 0.05028708690582643),
        (190, 200, 0.910421851861224, 0.972617354399236),
        (1, 30, 5.908590e-03, 0.16670391),
        (29, 30, 0.8332961, 0.9940914),
    ],
)
def test_wilson_matches_r_binom(successes: int, n: int, lower: float, upper: float) -> None:
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(lower, abs=1e-7) and high == pytest.approx(upper, abs=1e-7)


def test_wilson_closed_forms_and_edges() -> None:
    # x = 0: p = 0, centre = half = (z^2 / 2n) / (1 + z^2 / n), so lower = 0 and upper = z^2 / (n + z^2);
    # x = n mirrors it: lower = n / (n + z^2). For n = 20: 3.841459 / 23.841459 = 0.161124.
    assert wilson_interval(0, 20) == (0.0, pytest.approx(Z2 / (20 + Z2), rel=1e-12))
    assert wilson_interval(20, 20) == (pytest.approx(20 / (20 + Z2), rel=1e-12), 1.0)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    # the interval narrows with the level: 90 % inside 95 %
    assert wilson_interval(7, 10, 0.90)[0] > wilson_interval(7, 10)[0]
    for bad in ((3, 2), (-1, 5), (1.5, 4)):
        with pytest.raises(ValueError, match="successes <= n"):
            wilson_interval(*bad)
    with pytest.raises(ValueError, match="between 0 and 1"):
        wilson_interval(1, 2, level=95)
    p = proportion(7, 10)
    # 7/10 by hand: z^2/n = 0.3841459; centre (0.7 + 0.1920729) / 1.3841459 = 0.6444934;
    # half 1.959964 x sqrt(0.021 + 0.3841459 / 40) / 1.3841459 = 1.959964 x 0.1749390 / 1.3841459 = 0.2477153
    # -> 0.3967781 to 0.8922087
    assert p.estimate == 0.7 and p.ci == (pytest.approx(0.3967781, abs=1e-7), pytest.approx(0.8922087, abs=1e-7))


# ---------------------------------------------------------------------------- counts

CLASSES3 = ("A", "B", "C")
TRUE3 = ["A", "A", "A", "A", "B", "B", "B", "C", "C", "C"]
PRED3 = ["A", "A", "A", "B", "B", "B", "C", "C", "C", "A"]
# Confusion matrix (rows true, columns predicted):
#        A  B  C
#   A    3  1  0
#   B    0  2  1
#   C    1  0  2
# A: TP 3, FN 1 (A->B), FP 1 (C->A), TN 10 - 5 = 5: sensitivity 3/4 = 0.75, specificity 5/6 = 0.8333
# B: TP 2, FN 1 (B->C), FP 1 (A->B), TN 6:           sensitivity 2/3,         specificity 6/7 = 0.8571
# C: TP 2, FN 1 (C->A), FP 1 (B->C), TN 6:           sensitivity 2/3,         specificity 6/7
# accuracy 7/10; balanced accuracy (3/4 + 2/3 + 2/3) / 3 = 25/36 = 0.694444


def test_confusion_matrix_and_two_by_two_by_hand() -> None:
    assert confusion_matrix(TRUE3, PRED3, CLASSES3).tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert two_by_two(TRUE3, PRED3, "A") == TwoByTwo(tp=3, fp=1, fn=1, tn=5)
    assert two_by_two(TRUE3, PRED3, "B", CLASSES3) == TwoByTwo(tp=2, fp=1, fn=1, tn=6)
    assert two_by_two(TRUE3, PRED3, "C") == TwoByTwo(tp=2, fp=1, fn=1, tn=6)
    with pytest.raises(ValueError, match="unknown class label"):
        confusion_matrix(["A", "D"], ["A", "A"], CLASSES3)
    with pytest.raises(ValueError, match="not one of the classes"):
        two_by_two(TRUE3, PRED3, "D", CLASSES3)


def test_sensitivity_specificity_accuracy_by_hand() -> None:
    report = evaluate_classification(TRUE3, _onehot_proba(PRED3, CLASSES3), CLASSES3, n_boot=0)
    a, b, c = (report.metrics(name) for name in CLASSES3)
    assert (a.sensitivity.estimate, a.specificity.estimate) == (0.75, pytest.approx(5 / 6))
    assert (b.sensitivity.estimate, b.specificity.estimate) == (pytest.approx(2 / 3), pytest.approx(6 / 7))
    assert (c.sensitivity.successes, c.sensitivity.n, c.specificity.successes, c.specificity.n) == (2, 3, 6, 7)
    assert a.sensitivity.ci == wilson_interval(3, 4) and b.specificity.ci == wilson_interval(6, 7)
    assert (report.accuracy.successes, report.accuracy.n) == (7, 10)
    assert report.accuracy.ci == (pytest.approx(0.3967781, abs=1e-7), pytest.approx(0.8922087, abs=1e-7))
    assert report.balanced_accuracy == pytest.approx(25 / 36)
    assert report.two_by_two_rows() == [("A", 3, 1, 1, 5), ("B", 2, 1, 1, 6), ("C", 2, 1, 1, 6)]
    # an explicit decision overrides the most probable class for the counts
    flipped = evaluate_classification(TRUE3, _onehot_proba(PRED3, CLASSES3), CLASSES3, n_boot=0, pred=TRUE3)
    assert flipped.accuracy.estimate == 1.0 and flipped.ece == report.ece


# ---------------------------------------------------------------------------- ROC / AUC

# 3 positives scored 0.9, 0.7, 0.5 and 4 negatives 0.7, 0.3, 0.2, 0.1: of the 3 x 4 = 12 pairs,
# 0.9 beats all 4 (4); 0.7 ties 0.7 (1/2) and beats 3 (3.5); 0.5 loses to 0.7 and beats 3 (3): 10.5 / 12 = 0.875.
Y_BIN = [1, 1, 1, 0, 0, 0, 0]
S_BIN = [0.9, 0.7, 0.5, 0.7, 0.3, 0.2, 0.1]


def test_auc_by_hand_counting_pairs_with_ties() -> None:
    assert roc_auc_binary(Y_BIN, S_BIN) == 0.875
    curve = roc_curve_binary(Y_BIN, S_BIN)
    # distinct thresholds 0.9, 0.7, 0.5, 0.3, 0.2, 0.1: (FP, TP) = (0,1), (1,2), (1,3), (2,3), (3,3), (4,3)
    assert curve.fpr.tolist() == [0.0, 0.0, 0.25, 0.25, 0.5, 0.75, 1.0]
    assert curve.tpr.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0, 1.0])
    assert curve.thresholds.tolist() == [math.inf, 0.9, 0.7, 0.5, 0.3, 0.2, 0.1]
    # trapezoids: 0.25 x (1/3 + 2/3) / 2 = 0.125, plus 0.75 x 1 = 0.75 -> 0.875 (the tie is a diagonal step)
    assert curve.auc == pytest.approx(0.875)
    # the same scores as a 2-class problem: the second class's score 1 - s reverses the ranks -> also 0.875
    proba = np.column_stack([S_BIN, 1 - np.array(S_BIN)])
    truth = ["POS" if y else "NEG" for y in Y_BIN]
    result = roc_auc_ovr(truth, proba, ["POS", "NEG"], n_boot=0)
    assert result.per_class["POS"].value == 0.875 and result.per_class["NEG"].value == pytest.approx(0.875)
    assert (result.per_class["POS"].n_positive, result.per_class["POS"].n_negative) == (3, 4)
    assert all(math.isnan(v) for v in result.per_class["POS"].ci)
    assert roc_curve_ovr(truth, proba, ["POS", "NEG"])["POS"].auc == pytest.approx(0.875)


def test_auc_is_the_mann_whitney_u_statistic() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = np.round(rng.random(40), 1)  # coarse scores: many ties
    u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic  # scipy as the reference, U of the positives
    assert roc_auc_binary(y, s) == pytest.approx(u / (np.sum(y == 1) * np.sum(y == 0)), rel=1e-12)
    assert roc_curve_binary(y, s).auc == pytest.approx(roc_auc_binary(y, s), rel=1e-12)


def test_perfect_classifier() -> None:
    true = ["A", "A", "B", "B", "C", "C"]
    report = evaluate_classification(true, _onehot_proba(true, CLASSES3, 1.0), CLASSES3, n_boot=50)
    assert report.accuracy.estimate == 1.0 and report.accuracy.ci[1] == 1.0
    for m in report.per_class:
        assert m.auc.value == 1.0 and m.auc.ci == (1.0, 1.0) and m.auc.n_boot == 50
        assert m.sensitivity.estimate == m.specificity.estimate == 1.0
    assert report.auc_macro.value == 1.0 and report.brier == 0.0 and report.ece == 0.0


def test_uninformative_classifier() -> None:
    # Every case gets 1/5 for every class: every score ties, so every AUC is exactly 1/2 (all pairs count 1/2),
    # in every resample too. Brier: (1 - 1/5)^2 + 4 (1/5)^2 = 0.64 + 0.16 = 0.8 = (K - 1) / K.
    # The most probable class is the first (NOR): accuracy = 2 NOR / 10; ECE = |0.2 - 0.2| = 0.
    true = [g for g in ACDC_GROUPS for _ in range(2)]
    report = evaluate_classification(true, np.full((10, 5), 0.2), n_boot=40)
    assert [m.auc.value for m in report.per_class] == [0.5] * 5
    assert report.auc_macro.value == 0.5 and report.auc_macro.ci == (0.5, 0.5)
    assert report.brier == pytest.approx(0.8) and report.accuracy.estimate == 0.2
    assert report.ece == pytest.approx(0.0, abs=1e-12) and report.balanced_accuracy == 0.2


def test_random_scores_bootstrap_is_seeded_and_stratified() -> None:
    rng = np.random.default_rng(7)
    n = 120
    true = [ACDC_GROUPS[i % 5] for i in range(n)]
    proba = rng.dirichlet(np.ones(5), size=n)
    first = roc_auc_ovr(true, proba, ACDC_GROUPS, n_boot=100, seed=3)
    again = roc_auc_ovr(true, proba, ACDC_GROUPS, n_boot=100, seed=3)
    other = roc_auc_ovr(true, proba, ACDC_GROUPS, n_boot=100, seed=4)
    assert first == again and first.macro.ci != other.macro.ci
    for auc in first.per_class.values():
        assert abs(auc.value - 0.5) < 0.2 and auc.ci[0] <= auc.value <= auc.ci[1] and auc.n_boot == 100
    assert first.macro.ci[0] < 0.5 < first.macro.ci[1]
    # every resample keeps the number of cases of each class
    y = np.array([0, 0, 0, 1, 1, 2])
    idx = _stratified_resamples(y, 25, np.random.default_rng(0))
    assert idx.shape == (25, 6)
    assert all(np.bincount(y[row], minlength=3).tolist() == [3, 2, 1] for row in idx)


def test_class_without_cases_has_an_undefined_auc_not_an_error(tmp_path: Path) -> None:
    true = ["A", "A", "B", "B"]  # no C
    proba = [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]
    report = evaluate_classification(true, proba, CLASSES3, n_boot=20)
    c = report.metrics("C")
    assert math.isnan(c.auc.value) and "no positive case" in c.auc.undefined and c.auc.n_boot == 0
    assert math.isnan(c.sensitivity.estimate) and c.table == TwoByTwo(0, 1, 0, 3)  # case 4 predicted C
    # A: positives 0.8, 0.6 above negatives 0.2, 0.3 -> 1; B: positives 0.7, 0.3 and negatives 0.1, 0.3:
    # 0.7 beats both (2), 0.3 beats 0.1 and ties 0.3 (1.5) -> 3.5 / 4 = 0.875; macro (1 + 0.875) / 2, C left out
    assert report.metrics("B").auc.value == 0.875 and report.auc_macro.value == 0.9375
    assert any("C: no positive case" in note for note in report.notes)
    assert report.balanced_accuracy == pytest.approx((1.0 + 0.5) / 2)  # A 2/2, B 1/2; C left out
    assert report.roc["C"].undefined and report.roc["C"].fpr.size == 0
    # every case of one class: no negatives for it
    only = roc_auc_ovr(["A", "A"], [[0.9, 0.1, 0.0], [0.5, 0.5, 0.0]], CLASSES3, n_boot=5)
    assert "no negative case" in only.per_class["A"].undefined and math.isnan(only.macro.value)
    assert json.dumps(report.to_dict(), allow_nan=False)  # NaN written as null
    assert _is_png(plot_roc(report, tmp_path / "roc.png"))  # an undefined curve is named in the legend


# ---------------------------------------------------------------------------- calibration

# Four cases, 3 classes (A, B, C):
#   1: true A, p (0.65, 0.25, 0.10): top A, confidence 0.65, correct
#   2: true B, p (0.50, 0.40, 0.10): top A, confidence 0.50, wrong
#   3: true A, p (0.20, 0.10, 0.70): top C, confidence 0.70, wrong
#   4: true B, p (0.05, 0.90, 0.05): top B, confidence 0.90, correct
CAL_TRUE = ["A", "B", "A", "B"]
CAL_P = [[0.65, 0.25, 0.10], [0.50, 0.40, 0.10], [0.20, 0.10, 0.70], [0.05, 0.90, 0.05]]


def test_brier_by_hand() -> None:
    # sum over classes of (p - y)^2 per case:
    #   1: 0.35^2 + 0.25^2 + 0.10^2 = 0.1225 + 0.0625 + 0.01 = 0.195
    #   2: 0.50^2 + 0.60^2 + 0.10^2 = 0.25 + 0.36 + 0.01     = 0.62
    #   3: 0.80^2 + 0.10^2 + 0.70^2 = 0.64 + 0.01 + 0.49     = 1.14
    #   4: 0.05^2 + 0.10^2 + 0.05^2 = 0.0025 + 0.01 + 0.0025 = 0.015
    # mean (0.195 + 0.62 + 1.14 + 0.015) / 4 = 1.97 / 4 = 0.4925
    assert brier_score(CAL_TRUE, CAL_P, CLASSES3) == pytest.approx(0.4925)
    # per class, mean over cases of (p_k - y_k)^2:
    #   A: (0.1225 + 0.25 + 0.64 + 0.0025) / 4 = 1.015 / 4 = 0.25375
    #   B: (0.0625 + 0.36 + 0.01 + 0.01) / 4   = 0.4425 / 4 = 0.110625
    #   C: (0.01 + 0.01 + 0.49 + 0.0025) / 4   = 0.5125 / 4 = 0.128125   (sum 0.4925)
    per_class = brier_score_ovr(CAL_TRUE, CAL_P, CLASSES3)
    assert per_class == {"A": pytest.approx(0.25375), "B": pytest.approx(0.110625), "C": pytest.approx(0.128125)}
    report = evaluate_classification(CAL_TRUE, CAL_P, CLASSES3, n_boot=0)
    assert report.brier == pytest.approx(0.4925) and report.metrics("C").brier == pytest.approx(0.128125)


def test_ece_and_reliability_bins_by_hand() -> None:
    # 10 bins (m-1)/10 < c <= m/10: 0.50 -> (0.4, 0.5]; 0.65 and 0.70 -> (0.6, 0.7]; 0.90 -> (0.8, 0.9]
    #   (0.4, 0.5]: 1 case, accuracy 0,   confidence 0.5   -> |0 - 0.5|     x 1/4 = 0.125
    #   (0.6, 0.7]: 2 cases, accuracy 1/2, confidence 0.675 -> |0.5 - 0.675| x 2/4 = 0.0875
    #   (0.8, 0.9]: 1 case, accuracy 1,   confidence 0.9   -> |1 - 0.9|     x 1/4 = 0.025
    # ECE = 0.2375
    assert expected_calibration_error(CAL_TRUE, CAL_P, CLASSES3) == pytest.approx(0.2375)
    bins = reliability_diagram(CAL_TRUE, CAL_P, CLASSES3)
    assert [b.count for b in bins] == [0, 0, 0, 0, 1, 0, 2, 0, 1, 0]
    assert (bins[6].lower, bins[6].upper) == (0.6, 0.7)
    assert (bins[6].confidence, bins[6].accuracy) == (pytest.approx(0.675), 0.5)
    assert (bins[4].confidence, bins[4].accuracy, bins[8].accuracy) == (0.5, 0.0, 1.0)
    assert math.isnan(bins[0].confidence) and math.isnan(bins[0].accuracy)
    # one bin holds everything: ECE = |accuracy - mean confidence| = |0.5 - 0.6875|
    assert expected_calibration_error(CAL_TRUE, CAL_P, CLASSES3, n_bins=1) == pytest.approx(0.1875)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(CAL_TRUE, CAL_P, CLASSES3, n_bins=0)


# ---------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("true", "proba", "message"),
    [
        (["A", "B"], [[0.5, 0.6, 0.0], [0.2, 0.3, 0.5]], r"case 0 .*sum to 1\.1, not 1"),
        (["A", "B"], [[1.2, -0.2, 0.0], [0.2, 0.3, 0.5]], "negative"),
        (["A", "B"], [[0.5, 0.5, 0.0], [np.nan, 0.5, 0.5]], r"case 1 .*missing \(NaN\)"),
        (["A", "X"], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], "unknown class label.*'X'"),
        (["A"], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], "1 true label.* 2 row"),
        (["A", "B"], [[0.5, 0.5], [0.2, 0.8]], r"\(n cases, 3 classes\)"),
        ([], np.empty((0, 3)), "no cases"),
    ],
)
def test_input_errors(true: list[str], proba: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_classification(true, proba, CLASSES3, n_boot=0)


def test_input_errors_of_classes_and_options() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        brier_score(["A"], [[1.0]], ["A"])
    with pytest.raises(ValueError, match="repeat"):
        brier_score(["A"], [[1.0, 0.0]], ["A", "A"])
    with pytest.raises(ValueError, match="n_boot"):
        roc_auc_ovr(CAL_TRUE, CAL_P, CLASSES3, n_boot=-1)
    with pytest.raises(ValueError, match="unknown class label.*in pred"):
        evaluate_classification(CAL_TRUE, CAL_P, CLASSES3, n_boot=0, pred=["A", "A", "A", "Z"])
    # probabilities rounded to 3 decimals are accepted (tolerance 0.01)
    assert brier_score(["A"], [[0.333, 0.333, 0.333]], CLASSES3) == pytest.approx(0.667**2 + 2 * 0.333**2)


# ---------------------------------------------------------------------------- report, plots


def test_report_dict_is_json_and_plots_are_pngs(tmp_path: Path) -> None:
    report = evaluate_classification(TRUE3, _onehot_proba(PRED3, CLASSES3), CLASSES3, n_boot=30, seed=1)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["confusion_matrix"]["matrix"] == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert data["per_class"]["A"]["tp"] == 3 and data["per_class"]["A"]["sensitivity"]["estimate"] == 0.75
    assert data["bootstrap"] == {
        "n_boot": 30,
        "seed": 1,
        "method": "percentile, resampling cases within each true class",
    }
    assert len(data["reliability"]) == 10 and data["accuracy"]["successes"] == 7
    for plot, name in ((plot_roc, "roc.png"), (plot_reliability, "reliability.png"), (plot_confusion, "confusion.png")):
        written = plot(report, tmp_path / name)
        assert _is_png(written)
        with pytest.raises(OutputError, match="already exists"):
            plot(report, tmp_path / name)
        assert _is_png(plot(report, tmp_path / name, overwrite=True))


# ---------------------------------------------------------------------------- CSV and CLI

HEADER = "case,group,p_NOR,p_DCM,p_HCM,p_MINF,p_RV"
# Ten cases, two per group; the classifier puts 0.6 on its group and 0.1 on the others.
# Three errors: c04 DCM -> MINF, c08 MINF -> DCM, c10 RV -> NOR.
CASES = [
    ("c01", "NOR", "NOR"), ("c02", "NOR", "NOR"), ("c03", "DCM", "DCM"), ("c04", "MINF", "DCM"),
    ("c05", "HCM", "HCM"), ("c06", "HCM", "HCM"), ("c07", "MINF", "MINF"), ("c08", "DCM", "MINF"),
    ("c09", "RV", "RV"), ("c10", "NOR", "RV"),
]  # fmt: skip
# By hand:
#   accuracy 7/10 = 0.700, Wilson 0.397 to 0.892 (worked out in test_wilson_closed_forms_and_edges)
#   NOR: TP 2 (c01, c02), FP 1 (c10), FN 0, TN 7; sensitivity 2/2 = 1.000 with Wilson lower 2 / (2 + z^2) = 0.342
#   NOR AUC: positives 0.6, 0.6; negatives 0.6 (c10) and seven 0.1: each positive ties 1 and beats 7 -> 7.5 / 8;
#     15 / 16 = 0.9375
#   DCM AUC: positives 0.6 (c03), 0.1 (c04); negatives 0.6 (c08) and seven 0.1: 0.6 ties 1, beats 7 -> 7.5;
#     0.1 loses to c08, ties 7 -> 3.5; 11 / 16 = 0.6875
#   Brier: a correct case 0.4^2 + 4 x 0.1^2 = 0.20, a wrong one 0.6^2 + 0.9^2 + 3 x 0.1^2 = 1.20;
#     (7 x 0.20 + 3 x 1.20) / 10 = 0.500
#   ECE: every confidence is 0.6, in (0.5, 0.6], accuracy 0.7: |0.7 - 0.6| = 0.100


def _prob_cells(group: str) -> str:
    return ",".join("0.6" if g == group else "0.1" for g in ACDC_GROUPS)


def _write_predictions(path: Path, with_truth: bool = True, rows: list[tuple[str, str, str]] = CASES) -> Path:
    lines = [HEADER + (",truth" if with_truth else "")]
    lines += [f"{c},{g},{_prob_cells(g)}" + (f",{t}" if with_truth else "") for c, g, t in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_end_to_end_with_a_truth_column(tmp_path: Path) -> None:
    predictions = _write_predictions(tmp_path / "site_a.csv")
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate-diagnosis", str(predictions), "-o", str(out), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "0.700 (0.397 to 0.892) 7/10" in text
    assert "0.938" in text and "0.688" in text and "(0.342–1.000)" in text  # NOR AUC, DCM AUC, NOR sensitivity CI
    assert "0.500" in text and "0.100" in text  # Brier, ECE
    names = ["classification_report.json", "two_by_two.csv", "roc.png", "reliability.png", "confusion.png"]
    assert all((out / name).is_file() for name in names)
    assert all(_is_png(out / name) for name in names[2:])
    report = json.loads((out / "classification_report.json").read_text())
    assert report["brier"] == pytest.approx(0.5) and report["per_class"]["NOR"]["auc"] == pytest.approx(0.9375)
    assert report["per_class"]["DCM"]["auc"] == pytest.approx(0.6875) and report["bootstrap"]["n_boot"] == 50
    rows = list(csv.DictReader((out / "two_by_two.csv").open(encoding="utf-8")))
    assert tuple(rows[0]) == TWO_BY_TWO_COLUMNS
    assert rows[0] == {"study": "site_a", "class": "NOR", "tp": "2", "fp": "1", "fn": "0", "tn": "7"}
    assert [r["class"] for r in rows] == list(ACDC_GROUPS)
    again = runner.invoke(app, ["evaluate-diagnosis", str(predictions), "-o", str(out), "--n-boot", "50"])
    assert again.exit_code == 1 and "already exists" in again.output
    replaced = runner.invoke(
        app, ["evaluate-diagnosis", str(predictions), "-o", str(out), "--n-boot", "0", "--overwrite"]
    )
    assert replaced.exit_code == 0, replaced.output


def test_cli_with_a_truth_file(tmp_path: Path) -> None:
    predictions = _write_predictions(tmp_path / "pred.csv", with_truth=False)
    truth = tmp_path / "truth.csv"
    truth.write_text("case,group\n" + "".join(f"{c},{t.lower()}\n" for c, _, t in CASES) + "c99,NOR\n")
    result = runner.invoke(app, ["evaluate-diagnosis", str(predictions), "--truth", str(truth), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    assert "7/10" in result.output and "1 case(s) of truth.csv (truth) have no prediction" in result.output
    table = read_diagnosis_table(predictions, truth)
    assert table.case_ids[0] == "c01" and table.true[3] == "DCM" and table.pred[3] == "MINF"
    assert table.proba.shape == (10, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case,group,p_NOR,p_DCM,p_MINF,p_RV,truth\nc1,NOR,0.6,0.2,0.1,0.1,NOR\n", r"missing column\(s\) p_HCM"),
        (f"{HEADER}\nc1,NOR,{_prob_cells('NOR')}\n", r"missing column\(s\) truth"),
        (f"{HEADER},truth\nc1,XYZ,{_prob_cells('NOR')},NOR\n", r"line 2, column group: unknown group 'XYZ'"),
        (f"{HEADER},truth\nc1,NOR,{_prob_cells('NOR')},ABC\n", r"line 2, column truth: unknown group 'ABC'"),
        (f"{HEADER},truth\nc1,NOR,{_prob_cells('NOR')},NOR\nc1,DCM,{_prob_cells('DCM')},DCM\n",
         r"duplicate case id 'c1' \(lines 2 and 3\)"),
        (f"{HEADER},truth\nc1,NOR,0.6,0.6,0.1,0.1,0.1,NOR\n", r"line 2 \(case c1\): the probabilities sum to 1\.5"),
        (f"{HEADER},truth\nc1,NOR,0.6,x,0.1,0.1,0.1,NOR\n", r"column p_DCM: 'x' is not a number"),
        (f"{HEADER},truth\nc1,NOR,1.1,-0.1,0,0,0,NOR\n", "a probability is negative"),
    ],
)  # fmt: skip
def test_csv_errors_name_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pred.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        read_diagnosis_table(path)
    assert str(caught.value).startswith(str(path))
    result = runner.invoke(app, ["evaluate-diagnosis", str(path), "--n-boot", "0"])
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    assert "pred.csv" in result.output


def test_cli_cases_missing_from_the_truth_file(tmp_path: Path) -> None:
    predictions = _write_predictions(tmp_path / "pred.csv", with_truth=False)
    truth = tmp_path / "truth.csv"
    truth.write_text("case,group\nc01,NOR\nc02,NOR\n", encoding="utf-8")
    result = runner.invoke(app, ["evaluate-diagnosis", str(predictions), "--truth", str(truth)])
    assert result.exit_code == 1
    assert "truth.csv: 8 case(s) of pred.csv missing from the truth: c03, c04, c05, c06, c07, ..." in result.output
    no_group = tmp_path / "bad_truth.csv"
    no_group.write_text("case,label\nc01,NOR\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing the column 'group'"):
        read_diagnosis_table(predictions, no_group)


def test_a_group_that_is_not_the_most_probable_class_is_noted(tmp_path: Path) -> None:
    # c01 is labelled DCM although NOR has the largest probability: the counts use the label
    rows = [("c01", "DCM", "NOR"), *CASES[1:]]
    lines = [HEADER + ",truth"] + [f"{c},{g},{_prob_cells(t if c == 'c01' else g)},{t}" for c, g, t in rows]
    path = tmp_path / "pred.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_diagnosis_table(path)
    assert table.pred[0] == "DCM" and any("1 case(s) whose group is not the most probable" in n for n in table.notes)
    result = runner.invoke(app, ["evaluate-diagnosis", str(path), "--n-boot", "0"])
    assert result.exit_code == 0 and "6/10" in result.output and "not the most probable" in result.output
