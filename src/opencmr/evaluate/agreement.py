"""Agreement of clinical indices (EDV, EF, LV mass, ...) between automatic and manual analysis.

Every statistic takes paired arrays ``(a, b)`` = (automatic, manual), one value
per case, and differences are always ``automatic - manual``:

* :func:`bland_altman`: bias, SD of the differences, 95 % limits of agreement
  (bias ± 1.96 SD) and the confidence intervals of the bias and of each limit
  (Bland & Altman 1986 [1]_, 1999 [2]_);
* :func:`pearson` (with a Fisher-z confidence interval) and :func:`spearman`;
* :func:`icc`: intraclass correlations of the two-way model for 2 or more
  raters, absolute agreement ``ICC(A,1)`` (= Shrout & Fleiss ICC(2,1)) and
  consistency ``ICC(C,1)`` (= ICC(3,1)), single or average measures, with the
  confidence intervals of McGraw & Wong [3]_ (Shrout & Fleiss [4]_);
* :func:`mean_absolute_error`;
* :func:`agreement_table`: all of them per index, for the indices two tables
  share, pairs with a missing (NaN) value skipped and counted.

Index tables come from CSV files (:func:`read_index_table`: one row per case,
a case id column and one numeric column per index, named as
:mod:`opencmr.measure` names them: ``lv_edv_ml``, ``lv_ef_percent``,
``lv_mass_g``, ...) and are matched by case id with :func:`pair_tables`.
:func:`plot_bland_altman` and :func:`plot_scatter` write PNG figures.

Conventions
-----------
* The statistics need at least :data:`MIN_PAIRS` (3) finite pairs; NaN means
  "missing" and is refused by the statistics themselves (drop such pairs with
  :func:`drop_missing_pairs`, as :func:`agreement_table` does); infinite values
  are always an error.
* A correlation of a constant series is undefined: :func:`pearson` and
  :func:`spearman` then return ``r = NaN`` and say why in ``undefined``
  (rather than raise), so that one constant index does not stop a table.
  The same holds for an ICC whose denominator is zero (all ratings equal).
* The limits' standard error is Bland & Altman's approximation
  ``sd * sqrt(3 / n)`` (exact for a multiplier of 2, 1 % off for 1.96).

References
----------
.. [1] J. M. Bland and D. G. Altman, "Statistical methods for assessing
   agreement between two methods of clinical measurement", Lancet 327(8476),
   1986, 307-310, doi:10.1016/S0140-6736(86)90837-8.
.. [2] J. M. Bland and D. G. Altman, "Measuring agreement in method comparison
   studies", Stat Methods Med Res 8(2), 1999, 135-160,
   doi:10.1177/096228029900800204.
.. [3] K. O. McGraw and S. P. Wong, "Forming inferences about some intraclass
   correlation coefficients", Psychol Methods 1(1), 1996, 30-46,
   doi:10.1037/1082-989X.1.1.30 (Table 7: confidence intervals).
.. [4] P. E. Shrout and J. L. Fleiss, "Intraclass correlations: uses in
   assessing rater reliability", Psychol Bull 86(2), 1979, 420-428,
   doi:10.1037/0033-2909.86.2.420.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from opencmr.errors import InputError
from opencmr.io._atomic import atomic_output
from opencmr.measure.units import unit_of

__all__ = [
    "AGREEMENT_COLUMNS",
    "ID_COLUMNS",
    "MIN_PAIRS",
    "AgreementRow",
    "BlandAltman",
    "Correlation",
    "Icc",
    "IccKind",
    "MeanSquares",
    "PairedTables",
    "agreement_table",
    "bland_altman",
    "drop_missing_pairs",
    "icc",
    "index_file_stem",
    "mean_absolute_error",
    "pair_tables",
    "pearson",
    "plot_bland_altman",
    "plot_scatter",
    "read_index_table",
    "spearman",
    "two_way_mean_squares",
    "unit_of",
    "write_agreement_csv",
]

PathLike = str | os.PathLike[str]

MIN_PAIRS = 3
"""Fewest pairs any statistic here accepts (an SD of differences needs 2, a Fisher-z interval 4)."""

#: Column names (lower case) taken as the case identifier, before falling back to the first column.
ID_COLUMNS: tuple[str, ...] = ("case", "case_id", "patient", "patient_id", "id", "subject", "subject_id")

#: Cell texts read as a missing value (NaN), compared in lower case after stripping.
MISSING_TEXTS = frozenset({"", "na", "nan", "n/a", "none", "null"})


# ---------------------------------------------------------------------------- pairs


def drop_missing_pairs(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray, int]:
    """Leave out the pairs in which either value is NaN (missing).

    Parameters
    ----------
    a, b : array_like
        Automatic and manual values, one per case, same length.

    Returns
    -------
    a, b : numpy.ndarray
        The complete pairs, as float arrays.
    n_dropped : int
        How many pairs were left out.

    Raises
    ------
    ValueError
        The arrays are not 1-D or differ in length.

    Examples
    --------
    >>> a, b, dropped = drop_missing_pairs([1.0, float("nan"), 3.0], [1.5, 2.0, float("nan")])
    >>> a.tolist(), b.tolist(), dropped
    ([1.0], [1.5], 2)
    """
    x, y = _as_pair(a, b)
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep], int(np.count_nonzero(~keep))


def _as_pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of paired values, got shapes {x.shape} and {y.shape}")
    if x.size != y.size:
        raise ValueError(f"automatic and manual values differ in length ({x.size} and {y.size} values)")
    return x, y


def _checked_pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two finite float arrays of equal length with at least :data:`MIN_PAIRS` pairs, or a ValueError."""
    x, y = _as_pair(a, b)
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size:
        i = int(bad[0])
        hint = "; leave out missing pairs first (drop_missing_pairs)" if np.isnan([x[i], y[i]]).any() else ""
        raise ValueError(
            f"{bad.size} pair(s) not finite, the first is pair {i} (automatic {x[i]}, manual {y[i]}){hint}"
        )
    if x.size < MIN_PAIRS:
        raise ValueError(f"{x.size} pair(s); at least {MIN_PAIRS} are needed")
    return x, y


