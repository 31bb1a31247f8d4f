"""Evaluation of a multi-class diagnostic classifier the way the literature reports it.

The classes are the ACDC diagnostic groups (:data:`ACDC_GROUPS`: NOR, DCM,
HCM, MINF, RV) or any other labels; every case has one true label and one
probability per class.

* Counts: :func:`confusion_matrix` (rows: true class, columns: predicted
  class) and, per class against the rest, :func:`two_by_two` (TP, FP, FN,
  TN): the 2 x 2 table a diagnostic-test-accuracy meta-analysis takes from a
  study.
* Proportions with Wilson score intervals [1]_ [2]_ (:func:`wilson_interval`,
  :func:`proportion`): sensitivity, specificity and accuracy; balanced
  accuracy, the mean sensitivity over the classes [3]_.
* Discrimination: one-vs-rest ROC curves (:func:`roc_curve_ovr`) and their
  areas (:func:`roc_auc_ovr`), with ties counted 1/2 so that the area is the
  Mann-Whitney U statistic over ``n1 * n0`` [4]_; percentile bootstrap
  confidence intervals from resamples stratified by true class [5]_ [6]_, and
  the macro average over classes.
* Calibration: the multi-class Brier score [7]_ (and each class's
  one-vs-rest Brier score), the top-label expected calibration error (ECE)
  and the reliability diagram's bins [8]_ (:func:`brier_score`,
  :func:`expected_calibration_error`, :func:`reliability_diagram`).
* :func:`evaluate_classification` gathers them in a
  :class:`ClassificationReport`; :func:`plot_roc`, :func:`plot_reliability`
  and :func:`plot_confusion` draw it; :func:`read_diagnosis_table` reads
  predictions (and the truth) from CSV files.

Conventions
-----------
* Probabilities are checked, not repaired: each row must be finite, non-
  negative and sum to 1 within :data:`PROBABILITY_TOLERANCE`.
* The predicted class is the most probable one unless given (the first of
  equally probable classes, in the order of ``classes``); the top-label ECE
  always uses the most probable class, as Guo et al. define it.
* Where a class has no positive or no negative case its AUC is undefined: it
  is NaN with the reason in ``Auc.undefined`` (no error is raised), and the
  macro average is over the classes whose AUC is defined. A sensitivity or
  specificity of no cases is likewise NaN with interval (NaN, NaN).
* Bootstrap resamples keep the number of cases of every true class (a
  stratified bootstrap, as pROC does by default), so that every resample has
  positive and negative cases for every class with an AUC: none is skipped.

References
----------
.. [1] E. B. Wilson, "Probable inference, the law of succession, and
   statistical inference", J Am Stat Assoc 22(158), 1927, 209-212,
   doi:10.1080/01621459.1927.10502953.
.. [2] R. G. Newcombe, "Two-sided confidence intervals for the single
   proportion: comparison of seven methods", Stat Med 17(8), 1998, 857-872,
   doi:10.1002/(SICI)1097-0258(19980430)17:8<857::AID-SIM777>3.0.CO;2-E
   (method 3, the score interval without continuity correction).
.. [3] K. H. Brodersen, C. S. Ong, K. E. Stephan and J. M. Buhmann, "The
   balanced accuracy and its posterior distribution", ICPR 2010, 3121-3124,
   doi:10.1109/ICPR.2010.764.
.. [4] J. A. Hanley and B. J. McNeil, "The meaning and use of the area under
   a receiver operating characteristic (ROC) curve", Radiology 143(1), 1982,
   29-36, doi:10.1148/radiology.143.1.7063747.
.. [5] B. Efron and R. J. Tibshirani, An Introduction to the Bootstrap,
   Chapman & Hall, 1993, chapter 13 (percentile intervals).
.. [6] X. Robin et al., "pROC: an open-source package for R and S+ to
   analyze and compare ROC curves", BMC Bioinformatics 12, 2011, 77,
   doi:10.1186/1471-2105-12-77 (stratified bootstrap of the AUC).
.. [7] G. W. Brier, "Verification of forecasts expressed in terms of
   probability", Mon Weather Rev 78(1), 1950, 1-3,
   doi:10.1175/1520-0493(1950)078<0001:VOFEIT>2.0.CO;2.
.. [8] C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On calibration of
   modern neural networks", ICML 2017, PMLR 70, 1321-1330, arXiv:1706.04599.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from opencmr.errors import InputError
from opencmr.evaluate.agreement import ID_COLUMNS, _csv_rows, _figure, _save_png
from opencmr.io._atomic import atomic_output
from opencmr.labels import DiagnosticGroup

__all__ = [
    "ACDC_GROUPS",
    "PROBABILITY_TOLERANCE",
    "TWO_BY_TWO_COLUMNS",
    "Auc",
    "ClassMetrics",
    "ClassificationReport",
    "DiagnosisTable",
    "OvrAuc",
    "Proportion",
    "ReliabilityBin",
    "RocCurve",
    "TwoByTwo",
    "brier_score",
    "brier_score_ovr",
    "confusion_matrix",
    "evaluate_classification",
    "expected_calibration_error",
    "plot_confusion",
    "plot_reliability",
    "plot_roc",
    "probability_problem",
    "proportion",
    "read_diagnosis_table",
    "reliability_diagram",
    "roc_auc_binary",
    "roc_auc_ovr",
    "roc_curve_binary",
    "roc_curve_ovr",
    "two_by_two",
    "wilson_interval",
    "write_report_json",
    "write_two_by_two_csv",
]

PathLike = str | os.PathLike[str]

#: The ACDC diagnostic groups, in the order of :class:`~opencmr.labels.DiagnosticGroup`.
ACDC_GROUPS: tuple[str, ...] = tuple(group.value for group in DiagnosticGroup)

PROBABILITY_TOLERANCE = 0.01
"""Largest accepted ``|sum of a case's probabilities - 1|`` (room for probabilities written with few decimals)."""

#: Columns of :func:`write_two_by_two_csv`, the input of a diagnostic-test-accuracy meta-analysis.
TWO_BY_TWO_COLUMNS: tuple[str, ...] = ("study", "class", "tp", "fp", "fn", "tn")

_BOOTSTRAP_BLOCK = 256  # resamples drawn at once (bounds the memory of the rank computation)


# ---------------------------------------------------------------------------- proportions