def _two_sided(level: float) -> float:
    """The upper quantile probability of a two-sided interval, ``1 - (1 - level) / 2``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")
    return 1.0 - (1.0 - level) / 2.0


def mean_absolute_error(a: ArrayLike, b: ArrayLike) -> float:
    """Mean of ``|automatic - manual|``, in the unit of the index.

    Examples
    --------
    >>> mean_absolute_error([10.0, 12.0, 15.0], [11.0, 12.0, 12.0])
    1.3333333333333333
    """
    x, y = _checked_pair(a, b)
    return float(np.mean(np.abs(x - y)))


# ---------------------------------------------------------------------------- Bland-Altman


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman agreement of paired measurements (differences are automatic - manual).

    Attributes
    ----------
    n : int
        Pairs.
    bias : float
        Mean difference.
    sd : float
        Sample SD of the differences (n - 1 in the denominator).
    lower, upper : float
        Limits of agreement, ``bias -/+ multiplier * sd``.
    bias_ci, lower_ci, upper_ci : tuple of float
        Confidence intervals of the bias and of each limit: estimate ±
        ``t(level, n - 1) * SE`` with SE ``sd / sqrt(n)`` (bias) and
        ``sd * sqrt(3 / n)`` (limits), Bland & Altman 1999, section 2.1.
    multiplier : float
        SDs on either side of the bias (1.96 for 95 % limits).
    level : float
        Confidence level of the intervals.
    """

    n: int
    bias: float
    sd: float
    lower: float
    upper: float
    bias_ci: tuple[float, float]
    lower_ci: tuple[float, float]
    upper_ci: tuple[float, float]
    multiplier: float = 1.96
    level: float = 0.95

    @property
    def se_bias(self) -> float:
        """Standard error of the bias, ``sd / sqrt(n)``."""
        return self.sd / math.sqrt(self.n)

    @property
    def se_limit(self) -> float:
        """Approximate standard error of either limit, ``sd * sqrt(3 / n)``."""
        return self.sd * math.sqrt(3.0 / self.n)


def bland_altman(a: ArrayLike, b: ArrayLike, *, multiplier: float = 1.96, level: float = 0.95) -> BlandAltman:
    """Bias and limits of agreement of automatic (``a``) against manual (``b``) values.

    Parameters
    ----------
    a, b : array_like
        Automatic and manual values, one per case (finite, at least 3 pairs).
    multiplier : float
        Limits at ``bias ± multiplier * sd``: 1.96 for 95 % limits (Bland &
        Altman 1999); the 1986 paper used 2.
    level : float
        Confidence level of the intervals of the bias and the limits.

    Returns
    -------
    BlandAltman

    Raises
    ------
    ValueError
        Different lengths, fewer than 3 pairs, or a value that is not finite.

    Notes
    -----
    The intervals use the t distribution with n - 1 degrees of freedom; the
    standard error of a limit is ``sd * sqrt(3 / n)`` (Bland & Altman 1986,
    1999), the approximation of ``sd * sqrt(1/n + multiplier**2 / (2 (n - 1)))``
    that the papers use. The interval of the bias is that of the paired t-test.

    References
    ----------
    J. M. Bland and D. G. Altman, Stat Methods Med Res 8(2), 1999, 135-160,
    doi:10.1177/096228029900800204.

    Examples
    --------
    Differences 2, 2, 4, 6, 6: mean 4, SD 2, limits 4 ± 3.92.

    >>> ba = bland_altman([102, 122, 144, 166, 186], [100, 120, 140, 160, 180])
    >>> ba.n, ba.bias, ba.sd
    (5, 4.0, 2.0)
    >>> round(ba.lower, 2), round(ba.upper, 2)
    (0.08, 7.92)
    """
    x, y = _checked_pair(a, b)
    t = float(stats.t.ppf(_two_sided(level), x.size - 1))
    diff = x - y
    n = int(diff.size)
    bias = float(np.mean(diff))
    sd = float(np.std(diff, ddof=1))
    lower, upper = bias - multiplier * sd, bias + multiplier * sd
    se_bias, se_limit = sd / math.sqrt(n), sd * math.sqrt(3.0 / n)
    return BlandAltman(
        n=n,
        bias=bias,
        sd=sd,
        lower=lower,
        upper=upper,
        bias_ci=(bias - t * se_bias, bias + t * se_bias),
        lower_ci=(lower - t * se_limit, lower + t * se_limit),
        upper_ci=(upper - t * se_limit, upper + t * se_limit),
        multiplier=float(multiplier),
        level=float(level),
    )


# ---------------------------------------------------------------------------- correlation


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient of paired values.

    Attributes
    ----------
    method : str
        ``"pearson"`` or ``"spearman"``.
    n : int
        Pairs.
    r : float
        The coefficient (NaN when undefined).
    p_value : float
        Two-sided p-value of r = 0 (t distribution with n - 2 degrees of freedom).
    ci : tuple of float or None
        Confidence interval of r (Pearson: Fisher z); None where not computed.
    level : float
        Confidence level of ``ci``.
    undefined : str or None
        Why ``r`` is NaN (a constant series), else None.
    """

    method: str
    n: int
    r: float
    p_value: float
    ci: tuple[float, float] | None
    level: float = 0.95
    undefined: str | None = None


def _constant(x: np.ndarray, y: np.ndarray) -> str | None:
    """Why a correlation of ``x`` and ``y`` is undefined (a series with no variance), or None."""
    names = [name for name, v in (("automatic", x), ("manual", y)) if np.ptp(v) == 0]
    if not names:
        return None
    return f"{' and '.join(names)} values are all equal: the correlation is undefined"


def _r_and_p(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Product-moment r and its two-sided p-value (t = r sqrt((n - 2) / (1 - r²)), n - 2 df)."""
    dx, dy = x - x.mean(), y - y.mean()
    r = float(np.clip(np.sum(dx * dy) / math.sqrt(np.sum(dx * dx) * np.sum(dy * dy)), -1.0, 1.0))
    df = x.size - 2
    if abs(r) == 1.0:
        return r, 0.0
    t = r * math.sqrt(df / (1.0 - r * r))
    return r, float(2.0 * stats.t.sf(abs(t), df))


def pearson(a: ArrayLike, b: ArrayLike, *, level: float = 0.95) -> Correlation:
    """Pearson's r with its p-value and a Fisher-z confidence interval.

    Parameters
    ----------
    a, b : array_like
        Automatic and manual values (finite, at least 3 pairs).
    level : float
        Confidence level.

    Returns
    -------
    Correlation
        ``ci = tanh(atanh(r) ± z / sqrt(n - 3))`` with ``z`` the normal
        quantile (as R's ``cor.test``); for 3 pairs the interval is (-1, 1).
        A constant series gives NaN and a reason in ``undefined``.

    Raises
    ------
    ValueError
        Different lengths, fewer than 3 pairs, or a value that is not finite.

    References
    ----------
    R. A. Fisher, "On the probable error of a coefficient of correlation
    deduced from a small sample", Metron 1, 1921, 3-32.

    Examples
    --------
    >>> result = pearson([1, 2, 3], [1, 3, 2])
    >>> round(result.r, 6), round(result.p_value, 6)
    (0.5, 0.666667)
    """
    x, y = _checked_pair(a, b)
    q = _two_sided(level)
    if (reason := _constant(x, y)) is not None:
        return Correlation("pearson", int(x.size), math.nan, math.nan, (math.nan, math.nan), level, reason)
    r, p = _r_and_p(x, y)
    if x.size <= 3:
        ci = (-1.0, 1.0)
    else:
        half = float(stats.norm.ppf(q)) / math.sqrt(x.size - 3)
        z = math.atanh(r) if abs(r) < 1.0 else math.copysign(math.inf, r)
        ci = (math.tanh(z - half), math.tanh(z + half))
    return Correlation("pearson", int(x.size), r, p, ci, level)


def spearman(a: ArrayLike, b: ArrayLike) -> Correlation:
    """Spearman's rank correlation (tied values get their average rank) and its p-value.

    The p-value uses the t approximation with n - 2 degrees of freedom (as
    :func:`scipy.stats.spearmanr`; R's ``cor.test`` computes an exact p-value
    for small samples without ties). No confidence interval (``ci`` is None).

    Raises
    ------
    ValueError
        Different lengths, fewer than 3 pairs, or a value that is not finite.

    Examples
    --------
    Without ties rho = 1 - 6 Σd² / (n (n² - 1)): here Σd² = 4, n = 5.

    >>> round(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).r, 12)
    0.8
    """
    x, y = _checked_pair(a, b)
    if (reason := _constant(x, y)) is not None:
        return Correlation("spearman", int(x.size), math.nan, math.nan, None, undefined=reason)
    r, p = _r_and_p(stats.rankdata(x), stats.rankdata(y))
    return Correlation("spearman", int(x.size), r, p, None)


# ---------------------------------------------------------------------------- ICC


class IccKind(StrEnum):
    """Intraclass correlations of the two-way model (McGraw & Wong names; Shrout & Fleiss in brackets)."""

    A1 = "ICC(A,1)"
    """Absolute agreement, single measure (ICC(2,1)): systematic differences between raters count."""
    C1 = "ICC(C,1)"
    """Consistency, single measure (ICC(3,1)): a constant offset between raters does not count."""
    AK = "ICC(A,k)"
    """Absolute agreement of the mean of the k raters (ICC(2,k))."""
    CK = "ICC(C,k)"
    """Consistency of the mean of the k raters (ICC(3,k))."""

    @classmethod
    def parse(cls, text: str | IccKind) -> IccKind:
        """A kind from its McGraw & Wong or Shrout & Fleiss name (``"ICC(2,1)"`` is ``ICC(A,1)``)."""
        if isinstance(text, IccKind):
            return text
        key = re.sub(r"\s+", "", str(text)).upper().replace("K)", "k)")
        key = {"ICC(2,1)": "ICC(A,1)", "ICC(3,1)": "ICC(C,1)", "ICC(2,k)": "ICC(A,k)", "ICC(3,k)": "ICC(C,k)"}.get(
            key, key
        )
        try:
            return cls(key)
        except ValueError:
            choices = ", ".join(k.value for k in cls)
            raise ValueError(f"unknown ICC kind {text!r}; choose {choices} (or ICC(2,1), ICC(3,1), ...)") from None