def _two_sided(level: float) -> float:
    """The upper quantile probability of a two-sided interval, ``1 - (1 - level) / 2``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")
    return 1.0 - (1.0 - level) / 2.0


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score confidence interval of a binomial proportion (no continuity correction).

    Parameters
    ----------
    successes : int
        Successes, ``0 <= successes <= n``.
    n : int
        Trials; 0 gives ``(nan, nan)``.
    level : float
        Confidence level.

    Returns
    -------
    tuple of float
        ``(lower, upper)``: ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``
        with ``p = successes / n`` and ``z`` the normal quantile; exactly 0
        (1) when there are no successes (failures).

    Raises
    ------
    ValueError
        Counts that are not whole numbers with ``0 <= successes <= n``, or a level outside (0, 1).

    References
    ----------
    E. B. Wilson, J Am Stat Assoc 22(158), 1927, 209-212, doi:10.1080/01621459.1927.10502953.
    R. G. Newcombe, Stat Med 17(8), 1998, 857-872, method 3,
    doi:10.1002/(SICI)1097-0258(19980430)17:8<857::AID-SIM777>3.0.CO;2-E.

    Examples
    --------
    Newcombe (1998), Table I: 81/263 gives 0.2553 to 0.3662.

    >>> lower, upper = wilson_interval(81, 263)
    >>> round(lower, 4), round(upper, 4)
    (0.2553, 0.3662)
    >>> wilson_interval(0, 0)
    (nan, nan)
    """
    if int(successes) != successes or int(n) != n or not 0 <= successes <= n:
        raise ValueError(f"expected whole numbers 0 <= successes <= n, got {successes} of {n}")
    z = NormalDist().inv_cdf(_two_sided(level))
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


@dataclass(frozen=True)
class Proportion:
    """A proportion with its Wilson score interval.

    Attributes
    ----------
    successes, n : int
        Numerator and denominator.
    ci : tuple of float
        Wilson interval (:func:`wilson_interval`); (NaN, NaN) when ``n`` is 0.
    level : float
        Confidence level of ``ci``.
    """

    successes: int
    n: int
    ci: tuple[float, float]
    level: float = 0.95

    @property
    def estimate(self) -> float:
        """``successes / n`` (NaN when ``n`` is 0)."""
        return self.successes / self.n if self.n else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN as None)."""
        return {
            "estimate": _json_float(self.estimate),
            "successes": self.successes,
            "n": self.n,
            "ci": [_json_float(v) for v in self.ci],
        }


def proportion(successes: int, n: int, level: float = 0.95) -> Proportion:
    """A :class:`Proportion` with its Wilson interval.

    >>> p = proportion(3, 4)
    >>> p.estimate, [round(v, 4) for v in p.ci]
    (0.75, [0.3006, 0.9544])
    """
    return Proportion(int(successes), int(n), wilson_interval(successes, n, level), float(level))


# ---------------------------------------------------------------------------- input checks


def _class_tuple(classes: Sequence[str]) -> tuple[str, ...]:
    names = tuple(classes)
    if len(names) < 2:
        raise ValueError(f"expected at least 2 classes, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"class names repeat: {', '.join(map(str, names))}")
    return names


def _label_indices(labels: ArrayLike | Sequence[str], names: tuple[str, ...], what: str) -> np.ndarray:
    """Integer class indices of ``labels`` (1-D), or a ValueError naming the unknown labels."""
    values = np.asarray(labels, dtype=object)
    if values.ndim != 1:
        raise ValueError(f"{what} must be a 1-D sequence of class labels, got shape {values.shape}")
    lookup = {name: i for i, name in enumerate(names)}
    unknown = list(dict.fromkeys(label for label in values.tolist() if label not in lookup))
    if unknown:
        raise ValueError(
            f"unknown class label(s) in {what}: {', '.join(map(repr, unknown[:5]))}"
            f"{', ...' if len(unknown) > 5 else ''} (classes: {', '.join(names)})"
        )
    return np.array([lookup[label] for label in values.tolist()], dtype=np.intp)


def probability_problem(row: np.ndarray, tolerance: float = PROBABILITY_TOLERANCE) -> str | None:
    """What is wrong with one case's class probabilities, or None.

    >>> probability_problem(np.array([0.5, 0.5])) is None
    True
    >>> probability_problem(np.array([0.5, 0.6]))
    'the probabilities sum to 1.1, not 1'
    """
    if np.isnan(row).any():
        return "a probability is missing (NaN)"
    if not np.isfinite(row).all():
        return "a probability is infinite"
    if (row < 0).any():
        return f"a probability is negative ({float(row.min()):.4g})"
    total = float(row.sum())
    if abs(total - 1.0) > tolerance:
        return f"the probabilities sum to {total:.4g}, not 1"
    return None


def _checked_probabilities(
    true: ArrayLike | Sequence[str], proba: ArrayLike, classes: Sequence[str], tolerance: float
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Class names, true class indices and an (n, K) float array of probabilities, all checked."""
    names = _class_tuple(classes)
    y = _label_indices(true, names, "true")
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise ValueError(f"probabilities must be an (n cases, {len(names)} classes) array, got shape {p.shape}")
    if p.shape[0] != y.size:
        raise ValueError(f"{y.size} true label(s) but {p.shape[0]} row(s) of probabilities")
    if y.size == 0:
        raise ValueError("no cases")
    for i, row in enumerate(p):
        problem = probability_problem(row, tolerance)
        if problem is not None:
            raise ValueError(f"case {i} (row {i} of the probabilities): {problem}")
    return names, y, p


def _predicted(pred: ArrayLike | Sequence[str] | None, p: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    if pred is None:
        return np.argmax(p, axis=1)
    y_pred = _label_indices(pred, names, "pred")
    if y_pred.size != p.shape[0]:
        raise ValueError(f"{y_pred.size} predicted label(s) but {p.shape[0]} case(s)")
    return y_pred


# ---------------------------------------------------------------------------- counts


def confusion_matrix(
    true: ArrayLike | Sequence[str], pred: ArrayLike | Sequence[str], classes: Sequence[str]
) -> np.ndarray:
    """Counts of cases by true class (rows) and predicted class (columns).

    Parameters
    ----------
    true, pred : sequence of str
        True and predicted labels, one per case.
    classes : sequence of str
        The classes, in the order of the rows and columns.

    Returns
    -------
    numpy.ndarray
        ``K x K`` integer matrix; ``m[i, j]`` cases of class ``i`` predicted as ``j``.

    Raises
    ------
    ValueError
        A label not in ``classes``, different lengths, fewer than 2 classes.

    Examples
    --------
    >>> confusion_matrix(["A", "A", "B"], ["A", "B", "B"], ["A", "B"]).tolist()
    [[1, 1], [0, 1]]
    """
    names = _class_tuple(classes)
    y = _label_indices(true, names, "true")
    y_pred = _label_indices(pred, names, "pred")
    if y.size != y_pred.size:
        raise ValueError(f"{y.size} true and {y_pred.size} predicted labels")
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (y, y_pred), 1)
    return matrix