@dataclass(frozen=True)
class MeanSquares:
    """Two-way ANOVA (cases x raters, one rating per cell) of an n x k table.

    Attributes
    ----------
    rows, columns, error : float
        Mean squares between cases (MSR, Shrout & Fleiss' BMS), between raters
        (MSC, JMS) and residual (MSE, EMS).
    n, k : int
        Cases and raters.
    """

    rows: float
    columns: float
    error: float
    n: int
    k: int


def two_way_mean_squares(ratings: ArrayLike) -> MeanSquares:
    """Mean squares of the two-way ANOVA without replication of an n x k table (cases x raters).

    Mean squares below the floating-point resolution of the data are set to
    exactly 0 (so that identical raters give an ICC of exactly 1).

    Raises
    ------
    ValueError
        Not a 2-D table with at least 3 rows and 2 columns, or a value that is not finite.
    """
    y = np.asarray(ratings, dtype=float)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"expected an n x k table of ratings (k >= 2 raters), got shape {y.shape}")
    n, k = y.shape
    if n < MIN_PAIRS:
        raise ValueError(f"{n} case(s); at least {MIN_PAIRS} are needed")
    if not np.isfinite(y).all():
        raise ValueError("the ratings hold values that are not finite (NaN or inf)")
    grand = y.mean()
    rows, cols = y.mean(axis=1), y.mean(axis=0)
    residual = y - rows[:, None] - cols[None, :] + grand
    ms_rows = k * float(np.sum((rows - grand) ** 2)) / (n - 1)
    ms_cols = n * float(np.sum((cols - grand) ** 2)) / (k - 1)
    ms_error = float(np.sum(residual**2)) / ((n - 1) * (k - 1))
    scale = float(np.max(np.abs(y - grand)))
    floor = n * k * (16.0 * np.finfo(float).eps * scale) ** 2
    ms_rows, ms_cols, ms_error = (0.0 if ms <= floor else ms for ms in (ms_rows, ms_cols, ms_error))
    return MeanSquares(ms_rows, ms_cols, ms_error, int(n), int(k))


@dataclass(frozen=True)
class Icc:
    """An intraclass correlation with its confidence interval and F test.

    Attributes
    ----------
    kind : IccKind
    value : float
        The ICC (NaN when undefined).
    ci : tuple of float
        Confidence interval (McGraw & Wong 1996, Table 7).
    f_value : float
        ``MSR / MSE``, the F statistic of ICC = 0.
    df1, df2 : float
        Its degrees of freedom, n - 1 and (n - 1)(k - 1).
    p_value : float
        One-sided p-value of ICC = 0 against ICC > 0.
    n, k : int
        Cases and raters.
    level : float
        Confidence level of ``ci``.
    undefined : str or None
        Why ``value`` is NaN, else None.
    """

    kind: IccKind
    value: float
    ci: tuple[float, float]
    f_value: float
    df1: float
    df2: float
    p_value: float
    n: int
    k: int
    level: float = 0.95
    undefined: str | None = None


def icc(a: ArrayLike, b: ArrayLike | None = None, kind: str | IccKind = IccKind.A1, *, level: float = 0.95) -> Icc:
    """Intraclass correlation of the two-way model: two paired arrays, or an n x k table of k raters.

    Parameters
    ----------
    a : array_like
        Automatic values (1-D, with ``b``), or an n x k table (cases x raters, without ``b``).
    b : array_like, optional
        Manual values, paired with ``a``.
    kind : str or IccKind
        ``"ICC(A,1)"`` absolute agreement (default; Shrout & Fleiss ICC(2,1)),
        ``"ICC(C,1)"`` consistency (ICC(3,1)), or the average-measure forms
        ``"ICC(A,k)"`` and ``"ICC(C,k)"``.
    level : float
        Confidence level.

    Returns
    -------
    Icc
        With MSR, MSC, MSE the mean squares of :func:`two_way_mean_squares`:

        * ICC(A,1) = (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)
        * ICC(C,1) = (MSR - MSE) / (MSR + (k - 1) MSE)
        * ICC(A,k) = (MSR - MSE) / (MSR + (MSC - MSE) / n)
        * ICC(C,k) = (MSR - MSE) / MSR

        and the confidence intervals of McGraw & Wong (1996, Table 7): F-based
        for consistency, with Satterthwaite's degrees of freedom for absolute
        agreement. Where the ICC is 0 / 0 (all ratings equal, or cases that
        do not differ rated without residual error) it is NaN with a reason
        in ``undefined``; raters that agree exactly give 1 with interval (1, 1).

    Raises
    ------
    ValueError
        Different lengths, fewer than 3 cases, a value that is not finite, or an unknown kind.

    References
    ----------
    K. O. McGraw and S. P. Wong, Psychol Methods 1(1), 1996, 30-46,
    doi:10.1037/1082-989X.1.1.30.
    P. E. Shrout and J. L. Fleiss, Psychol Bull 86(2), 1979, 420-428,
    doi:10.1037/0033-2909.86.2.420.

    Examples
    --------
    Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.

    >>> table = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> round(icc(table, kind="ICC(2,1)").value, 2), round(icc(table, kind="ICC(3,1)").value, 2)
    (0.29, 0.71)

    Two raters that differ by a constant agree perfectly in consistency only:

    >>> icc([1, 2, 3], [2, 3, 4], "ICC(C,1)").value, round(icc([1, 2, 3], [2, 3, 4]).value, 4)
    (1.0, 0.6667)
    """
    parsed = IccKind.parse(kind)
    q = _two_sided(level)
    if b is None:
        table = np.asarray(a, dtype=float)
    else:
        table = np.column_stack(_checked_pair(a, b))
    ms = two_way_mean_squares(table)
    msr, msc, mse, n, k = ms.rows, ms.columns, ms.error, ms.n, ms.k
    df1, df2 = float(n - 1), float((n - 1) * (k - 1))
    f_value = msr / mse if mse > 0 else (math.inf if msr > 0 else math.nan)
    p_value = float(stats.f.sf(f_value, df1, df2)) if not math.isnan(f_value) else math.nan
    numerator = msr - mse
    denominators = {
        IccKind.A1: msr + (k - 1) * mse + k * (msc - mse) / n,
        IccKind.C1: msr + (k - 1) * mse,
        IccKind.AK: msr + (msc - mse) / n,
        IccKind.CK: msr,
    }
    denominator = denominators[parsed]
    if denominator == 0 or msr == mse == 0:  # 0 / 0, or an F statistic of 0 / 0
        reason = (
            "all ratings are equal: the ICC is undefined"
            if msr == msc == mse == 0
            else "the cases do not differ (no variance between cases): the ICC is undefined"
        )
        return Icc(parsed, math.nan, (math.nan, math.nan), f_value, df1, df2, p_value, n, k, level, reason)
    value = numerator / denominator
    if parsed in (IccKind.C1, IccKind.CK):
        ci = _consistency_ci(f_value, n, k, q, average=parsed is IccKind.CK)
    else:
        ci = _agreement_ci(ms, numerator / denominators[IccKind.A1], q, average=parsed is IccKind.AK)
    return Icc(parsed, float(value), ci, f_value, df1, df2, p_value, n, k, level)


def _consistency_ci(f_value: float, n: int, k: int, q: float, average: bool) -> tuple[float, float]:
    """McGraw & Wong (1996) Table 7, cases 3 (ICC(C,1)) and 3 average (ICC(C,k))."""
    if math.isinf(f_value):
        return 1.0, 1.0
    df1, df2 = n - 1, (n - 1) * (k - 1)
    f_low = f_value / float(stats.f.ppf(q, df1, df2))
    f_high = f_value * float(stats.f.ppf(q, df2, df1))
    if average:
        return 1.0 - 1.0 / f_low, 1.0 - 1.0 / f_high
    return (f_low - 1.0) / (f_low + k - 1.0), (f_high - 1.0) / (f_high + k - 1.0)


def _agreement_ci(ms: MeanSquares, rho: float, q: float, average: bool) -> tuple[float, float]:
    """McGraw & Wong (1996) Table 7, case 2A: ICC(A,1) and ICC(A,k), ``rho`` being ICC(A,1).

    Satterthwaite's degrees of freedom ``v`` of the denominator come from the
    ICC(A,1) estimate; the ICC(A,k) limits are the Spearman-Brown transforms
    of the ICC(A,1) limits (the same formulas rearranged).
    """
    msr, msc, mse, n, k = ms.rows, ms.columns, ms.error, ms.n, ms.k
    if mse == 0 and msc == 0:
        return 1.0, 1.0
    a = k * rho / (n * (1.0 - rho))
    b = 1.0 + k * rho * (n - 1) / (n * (1.0 - rho))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_star = float(stats.f.ppf(q, n - 1, v))
    f_star_upper = float(stats.f.ppf(q, v, n - 1))
    spread = k * msc + (k * n - k - n) * mse
    lower = n * (msr - f_star * mse) / (f_star * spread + n * msr)
    upper = n * (f_star_upper * msr - mse) / (spread + n * f_star_upper * msr)
    if average:
        lower, upper = (k * x / (1.0 + (k - 1) * x) for x in (lower, upper))
    return float(lower), float(upper)


# ---------------------------------------------------------------------------- table of indices


#: Columns of the CSV written by :func:`write_agreement_csv` (:meth:`AgreementRow.to_dict`).
AGREEMENT_COLUMNS: tuple[str, ...] = (
    "index", "unit", "n", "n_skipped", "mean_automatic", "mean_manual",
    "bias", "bias_ci_lower", "bias_ci_upper", "sd_diff",
    "loa_lower", "loa_lower_ci_lower", "loa_lower_ci_upper", "loa_upper", "loa_upper_ci_lower", "loa_upper_ci_upper",
    "pearson_r", "pearson_ci_lower", "pearson_ci_upper", "pearson_p", "spearman_rho", "spearman_p",
    "icc_a1", "icc_a1_ci_lower", "icc_a1_ci_upper", "icc_c1", "icc_c1_ci_lower", "icc_c1_ci_upper",
    "mae", "note",
)  # fmt: skip