@dataclass(frozen=True)
class TwoByTwo:
    """One class against the rest: the 2 x 2 table of a diagnostic test.

    Attributes
    ----------
    tp, fp, fn, tn : int
        True positives (of the class, predicted as it), false positives (of
        another class, predicted as it), false negatives (of the class,
        predicted as another) and true negatives.
    """

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        """All cases."""
        return self.tp + self.fp + self.fn + self.tn

    def sensitivity(self, level: float = 0.95) -> Proportion:
        """``tp / (tp + fn)`` with its Wilson interval."""
        return proportion(self.tp, self.tp + self.fn, level)

    def specificity(self, level: float = 0.95) -> Proportion:
        """``tn / (tn + fp)`` with its Wilson interval."""
        return proportion(self.tn, self.tn + self.fp, level)


def _two_by_two_of(matrix: np.ndarray, k: int) -> TwoByTwo:
    tp = int(matrix[k, k])
    fn = int(matrix[k, :].sum()) - tp
    fp = int(matrix[:, k].sum()) - tp
    return TwoByTwo(tp, fp, fn, int(matrix.sum()) - tp - fn - fp)


def two_by_two(
    true: ArrayLike | Sequence[str], pred: ArrayLike | Sequence[str], cls: str, classes: Sequence[str] | None = None
) -> TwoByTwo:
    """The one-vs-rest 2 x 2 table of class ``cls``.

    Parameters
    ----------
    true, pred : sequence of str
        True and predicted labels.
    cls : str
        The class taken as "positive".
    classes : sequence of str, optional
        All classes (labels are checked against them); default: the labels seen and ``cls``.

    Examples
    --------
    >>> two_by_two(["A", "A", "B", "C"], ["A", "B", "A", "C"], "A")
    TwoByTwo(tp=1, fp=1, fn=1, tn=1)
    """
    t = np.asarray(true, dtype=object)
    p = np.asarray(pred, dtype=object)
    if t.ndim != 1 or p.ndim != 1 or t.size != p.size:
        raise ValueError(f"expected two 1-D label sequences of equal length, got shapes {t.shape} and {p.shape}")
    if classes is not None:
        names = _class_tuple(classes)
        if cls not in names:
            raise ValueError(f"class {cls!r} is not one of the classes ({', '.join(map(str, names))})")
        _label_indices(t, names, "true")
        _label_indices(p, names, "pred")
    is_true, is_pred = t == cls, p == cls
    tp = int(np.count_nonzero(is_true & is_pred))
    fp = int(np.count_nonzero(~is_true & is_pred))
    fn = int(np.count_nonzero(is_true & ~is_pred))
    return TwoByTwo(tp, fp, fn, int(t.size) - tp - fp - fn)