@dataclass(frozen=True)
class AgreementRow:
    """Agreement of one index between automatic and manual values.

    Attributes
    ----------
    index : str
        Index name (``lv_ef_percent``, ...).
    n : int
        Pairs used.
    n_skipped : int
        Pairs left out because a value was missing (NaN).
    mean_automatic, mean_manual : float
        Means over the pairs used.
    bland_altman : BlandAltman
    pearson, spearman : Correlation
    icc_agreement : Icc
        ICC(A,1).
    icc_consistency : Icc
        ICC(C,1).
    mae : float
        Mean absolute error.
    """

    index: str
    n: int
    n_skipped: int
    mean_automatic: float
    mean_manual: float
    bland_altman: BlandAltman
    pearson: Correlation
    spearman: Correlation
    icc_agreement: Icc
    icc_consistency: Icc
    mae: float

    @property
    def notes(self) -> tuple[str, ...]:
        """Why a statistic is undefined, one line each (duplicates removed)."""
        found = (self.pearson, self.spearman, self.icc_agreement, self.icc_consistency)
        return tuple(dict.fromkeys(result.undefined for result in found if result.undefined))

    def to_dict(self) -> dict[str, Any]:
        """The row as the flat record of :data:`AGREEMENT_COLUMNS`."""
        ba, r, rho, a1, c1 = self.bland_altman, self.pearson, self.spearman, self.icc_agreement, self.icc_consistency
        pearson_ci = r.ci or (math.nan, math.nan)
        values = (
            self.index, unit_of(self.index), self.n, self.n_skipped, self.mean_automatic, self.mean_manual,
            ba.bias, *ba.bias_ci, ba.sd, ba.lower, *ba.lower_ci, ba.upper, *ba.upper_ci,
            r.r, *pearson_ci, r.p_value, rho.r, rho.p_value,
            a1.value, *a1.ci, c1.value, *c1.ci,
            self.mae, "; ".join(self.notes),
        )  # fmt: skip
        return dict(zip(AGREEMENT_COLUMNS, values, strict=True))


def agreement_table(
    automatic: Mapping[str, ArrayLike],
    manual: Mapping[str, ArrayLike],
    indices: Sequence[str] | None = None,
    *,
    level: float = 0.95,
) -> list[AgreementRow]:
    """Bland-Altman, correlations, ICCs and MAE for every index of both mappings.

    Parameters
    ----------
    automatic, manual : mapping of str to array_like
        Index name -> values, paired by position (one per case, NaN = missing),
        as :class:`PairedTables` holds them.
    indices : sequence of str, optional
        Indices to compare, in this order; default: those of ``automatic`` that
        ``manual`` also has.
    level : float
        Confidence level of all intervals.

    Returns
    -------
    list of AgreementRow

    Raises
    ------
    ValueError
        No index in common, a requested index missing from either side, or an
        index with different lengths, fewer than 3 complete pairs or an
        infinite value (the message starts with the index name).

    Examples
    --------
    >>> rows = agreement_table({"lv_edv_ml": [102, 122, 144, 166, 186, float("nan")]},
    ...                        {"lv_edv_ml": [100, 120, 140, 160, 180, 200]})
    >>> rows[0].index, rows[0].n, rows[0].n_skipped, rows[0].bland_altman.bias, rows[0].mae
    ('lv_edv_ml', 5, 1, 4.0, 4.0)
    """
    if indices is None:
        names = [name for name in automatic if name in manual]
        if not names:
            raise ValueError(
                f"no index in both tables (automatic: {', '.join(automatic) or 'none'}; "
                f"manual: {', '.join(manual) or 'none'})"
            )
    else:
        names = list(dict.fromkeys(indices))
        for name in names:
            for side, values in (("automatic", automatic), ("manual", manual)):
                if name not in values:
                    raise ValueError(f"{name}: not among the {side} indices ({', '.join(values) or 'none'})")
    rows = []
    for name in names:
        try:
            rows.append(_agreement_row(name, automatic[name], manual[name], level))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return rows


def _agreement_row(name: str, automatic: ArrayLike, manual: ArrayLike, level: float) -> AgreementRow:
    x, y, skipped = drop_missing_pairs(automatic, manual)
    if x.size < MIN_PAIRS:
        raise ValueError(f"{x.size} complete pair(s) ({skipped} with a missing value); at least {MIN_PAIRS} are needed")
    return AgreementRow(
        index=name,
        n=int(x.size),
        n_skipped=skipped,
        mean_automatic=float(np.mean(x)),
        mean_manual=float(np.mean(y)),
        bland_altman=bland_altman(x, y, level=level),
        pearson=pearson(x, y, level=level),
        spearman=spearman(x, y),
        icc_agreement=icc(x, y, IccKind.A1, level=level),
        icc_consistency=icc(x, y, IccKind.C1, level=level),
        mae=mean_absolute_error(x, y),
    )


def write_agreement_csv(rows: Iterable[AgreementRow], path: PathLike, *, overwrite: bool = False) -> Path:
    """Write agreement rows as CSV (:data:`AGREEMENT_COLUMNS`; NaN written as ``NaN``), atomically.

    Raises
    ------
    OutputError
        ``path`` exists (and ``overwrite`` is False) or cannot be written.
    """
    records = [row.to_dict() for row in rows]
    target = Path(path)
    with atomic_output(target, overwrite) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=AGREEMENT_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow({k: _csv_value(v) for k, v in record.items()})
    return target


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    return value


def index_file_stem(index: str) -> str:
    """An index name made safe for a file name (letters, digits, ``.``, ``_``, ``-``).

    >>> index_file_stem("LV EF (%)")
    'LV_EF_'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", index).strip(".") or "index"


# ---------------------------------------------------------------------------- CSV input


def read_index_table(path: PathLike, indices: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Read a CSV of clinical indices: one row per case, a case id column and one numeric column per index.

    Parameters
    ----------
    path : str or PathLike
        CSV file (comma, semicolon or tab separated, UTF-8 with or without BOM).
        The case id is the column named ``case``, ``patient``, ``id`` (or one of
        :data:`ID_COLUMNS`, any case), else the first column.
    indices : sequence of str, optional
        Read only these index columns (others, text columns included, are
        ignored); default: every column but the id.

    Returns
    -------
    dict
        ``{case_id: {index: value}}`` in file order; empty cells and ``NA``,
        ``NaN``, ``n/a``, ``none``, ``null`` are NaN (missing).

    Raises
    ------
    InputError
        The file is missing or unreadable, has no header or no case id column,
        lacks a requested index, or holds a duplicate or empty case id, a row
        with the wrong number of fields, or a value that is not a finite number
        (the message names the line and column).
    """
    source = Path(path)
    rows = _csv_rows(source)
    header = [cell.strip() for cell in rows[0][1]]
    id_col = _id_column(source, header)
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise InputError(source, f"column name(s) {', '.join(map(repr, duplicated))} appear more than once")
    if indices is None:
        columns = [i for i in range(len(header)) if i != id_col]
    else:
        missing = [name for name in indices if name not in header or header.index(name) == id_col]
        if missing:
            raise InputError(
                source, f"has no index column {', '.join(map(repr, missing))} (columns: {', '.join(header)})"
            )
        columns = [header.index(name) for name in dict.fromkeys(indices)]
    if not columns:
        raise InputError(source, f"has only the case id column {header[id_col]!r}; expected one column per index")
    table: dict[str, dict[str, float]] = {}
    first_line: dict[str, int] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise InputError(source, f"line {line} has {len(row)} fields, the header has {len(header)}")
        case = row[id_col].strip()
        if not case:
            raise InputError(source, f"line {line}: empty case id (column {header[id_col] or 1})")
        if case in table:
            raise InputError(source, f"case id {case!r} appears twice (lines {first_line[case]} and {line})")
        first_line[case] = line
        table[case] = {header[c]: _parse_value(source, row[c], line, header[c], case) for c in columns}
    if not table:
        raise InputError(source, "has a header but no rows of cases")
    return table


def _csv_rows(source: Path) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their line numbers (1-based, the header first)."""
    if not source.exists():
        raise InputError(source, "does not exist")
    if source.is_dir():
        raise InputError(source, "is a folder, not a CSV file")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(source, "is not a UTF-8 text (CSV) file") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise InputError(source, f"is not a valid CSV file (line {reader.line_num}: {exc})") from None
    if not rows:
        raise InputError(source, "is empty")
    return rows


def _id_column(source: Path, header: list[str]) -> int:
    """The case id column: the first one named as in :data:`ID_COLUMNS`, else the first column."""
    lowered = [name.lower() for name in header]
    named = next((lowered.index(name) for name in ID_COLUMNS if name in lowered), None)
    if named is not None:
        return named
    expected = f"expected a case id column named {', '.join(ID_COLUMNS[::2])} (or the ids in the first column)"
    if len(header) < 2:
        raise InputError(source, f"has a single column; {expected} and one column per index")
    if all(_is_number(name) for name in header if name):
        raise InputError(source, f"has no header row (the first line holds numbers); {expected}")
    if unit_of(header[0]):
        raise InputError(
            source, f"has no case id column: the first column {header[0]!r} looks like an index; {expected}"
        )
    return 0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_value(source: Path, text: str, line: int, column: str, case: str) -> float:
    cell = text.strip()
    if cell.lower() in MISSING_TEXTS:
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        hint = " (decimal comma? write 72.5, not 72,5)" if re.fullmatch(r"[-+]?\d+,\d+", cell) else ""
        raise InputError(
            source, f"line {line} (case {case}), column {column}: {cell!r} is not a number{hint}"
        ) from None
    if not math.isfinite(value):
        raise InputError(source, f"line {line} (case {case}), column {column}: {cell!r} is not a finite number")
    return value


@dataclass(frozen=True)
class PairedTables:
    """Two index tables matched by case id.

    Attributes
    ----------
    case_ids : tuple of str
        Cases in both tables, in the order of the automatic table.
    automatic, manual : dict of str to numpy.ndarray
        Index name -> values over ``case_ids`` (NaN where a value is missing),
        for every index of each table.
    only_automatic, only_manual : tuple of str
        Case ids found in one table only.
    """

    case_ids: tuple[str, ...]
    automatic: Mapping[str, np.ndarray]
    manual: Mapping[str, np.ndarray]
    only_automatic: tuple[str, ...]
    only_manual: tuple[str, ...]

    @property
    def common_indices(self) -> tuple[str, ...]:
        """Indices of both tables, in the order of the automatic table."""
        return tuple(name for name in self.automatic if name in self.manual)

    @property
    def indices_only_automatic(self) -> tuple[str, ...]:
        return tuple(name for name in self.automatic if name not in self.manual)

    @property
    def indices_only_manual(self) -> tuple[str, ...]:
        return tuple(name for name in self.manual if name not in self.automatic)


def pair_tables(
    automatic: Mapping[str, Mapping[str, float]],
    manual: Mapping[str, Mapping[str, float]],
    *,
    sources: tuple[str, str] = ("automatic", "manual"),
) -> PairedTables:
    """Match two ``{case_id: {index: value}}`` tables (:func:`read_index_table`) by case id.

    Parameters
    ----------
    automatic, manual : mapping
        The two tables.
    sources : tuple of str
        Names of the two tables (their files) for error messages.

    Returns
    -------
    PairedTables

    Raises
    ------
    InputError
        The tables have no case id in common.

    Examples
    --------
    >>> paired = pair_tables({"a": {"lv_ef_percent": 60.0}, "b": {"lv_ef_percent": 55.0}},
    ...                      {"b": {"lv_ef_percent": 57.0}, "c": {"lv_ef_percent": 50.0}})
    >>> paired.case_ids, paired.only_automatic, paired.only_manual, paired.manual["lv_ef_percent"].tolist()
    (('b',), ('a',), ('c',), [57.0])
    """
    common = tuple(case for case in automatic if case in manual)
    if not common:
        raise InputError(
            sources[1],
            f"no case id in common with {sources[0]} (ids there: {_some(automatic)}; here: {_some(manual)})",
        )

    def columns(table: Mapping[str, Mapping[str, float]]) -> dict[str, np.ndarray]:
        names = dict.fromkeys(name for case in table for name in table[case])
        return {name: np.array([table[case].get(name, math.nan) for case in common], dtype=float) for name in names}

    return PairedTables(
        case_ids=common,
        automatic=columns(automatic),
        manual=columns(manual),
        only_automatic=tuple(case for case in automatic if case not in manual),
        only_manual=tuple(case for case in manual if case not in automatic),
    )


def _some(ids: Iterable[str], limit: int = 3) -> str:
    listed = list(ids)
    shown = ", ".join(listed[:limit]) + (", ..." if len(listed) > limit else "")
    return shown or "none"


# ---------------------------------------------------------------------------- plots


def _figure() -> Any:
    """A matplotlib Figure drawn by the Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.5), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Any, path: PathLike, overwrite: bool) -> Path:
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        figure.savefig(tmp, format="png")
    return target