# ---------------------------------------------------------------------------- ROC


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields, not objects
class RocCurve:
    """A one-vs-rest ROC curve: false- and true-positive rates at every distinct threshold.

    Attributes
    ----------
    fpr, tpr : numpy.ndarray
        Rates, from (0, 0) (threshold +inf) to (1, 1); empty when undefined.
    thresholds : numpy.ndarray
        "positive" when ``score >= threshold``; the first is +inf.
    auc : float
        Trapezoid area under the curve (= :func:`roc_auc_binary`), NaN when undefined.
    undefined : str or None
        Why there is no curve (no positive or no negative case), else None.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float
    undefined: str | None = None


def _binary(y_true: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or y.size != s.size:
        raise ValueError(f"expected two 1-D arrays of equal length, got shapes {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0/1 (or False/True)")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y.astype(bool), s


def _undefined_reason(n_pos: int, n_neg: int) -> str | None:
    if n_pos == 0:
        return "no positive case: the ROC curve and its AUC are undefined"
    if n_neg == 0:
        return "no negative case: the ROC curve and its AUC are undefined"
    return None


def roc_curve_binary(y_true: ArrayLike, score: ArrayLike) -> RocCurve:
    """ROC curve of scores for a binary outcome, one point per distinct score.

    Tied scores give one point (a diagonal step), so the trapezoid area counts
    a tied positive-negative pair as 1/2: it equals :func:`roc_auc_binary`.

    Parameters
    ----------
    y_true : array_like of bool or 0/1
        Outcome per case.
    score : array_like of float
        Higher means more likely positive.

    Returns
    -------
    RocCurve
        Without a positive or a negative case: empty arrays, ``auc`` NaN and a reason.

    Examples
    --------
    >>> curve = roc_curve_binary([1, 0, 1, 0], [0.9, 0.6, 0.6, 0.1])
    >>> curve.fpr.tolist(), curve.tpr.tolist(), curve.auc
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0], 0.875)
    """
    y, s = _binary(y_true, score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    reason = _undefined_reason(n_pos, n_neg)
    if reason is not None:
        empty = np.empty(0)
        return RocCurve(empty, empty, empty, math.nan, reason)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[np.inf, s_sorted[last_of_tie]]
    return RocCurve(fpr, tpr, thresholds, float(np.trapezoid(tpr, fpr)))


def roc_auc_binary(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic ``U / (n1 n0)`` (ties count 1/2).

    The probability that a random positive case scores higher than a random
    negative one, plus half the probability of a tie (Hanley & McNeil 1982);
    computed from mid-ranks. NaN without a positive or a negative case.

    References
    ----------
    J. A. Hanley and B. J. McNeil, Radiology 143(1), 1982, 29-36,
    doi:10.1148/radiology.143.1.7063747.

    Examples
    --------
    Positive 0.9 beats both negatives, positive 0.6 ties one and beats one: (2 + 1.5) / 4.

    >>> roc_auc_binary([1, 0, 1, 0], [0.9, 0.6, 0.6, 0.1])
    0.875
    """
    y, s = _binary(y_true, score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if _undefined_reason(n_pos, n_neg) is not None:
        return math.nan
    ranks = stats.rankdata(s)
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def roc_curve_ovr(
    true: ArrayLike | Sequence[str],
    proba: ArrayLike,
    classes: Sequence[str],
    *,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> dict[str, RocCurve]:
    """One-vs-rest ROC curve of every class (its probability as the score).

    Returns
    -------
    dict of str to RocCurve
        In the order of ``classes``; a class without positive or negative cases
        has an empty curve and a reason in ``undefined``.

    Raises
    ------
    ValueError
        Unknown labels, shapes that do not match, or probabilities that are
        NaN, negative or do not sum to 1 (within ``tolerance``).
    """
    names, y, p = _checked_probabilities(true, proba, classes, tolerance)
    return {name: roc_curve_binary(y == k, p[:, k]) for k, name in enumerate(names)}


@dataclass(frozen=True)
class Auc:
    """An area under the ROC curve with its percentile bootstrap interval.

    Attributes
    ----------
    value : float
        The AUC (NaN when undefined).
    ci : tuple of float
        Percentile bootstrap interval; (NaN, NaN) when undefined or ``n_boot`` is 0.
    n_positive, n_negative : int
        Cases of the class and of the other classes (for the macro average:
        all cases, 0).
    n_boot : int
        Bootstrap resamples behind ``ci``.
    level : float
        Confidence level of ``ci``.
    undefined : str or None
        Why ``value`` is NaN, else None.
    """

    value: float
    ci: tuple[float, float]
    n_positive: int
    n_negative: int
    n_boot: int
    level: float = 0.95
    undefined: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN as None)."""
        return {
            "auc": _json_float(self.value),
            "ci": [_json_float(v) for v in self.ci],
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "n_boot": self.n_boot,
            "undefined": self.undefined,
        }


@dataclass(frozen=True)
class OvrAuc:
    """One-vs-rest AUCs of every class and their macro average.

    Attributes
    ----------
    per_class : mapping of str to Auc
        In the order of the classes.
    macro : Auc
        Unweighted mean over the classes whose AUC is defined, with the
        percentile interval of that mean over the same resamples.
    """

    per_class: Mapping[str, Auc]
    macro: Auc


def _stratified_resamples(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` case indices; each row resamples every true class with replacement, keeping its size."""
    blocks = []
    for k in np.unique(y):
        members = np.flatnonzero(y == k)
        blocks.append(members[rng.integers(0, members.size, size=(n_boot, members.size))])
    return np.concatenate(blocks, axis=1)


def _resampled_aucs(
    y: np.ndarray, p: np.ndarray, defined: list[int], n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n_boot, len(defined))`` AUCs of the classes ``defined`` over stratified resamples."""
    out = np.empty((n_boot, len(defined)))
    for start in range(0, n_boot, _BOOTSTRAP_BLOCK):
        size = min(_BOOTSTRAP_BLOCK, n_boot - start)
        idx = _stratified_resamples(y, size, rng)
        y_boot = y[idx]
        for j, k in enumerate(defined):
            positive = y_boot == k
            n_pos = positive.sum(axis=1)
            n_neg = positive.shape[1] - n_pos
            ranks = stats.rankdata(p[idx, k], axis=1)
            u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
            out[start : start + size, j] = u / (n_pos * n_neg)
    return out


def _percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    if values.size == 0:
        return math.nan, math.nan
    q = _two_sided(level)
    low, high = np.quantile(values, [1.0 - q, q])
    return float(low), float(high)


def roc_auc_ovr(
    true: ArrayLike | Sequence[str],
    proba: ArrayLike,
    classes: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int | np.random.Generator | None = 0,
    level: float = 0.95,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> OvrAuc:
    """One-vs-rest AUC of every class, their macro average, and percentile bootstrap intervals.

    Parameters
    ----------
    true : sequence of str
        True class per case.
    proba : array_like
        ``(n, K)`` class probabilities, columns in the order of ``classes``.
    classes : sequence of str
        The K classes.
    n_boot : int
        Bootstrap resamples (0: no intervals).
    seed : int or numpy.random.Generator or None
        Seed of :func:`numpy.random.default_rng` (or a generator), for reproducible intervals.
    level : float
        Confidence level.
    tolerance : float
        Accepted deviation of a row's probability sum from 1.

    Returns
    -------
    OvrAuc
        A class with no positive or no negative case has ``value`` NaN and a
        reason in ``undefined`` (no error); the macro average leaves it out.

    Notes
    -----
    Each resample draws, with replacement, as many cases of every true class
    as the data hold (a bootstrap stratified by class, the default of pROC),
    so that each class keeps its positive and negative cases; the interval is
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    resampled AUCs (percentile method, Efron & Tibshirani 1993). The macro
    interval uses the mean AUC of each resample.

    Raises
    ------
    ValueError
        Unknown labels, shapes that do not match, probabilities that are NaN,
        negative or do not sum to 1, or a negative ``n_boot``.

    Examples
    --------
    >>> result = roc_auc_ovr(["A", "A", "B", "B"], [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]],
    ...                      ["A", "B"], n_boot=0)
    >>> result.per_class["A"].value, result.macro.value
    (1.0, 1.0)
    """
    names, y, p = _checked_probabilities(true, proba, classes, tolerance)
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a whole number >= 0, got {n_boot}")
    n_boot = int(n_boot)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = y.size
    values, reasons = [], []
    for k in range(len(names)):
        n_pos = int(np.count_nonzero(y == k))
        reasons.append(_undefined_reason(n_pos, n - n_pos))
        values.append(roc_auc_binary(y == k, p[:, k]) if reasons[-1] is None else math.nan)
    defined = [k for k, reason in enumerate(reasons) if reason is None]
    boot = _resampled_aucs(y, p, defined, n_boot, rng) if defined and n_boot else np.empty((0, len(defined)))
    per_class: dict[str, Auc] = {}
    for k, name in enumerate(names):
        n_pos = int(np.count_nonzero(y == k))
        if reasons[k] is None:
            ci = _percentile_ci(boot[:, defined.index(k)], level)
            per_class[name] = Auc(values[k], ci, n_pos, n - n_pos, boot.shape[0], level)
        else:
            per_class[name] = Auc(math.nan, (math.nan, math.nan), n_pos, n - n_pos, 0, level, reasons[k])
    if defined:
        macro_value = float(np.mean([values[k] for k in defined]))
        macro = Auc(macro_value, _percentile_ci(boot.mean(axis=1), level), n, 0, boot.shape[0], level)
    else:
        macro = Auc(math.nan, (math.nan, math.nan), n, 0, 0, level, "no class has both positive and negative cases")
    return OvrAuc(per_class, macro)


# ---------------------------------------------------------------------------- calibration


def brier_score(
    true: ArrayLike | Sequence[str],
    proba: ArrayLike,
    classes: Sequence[str],
    *,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> float:
    """Multi-class Brier score: the mean over cases of ``sum_k (p_k - y_k)²`` (0 best, 2 worst).

    It is the sum of the classes' one-vs-rest scores (:func:`brier_score_ovr`).
    A constant ``1/K`` for every class scores ``(K - 1) / K``.

    References
    ----------
    G. W. Brier, Mon Weather Rev 78(1), 1950, 1-3,
    doi:10.1175/1520-0493(1950)078<0001:VOFEIT>2.0.CO;2 (eq. 1, with the mean over cases).

    Examples
    --------
    (0.3² + 0.2² + 0.1² + 0.5² + 0.6² + 0.1²) / 2 = (0.14 + 0.62) / 2:

    >>> round(brier_score(["A", "B"], [[0.7, 0.2, 0.1], [0.5, 0.4, 0.1]], ["A", "B", "C"]), 12)
    0.38
    """
    names, y, p = _checked_probabilities(true, proba, classes, tolerance)
    onehot = np.eye(len(names))[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def brier_score_ovr(
    true: ArrayLike | Sequence[str],
    proba: ArrayLike,
    classes: Sequence[str],
    *,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> dict[str, float]:
    """Each class's one-vs-rest Brier score, the mean over cases of ``(p_k - y_k)²``.

    >>> scores = brier_score_ovr(["A", "B"], [[0.7, 0.2, 0.1], [0.5, 0.4, 0.1]], ["A", "B", "C"])
    >>> {k: round(v, 12) for k, v in scores.items()}
    {'A': 0.17, 'B': 0.2, 'C': 0.01}
    """
    names, y, p = _checked_probabilities(true, proba, classes, tolerance)
    onehot = np.eye(len(names))[y]
    per_class = np.mean((p - onehot) ** 2, axis=0)
    return {name: float(per_class[k]) for k, name in enumerate(names)}


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin of a (top-label) reliability diagram.

    Attributes
    ----------
    lower, upper : float
        The bin ``(lower, upper]`` (the first bin also holds a confidence of 0).
    count : int
        Cases whose top-label confidence falls in the bin.
    confidence : float
        Their mean confidence (NaN for an empty bin).
    accuracy : float
        Fraction of them whose most probable class is the true class (NaN for an empty bin).
    """

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN as None)."""
        return {
            "lower": self.lower,
            "upper": self.upper,
            "count": self.count,
            "confidence": _json_float(self.confidence),
            "accuracy": _json_float(self.accuracy),
        }


def _bins_of(y: np.ndarray, p: np.ndarray, n_bins: int) -> tuple[ReliabilityBin, ...]:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins}")
    n_bins = int(n_bins)
    confidence = p.max(axis=1)
    correct = np.argmax(p, axis=1) == y
    edges = np.arange(n_bins + 1) / n_bins  # i / M exactly, so that 0.7 falls in (0.6, 0.7]
    which = np.clip(np.digitize(confidence, edges, right=True) - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        members = which == b
        count = int(np.count_nonzero(members))
        conf = float(confidence[members].mean()) if count else math.nan
        acc = float(correct[members].mean()) if count else math.nan
        bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count, conf, acc))
    return tuple(bins)


def _ece_of(bins: Sequence[ReliabilityBin]) -> float:
    n = sum(b.count for b in bins)
    return float(sum(b.count / n * abs(b.accuracy - b.confidence) for b in bins if b.count))


def reliability_diagram(
    true: ArrayLike | Sequence[str],
    proba: ArrayLike,
    classes: Sequence[str],
    *,
    n_bins: int = 10,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> tuple[ReliabilityBin, ...]:
    """Top-label reliability diagram: per equal-width confidence bin, mean confidence, accuracy and count.

    The confidence of a case is its largest class probability and it is
    "correct" when that class is the true one (Guo et al. 2017, section 2).
    Bins are ``(m - 1) / M < confidence <= m / M``.

    Examples
    --------
    >>> bins = reliability_diagram(["A", "B"], [[0.8, 0.2], [0.6, 0.4]], ["A", "B"], n_bins=5)
    >>> [(b.upper, b.count) for b in bins if b.count]
    [(0.6, 1), (0.8, 1)]
    """
    _, y, p = _checked_probabilities(true, proba, classes, tolerance)
    return _bins_of(y, p, n_bins)


def expected_calibration_error(
    true: ArrayLike | Sequence[str],
    proba: ArrayLike,
    classes: Sequence[str],
    *,
    n_bins: int = 10,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> float:
    """Top-label expected calibration error, ``sum_m |B_m| / n * |acc(B_m) - conf(B_m)|``.

    Equal-width bins over (0, 1] as in :func:`reliability_diagram`. Guo et al.
    (2017) use M = 15 bins on test sets of thousands of images; 10 is the
    default here for the tens of cases of a cardiac MRI test set. The ECE
    depends on the number of bins: report it with the value.

    References
    ----------
    C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, ICML 2017, arXiv:1706.04599, eq. 3.

    Examples
    --------
    One case of confidence 0.8, correct, and one of 0.6, wrong: (0.2 + 0.6) / 2.

    >>> round(expected_calibration_error(["A", "B"], [[0.8, 0.2], [0.6, 0.4]], ["A", "B"]), 12)
    0.4
    """
    _, y, p = _checked_probabilities(true, proba, classes, tolerance)
    return _ece_of(_bins_of(y, p, n_bins))


# ---------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ClassMetrics:
    """One class against the rest.

    Attributes
    ----------
    name : str
        The class.
    table : TwoByTwo
        Its 2 x 2 table.
    sensitivity, specificity : Proportion
        With Wilson intervals (NaN without positive / negative cases).
    auc : Auc
        One-vs-rest AUC with its bootstrap interval.
    brier : float
        One-vs-rest Brier score.
    """

    name: str
    table: TwoByTwo
    sensitivity: Proportion
    specificity: Proportion
    auc: Auc
    brier: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN as None)."""
        return {
            "tp": self.table.tp,
            "fp": self.table.fp,
            "fn": self.table.fn,
            "tn": self.table.tn,
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
            **self.auc.to_dict(),
            "brier": _json_float(self.brier),
        }


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields, not objects
class ClassificationReport:
    """Diagnostic accuracy, discrimination and calibration of a multi-class classifier.

    Attributes
    ----------
    classes : tuple of str
        The classes, in the order of every per-class field and of the
        confusion matrix's rows and columns.
    n : int
        Cases.
    confusion : numpy.ndarray
        ``K x K`` counts, rows the true class, columns the predicted class.
    accuracy : Proportion
        Fraction of cases predicted as their true class, with its Wilson interval.
    balanced_accuracy : float
        Mean sensitivity over the classes that have cases.
    per_class : tuple of ClassMetrics
        One per class.
    auc_macro : Auc
        Macro-averaged one-vs-rest AUC.
    roc : mapping of str to RocCurve
        One-vs-rest ROC curve per class.
    brier : float
        Multi-class Brier score.
    ece : float
        Top-label expected calibration error over ``n_bins`` bins.
    reliability : tuple of ReliabilityBin
        The reliability diagram's bins.
    n_bins, n_boot : int
        Calibration bins; bootstrap resamples of the AUC intervals.
    seed : int or None
        Seed of the bootstrap (None when a generator was given).
    level : float
        Confidence level of every interval.
    notes : tuple of str
        Caveats (classes without cases, undefined AUCs).
    """

    classes: tuple[str, ...]
    n: int
    confusion: np.ndarray
    accuracy: Proportion
    balanced_accuracy: float
    per_class: tuple[ClassMetrics, ...]
    auc_macro: Auc
    roc: Mapping[str, RocCurve]
    brier: float
    ece: float
    reliability: tuple[ReliabilityBin, ...]
    n_bins: int
    n_boot: int
    seed: int | None
    level: float = 0.95
    notes: tuple[str, ...] = field(default=())

    def metrics(self, name: str) -> ClassMetrics:
        """The :class:`ClassMetrics` of one class."""
        for item in self.per_class:
            if item.name == name:
                return item
        raise KeyError(f"no class {name!r} (classes: {', '.join(self.classes)})")

    def two_by_two_rows(self) -> list[tuple[str, int, int, int, int]]:
        """Per class ``(class, TP, FP, FN, TN)``: the one-vs-rest 2 x 2 tables, as a meta-analysis takes them."""
        return [(m.name, m.table.tp, m.table.fp, m.table.fn, m.table.tn) for m in self.per_class]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (lists, numbers, strings; NaN as None)."""
        return {
            "classes": list(self.classes),
            "n": self.n,
            "level": self.level,
            "accuracy": self.accuracy.to_dict(),
            "balanced_accuracy": _json_float(self.balanced_accuracy),
            "auc_macro": self.auc_macro.to_dict(),
            "brier": _json_float(self.brier),
            "ece": _json_float(self.ece),
            "n_bins": self.n_bins,
            "confusion_matrix": {
                "rows": "true class",
                "columns": "predicted class",
                "matrix": self.confusion.tolist(),
            },
            "per_class": {m.name: m.to_dict() for m in self.per_class},
            "roc": {
                name: {"fpr": curve.fpr.tolist(), "tpr": curve.tpr.tolist(), "undefined": curve.undefined}
                for name, curve in self.roc.items()
            },
            "reliability": [b.to_dict() for b in self.reliability],
            "bootstrap": {
                "n_boot": self.n_boot,
                "seed": self.seed,
                "method": "percentile, resampling cases within each true class",
            },
            "notes": list(self.notes),
        }


def evaluate_classification(
    true: ArrayLike | Sequence[str],
    proba: ArrayLike,
    classes: Sequence[str] = ACDC_GROUPS,
    n_boot: int = 2000,
    seed: int | np.random.Generator | None = 0,
    *,
    pred: ArrayLike | Sequence[str] | None = None,
    n_bins: int = 10,
    level: float = 0.95,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> ClassificationReport:
    """Evaluate a multi-class classifier: counts, sensitivity/specificity, AUC, Brier, ECE.

    Parameters
    ----------
    true : sequence of str
        True class of every case.
    proba : array_like
        ``(n, K)`` probabilities, columns in the order of ``classes``; every
        row finite, non-negative and summing to 1 within ``tolerance``.
    classes : sequence of str
        The K classes (default: the ACDC groups).
    n_boot : int
        Bootstrap resamples of the AUC intervals (0: none).
    seed : int or numpy.random.Generator or None
        Seed of the bootstrap.
    pred : sequence of str, optional
        Predicted class of every case (the classifier's decision); default:
        the most probable class. Counts, sensitivity, specificity and
        accuracy use it; the ECE always uses the most probable class.
    n_bins : int
        Equal-width confidence bins of the ECE and the reliability diagram.
    level : float
        Confidence level of every interval.
    tolerance : float
        Accepted deviation of a row's probability sum from 1.

    Returns
    -------
    ClassificationReport

    Raises
    ------
    ValueError
        Unknown labels in ``true`` or ``pred``, shapes that do not match,
        probabilities that are NaN, negative or do not sum to 1, fewer than
        2 classes, no cases. (A class without positive or negative cases is
        not an error: its AUC is NaN with a reason, listed in ``notes``.)

    Examples
    --------
    >>> report = evaluate_classification(
    ...     ["A", "A", "B", "B"], [[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]], ["A", "B"], n_boot=0)
    >>> report.accuracy.estimate, report.balanced_accuracy, report.metrics("A").auc.value
    (0.75, 0.75, 1.0)
    >>> report.two_by_two_rows()
    [('A', 1, 0, 1, 2), ('B', 2, 1, 0, 1)]
    """
    names, y, p = _checked_probabilities(true, proba, classes, tolerance)
    y_pred = _predicted(pred, p, names)
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (y, y_pred), 1)
    aucs = roc_auc_ovr([names[k] for k in y], p, names, n_boot=n_boot, seed=seed, level=level, tolerance=tolerance)
    onehot = np.eye(len(names))[y]
    brier_k = np.mean((p - onehot) ** 2, axis=0)
    per_class = []
    for k, name in enumerate(names):
        table = _two_by_two_of(matrix, k)
        per_class.append(
            ClassMetrics(name, table, table.sensitivity(level), table.specificity(level), aucs.per_class[name],
                         float(brier_k[k]))
        )  # fmt: skip
    sensitivities = [m.sensitivity.estimate for m in per_class if m.sensitivity.n]
    notes = [f"{m.name}: {m.auc.undefined}" for m in per_class if m.auc.undefined]
    empty = [m.name for m in per_class if not m.sensitivity.n]
    if empty:
        notes.append(f"no case of {', '.join(empty)}: left out of the balanced accuracy and the macro AUC")
    bins = _bins_of(y, p, n_bins)
    correct = int(np.trace(matrix))
    return ClassificationReport(
        classes=names,
        n=int(y.size),
        confusion=matrix,
        accuracy=proportion(correct, int(y.size), level),
        balanced_accuracy=float(np.mean(sensitivities)),
        per_class=tuple(per_class),
        auc_macro=aucs.macro,
        roc={name: roc_curve_binary(y == k, p[:, k]) for k, name in enumerate(names)},
        brier=float(brier_k.sum()),
        ece=_ece_of(bins),
        reliability=bins,
        n_bins=int(n_bins),
        n_boot=int(n_boot),
        seed=None if isinstance(seed, np.random.Generator) else seed,
        level=float(level),
        notes=tuple(notes),
    )


def _json_float(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


# ---------------------------------------------------------------------------- files


def write_report_json(report: ClassificationReport, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write :meth:`ClassificationReport.to_dict` as JSON (atomically; refuses to overwrite by default)."""
    target = Path(path)
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
    with atomic_output(target, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def write_two_by_two_csv(report: ClassificationReport, path: PathLike, study: str, *, overwrite: bool = False) -> Path:
    """Write the one-vs-rest 2 x 2 tables, columns :data:`TWO_BY_TWO_COLUMNS`, one row per class.

    ``study`` names the study (the same in every row), as a diagnostic-test-accuracy meta-analysis expects.
    """
    target = Path(path)
    with atomic_output(target, overwrite) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TWO_BY_TWO_COLUMNS)
        for row in report.two_by_two_rows():
            writer.writerow((study, *row))
    return target


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields, not objects
class DiagnosisTable:
    """Predictions of a classifier read from CSV, matched with the truth.

    Attributes
    ----------
    case_ids : tuple of str
        Cases, in the order of the predictions file.
    true, pred : tuple of str
        True and predicted class of every case.
    proba : numpy.ndarray
        ``(n, K)`` probabilities, columns in the order of ``classes``.
    classes : tuple of str
        The classes.
    notes : tuple of str
        Things the reader did that a user should know.
    """

    case_ids: tuple[str, ...]
    true: tuple[str, ...]
    pred: tuple[str, ...]
    proba: np.ndarray
    classes: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _header(source: Path, rows: list[tuple[int, list[str]]]) -> dict[str, int]:
    header = [cell.strip() for cell in rows[0][1]]
    lowered = [name.lower() for name in header]
    duplicated = sorted({name for name in lowered if lowered.count(name) > 1})
    if duplicated:
        raise InputError(source, f"column name(s) {', '.join(map(repr, duplicated))} appear more than once")
    return {name: i for i, name in enumerate(lowered)}


def _id_column(source: Path, columns: Mapping[str, int]) -> int:
    found = next((columns[name] for name in ID_COLUMNS if name in columns), None)
    if found is None:
        raise InputError(source, f"missing the case id column 'case' (columns: {', '.join(columns)})")
    return found


def _group(source: Path, text: str, line: int, column: str, classes: Mapping[str, str]) -> str:
    name = classes.get(text.strip().upper())
    if name is None:
        shown = text.strip() or "(empty)"
        raise InputError(
            source,
            f"line {line}, column {column}: unknown group {shown!r} (expected one of {', '.join(classes.values())})",
        )
    return name


def _cells(
    source: Path, rows: list[tuple[int, list[str]]], width: int, id_col: int
) -> list[tuple[int, str, list[str]]]:
    """(line, case id, cells) per data row; a row of the wrong width, an empty or repeated id is an error."""
    out: list[tuple[int, str, list[str]]] = []
    first_line: dict[str, int] = {}
    for line, row in rows[1:]:
        if len(row) != width:
            raise InputError(source, f"line {line} has {len(row)} fields, the header has {width}")
        case = row[id_col].strip()
        if not case:
            raise InputError(source, f"line {line}: empty case id")
        if case in first_line:
            raise InputError(source, f"duplicate case id {case!r} (lines {first_line[case]} and {line})")
        first_line[case] = line
        out.append((line, case, row))
    if not out:
        raise InputError(source, "has a header but no rows of cases")
    return out


def _read_truth(source: Path, classes: Mapping[str, str]) -> dict[str, str]:
    rows = _csv_rows(source)
    columns = _header(source, rows)
    id_col = _id_column(source, columns)
    if "group" not in columns:
        raise InputError(source, f"missing the column 'group' (the true group; columns: {', '.join(columns)})")
    return {
        case: _group(source, row[columns["group"]], line, "group", classes)
        for line, case, row in _cells(source, rows, len(columns), id_col)
    }


def read_diagnosis_table(
    predictions: PathLike,
    truth: PathLike | None = None,
    classes: Sequence[str] = ACDC_GROUPS,
    *,
    tolerance: float = PROBABILITY_TOLERANCE,
) -> DiagnosisTable:
    """Read a classifier's predictions (and the truth) from CSV files.

    Parameters
    ----------
    predictions : str or PathLike
        CSV with a case id column ``case``, one probability column ``p_<class>``
        per class (``p_NOR``, ``p_DCM``, ...), the predicted class ``group``
        (optional: default the most probable class) and, without ``truth``,
        the true class ``truth``. Groups and column names are matched
        regardless of case.
    truth : str or PathLike, optional
        CSV with columns ``case`` and ``group`` (the true class); it may hold
        more cases than the predictions.
    classes : sequence of str
        The classes (default: the ACDC groups).
    tolerance : float
        Accepted deviation of a row's probability sum from 1.

    Returns
    -------
    DiagnosisTable

    Raises
    ------
    InputError
        Naming the file and the problem: a missing file or column, an
        unknown group, a probability that is not a number, negative, or rows
        that do not sum to 1 (with the line), a duplicate case id, cases of
        the predictions missing from the truth.
    """
    names = _class_tuple(classes)
    lookup = {name.upper(): name for name in names}
    source = Path(predictions)
    rows = _csv_rows(source)
    columns = _header(source, rows)
    id_col = _id_column(source, columns)
    prob_cols = {name: columns.get(f"p_{name}".lower()) for name in names}
    missing = [f"p_{name}" for name, col in prob_cols.items() if col is None]
    if truth is None and "truth" not in columns:
        missing.append("truth (or give the truth in a separate file)")
    if missing:
        raise InputError(source, f"missing column(s) {', '.join(missing)} (columns: {', '.join(columns)})")
    notes = []
    truth_map = None
    if truth is not None:
        truth_map = _read_truth(Path(truth), lookup)
        if "truth" in columns:
            notes.append(f"the column 'truth' of {source.name} was ignored: the truth comes from {Path(truth).name}")
    if "group" not in columns:
        notes.append(f"{source.name} has no column 'group': the predicted group is the most probable one")
    cases, true, pred, proba = [], [], [], []
    for line, case, row in _cells(source, rows, len(columns), id_col):
        values = []
        for name, col in prob_cols.items():
            cell = row[col].strip()  # type: ignore[index]
            try:
                values.append(float(cell))
            except ValueError:
                raise InputError(
                    source, f"line {line} (case {case}), column p_{name}: {cell!r} is not a number"
                ) from None
        problem = probability_problem(np.array(values), tolerance)
        if problem is not None:
            raise InputError(source, f"line {line} (case {case}): {problem}")
        cases.append(case)
        proba.append(values)
        if "group" in columns:
            pred.append(_group(source, row[columns["group"]], line, "group", lookup))
        else:
            pred.append(names[int(np.argmax(values))])
        if truth_map is None:
            true.append(_group(source, row[columns["truth"]], line, "truth", lookup))
    if truth_map is not None:
        absent = [case for case in cases if case not in truth_map]
        if absent:
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            raise InputError(truth, f"{len(absent)} case(s) of {source.name} missing from the truth: {shown}")  # type: ignore[arg-type]
        true = [truth_map[case] for case in cases]
        extra = len(truth_map) - len(cases)
        if extra:
            notes.append(f"{extra} case(s) of {Path(truth).name} (truth) have no prediction and were left out")  # type: ignore[arg-type]
    p = np.array(proba, dtype=float)
    disagree = int(np.count_nonzero([names[int(np.argmax(row))] != g for row, g in zip(p, pred, strict=True)]))
    if disagree and "group" in columns:
        notes.append(
            f"{disagree} case(s) whose group is not the most probable class: counts use the group, "
            "the ECE the most probable class"
        )
    return DiagnosisTable(tuple(cases), tuple(true), tuple(pred), p, names, tuple(notes))


# ---------------------------------------------------------------------------- plots


def _ci_text(ci: tuple[float, float]) -> str:
    return "" if math.isnan(ci[0]) else f" ({ci[0]:.2f}–{ci[1]:.2f})"


def _auc_text(auc: Auc) -> str:
    return "undefined" if math.isnan(auc.value) else f"{auc.value:.2f}{_ci_text(auc.ci)}"


def plot_roc(report: ClassificationReport, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write the one-vs-rest ROC curves (PNG), one per class, with the chance diagonal and the AUCs in the legend.

    Returns
    -------
    pathlib.Path
        The written file (never overwritten unless ``overwrite``).
    """
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1.0, label="chance")
    for k, metrics in enumerate(report.per_class):
        curve = report.roc[metrics.name]
        if curve.undefined:
            ax.plot([], [], color=f"C{k}", label=f"{metrics.name}: undefined")
            continue
        label = f"{metrics.name}: {_auc_text(metrics.auc)}"
        ax.plot(curve.fpr, curve.tpr, color=f"C{k}", linewidth=1.5, label=label)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("1 - specificity (false-positive rate)")
    ax.set_ylabel("sensitivity (true-positive rate)")
    macro = report.auc_macro
    ax.set_title(f"ROC, one vs rest (n = {report.n}); macro AUC {_auc_text(macro)}", fontsize="medium")
    ax.legend(
        fontsize="small",
        loc="lower right",
        title=f"AUC ({100 * report.level:g} % CI, bootstrap)",
        title_fontsize="small",
    )
    return _save_png(figure, path, overwrite)


def plot_reliability(report: ClassificationReport, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write the top-label reliability diagram (PNG): accuracy per confidence bin against the diagonal, with counts."""
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1.0, label="perfect calibration")
    filled = [b for b in report.reliability if b.count]
    width = 1.0 / report.n_bins
    ax.bar([b.lower for b in filled], [b.accuracy for b in filled], width=width, align="edge",
           color="C0", alpha=0.7, edgecolor="C0", label="accuracy")  # fmt: skip
    ax.plot([b.confidence for b in filled], [b.accuracy for b in filled], "o", color="C3", markersize=4,
            label="mean confidence, accuracy")  # fmt: skip
    for b in filled:
        ax.annotate(str(b.count), (b.lower + width / 2, b.accuracy), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize="x-small")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("confidence (largest class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (n = {report.n}, {report.n_bins} bins): ECE {report.ece:.3f}, Brier {report.brier:.3f}",
                 fontsize="medium")  # fmt: skip
    ax.legend(fontsize="small", loc="upper left", title="numbers: cases per bin", title_fontsize="small")
    return _save_png(figure, path, overwrite)


def plot_confusion(report: ClassificationReport, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write the confusion matrix (PNG): counts, rows the true class, columns the predicted class."""
    figure = _figure()
    ax = figure.add_subplot()
    matrix = report.confusion
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max())))
    k = len(report.classes)
    ax.set_xticks(range(k), report.classes)
    ax.set_yticks(range(k), report.classes)
    threshold = matrix.max() / 2.0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if matrix[i, j] > threshold else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = report.accuracy
    ax.set_title(
        f"Confusion (n = {report.n}): accuracy {accuracy.estimate:.2f}{_ci_text(accuracy.ci)}, "
        f"{100 * report.level:g} % CI",
        fontsize="medium",
    )
    return _save_png(figure, path, overwrite)