def _with_unit(text: str, unit: str) -> str:
    return f"{text} ({unit})" if unit else text


def plot_bland_altman(
    a: ArrayLike,
    b: ArrayLike,
    path: PathLike,
    name: str,
    unit: str = "",
    *,
    labels: tuple[str, str] = ("automatic", "manual"),
    overwrite: bool = False,
) -> Path:
    """Write a Bland-Altman plot (PNG): difference against mean of each pair, bias and limits of agreement.

    The bias (solid) and the 95 % limits (dashed) are drawn with their
    confidence intervals as shaded bands (:func:`bland_altman`).

    Parameters
    ----------
    a, b : array_like
        Automatic and manual values (finite, at least 3 pairs).
    path : str or PathLike
        Output PNG file.
    name : str
        Index name, for the title.
    unit : str
        Unit of the index, for the axis labels.
    labels : tuple of str
        Names of the two methods.
    overwrite : bool
        Replace an existing file (otherwise :class:`~opencmr.errors.OutputError`).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    x, y = _checked_pair(a, b)
    result = bland_altman(x, y)
    figure = _figure()
    ax = figure.add_subplot()
    ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle=":")
    ax.axhspan(*result.bias_ci, color="k", alpha=0.08, linewidth=0)
    ax.axhline(result.bias, color="k", linewidth=1.2, label=f"bias {result.bias:.3g}")
    for limit, ci in ((result.lower, result.lower_ci), (result.upper, result.upper_ci)):
        ax.axhspan(*ci, color="C3", alpha=0.08, linewidth=0)
        ax.axhline(limit, color="C3", linewidth=1.0, linestyle="--")
    ax.plot([], [], color="C3", linestyle="--", label=f"limits of agreement {result.lower:.3g} to {result.upper:.3g}")
    ax.scatter((x + y) / 2.0, x - y, s=20, color="C0", alpha=0.8, edgecolors="none", zorder=3)
    ax.set_xlabel(_with_unit(f"mean of {labels[0]} and {labels[1]}", unit))
    ax.set_ylabel(_with_unit(f"{labels[0]} - {labels[1]}", unit))
    ax.set_title(f"{name}: Bland-Altman (n = {result.n})")
    ax.legend(fontsize="small", loc="best", title=f"shaded: {100 * result.level:g} % CI", title_fontsize="small")
    return _save_png(figure, path, overwrite)


def plot_scatter(
    a: ArrayLike,
    b: ArrayLike,
    path: PathLike,
    name: str,
    unit: str = "",
    *,
    labels: tuple[str, str] = ("automatic", "manual"),
    overwrite: bool = False,
) -> Path:
    """Write a scatter plot (PNG) of automatic against manual values with identity and regression lines.

    The regression line is the least-squares fit of automatic on manual
    values (left out when the manual values are all equal); its legend gives
    the equation and Pearson's r.

    Parameters
    ----------
    a, b : array_like
        Automatic (vertical axis) and manual (horizontal axis) values.
    path, name, unit, labels, overwrite
        As for :func:`plot_bland_altman`.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    x, y = _checked_pair(a, b)
    figure = _figure()
    ax = figure.add_subplot()
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.05 * (high - low) or max(1.0, 0.05 * abs(high))
    low, high = low - pad, high + pad
    ax.plot([low, high], [low, high], color="0.5", linestyle="--", linewidth=1.0, label="identity")
    if np.ptp(y) > 0:
        slope, intercept = np.polyfit(y, x, 1)
        r = pearson(x, y).r
        ax.plot(
            [low, high], [slope * low + intercept, slope * high + intercept], color="C3", linewidth=1.2,
            label=f"{labels[0]} = {slope:.3g} × {labels[1]} {'+' if intercept >= 0 else '-'} {abs(intercept):.3g} "
            f"(r = {r:.3f})",
        )  # fmt: skip
    ax.scatter(y, x, s=20, color="C0", alpha=0.8, edgecolors="none", zorder=3)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(_with_unit(labels[1], unit))
    ax.set_ylabel(_with_unit(labels[0], unit))
    ax.set_title(f"{name} (n = {x.size})")
    ax.legend(fontsize="small", loc="upper left")
    return _save_png(figure, path, overwrite)
