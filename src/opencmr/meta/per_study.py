"""Per-study accuracy of a diagnostic test: sensitivity, specificity, likelihood ratios and DOR with CIs.

What MetaDisc 1.4 and mada's ``madad`` report for each study of a
diagnostic-test-accuracy review, computed on the continuity-corrected counts
where the correction applies (the correction is recorded in the result).

References
----------
.. [1] E. B. Wilson, "Probable inference, the law of succession, and
   statistical inference", J Am Stat Assoc 22, 1927, 209-212,
   doi:10.1080/01621459.1927.10502953.
.. [2] C. J. Clopper and E. S. Pearson, "The use of confidence or fiducial
   limits illustrated in the case of the binomial", Biometrika 26, 1934,
   404-413, doi:10.1093/biomet/26.4.404.
.. [3] D. L. Simel, G. P. Samsa and D. B. Matchar, "Likelihood ratios with
   confidence: sample size estimation for diagnostic test studies",
   J Clin Epidemiol 44, 1991, 763-770, doi:10.1016/0895-4356(91)90128-v.
.. [4] B. Woolf, "On estimating the relation between blood group and
   disease", Ann Hum Genet 19, 1955, 251-253,
   doi:10.1111/j.1469-1809.1955.tb01348.x.
.. [5] J. J. Deeks, "Systematic reviews of evaluations of diagnostic and
   screening tests", BMJ 323, 2001, 157-162, doi:10.1136/bmj.323.7305.157.
.. [6] P. Doebler, mada: Meta-Analysis of Diagnostic Accuracy, R package
   0.5.12 (``madad``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from scipy import stats

from opencmr.meta.data import ContinuityCorrection, DtaStudies

__all__ = ["PerStudy", "ProportionCi", "per_study", "proportion_ci", "records_frame"]

_DEFAULT_CORRECTION = ContinuityCorrection()  # frozen, safe as a default


class ProportionCi(str, Enum):
    """How the CI of a proportion (sensitivity, specificity, FPR) is computed."""

    WILSON = "wilson"
    """Wilson score interval (mada's default)."""
    CLOPPER_PEARSON = "clopper-pearson"
    """Exact binomial (Clopper-Pearson) interval (MetaDisc 1.4, per its manual)."""


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return float(stats.norm.ppf(0.5 + level / 2))


def proportion_ci(
    x: np.ndarray | float, n: np.ndarray | float, level: float = 0.95, method: ProportionCi | str = "wilson"
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper confidence limits of ``x / n`` (``x`` may be a corrected, non-integer count).

    Examples
    --------
    >>> lo, hi = proportion_ci(47.5, 57.0)  # mada's AuditC study 1, corrected counts
    >>> print(f"{float(lo):.3f} {float(hi):.3f}")
    0.716 0.908
    """
    method = ProportionCi(method)
    x = np.asarray(x, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    alpha = 1 - level
    if method is ProportionCi.WILSON:
        z = _z(level)
        center = (x + z**2 / 2) / (n + z**2)
        half = z * np.sqrt(x * (n - x) / n + z**2 / 4) / (n + z**2)
        return np.clip(center - half, 0, 1), np.clip(center + half, 0, 1)
    _z(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(x <= 0, 0.0, stats.beta.ppf(alpha / 2, x, n - x + 1))
        upper = np.where(x >= n, 1.0, stats.beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lower, upper


_binomial_ci = proportion_ci  # the name ``proportion_ci`` is also an argument of per_study


def _ratio_ci(ratio: np.ndarray, se_log: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", over="ignore"):
        return ratio * np.exp(-z * se_log), ratio * np.exp(z * se_log)


@dataclass(frozen=True)
class PerStudy:
    """Per-study accuracy with confidence intervals (all arrays of length ``k``).

    Ratios of a study with a zero cell that was not corrected are ``inf`` or
    ``nan`` (and their CIs too); ``to_dict`` writes them as ``None``.

    Attributes
    ----------
    ids : tuple of str
    counts : numpy.ndarray
        ``(k, 4)`` counts used (TP, FP, FN, TN), continuity-corrected where ``corrected``.
    raw_counts : numpy.ndarray
        ``(k, 4)`` counts as given.
    corrected : numpy.ndarray of bool
        Whether each study's cells were corrected.
    correction : ContinuityCorrection
    level : float
    proportion_ci : ProportionCi
    sensitivity, specificity, fpr, positive_lr, negative_lr, dor : numpy.ndarray
        Estimates.
    sensitivity_ci, specificity_ci, fpr_ci, positive_lr_ci, negative_lr_ci, dor_ci : numpy.ndarray
        ``(k, 2)`` lower and upper limits.
    se_log_positive_lr, se_log_negative_lr, se_log_dor : numpy.ndarray
        Standard errors on the log scale (Simel 1991; Woolf 1955).
    """

    ids: tuple[str, ...]
    counts: np.ndarray
    raw_counts: np.ndarray
    corrected: np.ndarray
    correction: ContinuityCorrection
    level: float
    proportion_ci: ProportionCi
    sensitivity: np.ndarray
    sensitivity_ci: np.ndarray
    specificity: np.ndarray
    specificity_ci: np.ndarray
    fpr: np.ndarray
    fpr_ci: np.ndarray
    positive_lr: np.ndarray
    positive_lr_ci: np.ndarray
    negative_lr: np.ndarray
    negative_lr_ci: np.ndarray
    dor: np.ndarray
    dor_ci: np.ndarray
    se_log_positive_lr: np.ndarray
    se_log_negative_lr: np.ndarray
    se_log_dor: np.ndarray

    @property
    def k(self) -> int:
        return len(self.ids)

    def records(self) -> list[dict[str, Any]]:
        """One dict per study: counts used, estimates and CI limits (plain floats)."""
        rows = []
        for i, study in enumerate(self.ids):
            row: dict[str, Any] = {"study": study}
            for j, name in enumerate(("TP", "FP", "FN", "TN")):
                row[name] = float(self.counts[i, j])
            row["corrected"] = bool(self.corrected[i])
            for name in ("sensitivity", "specificity", "fpr", "positive_lr", "negative_lr", "dor"):
                ci = getattr(self, f"{name}_ci")
                row[name] = float(getattr(self, name)[i])
                row[f"{name}_lower"] = float(ci[i, 0])
                row[f"{name}_upper"] = float(ci[i, 1])
            rows.append(row)
        return rows

    def summary_frame(self) -> Any:
        """A pandas DataFrame (one row per study) when pandas is installed, else :meth:`records`."""
        return records_frame(self.records(), index="study")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the correction used, the CI methods and the per-study rows (non-finite -> None)."""
        return {
            "correction": self.correction.to_dict(),
            "correction_applied": self.correction.describe(self.raw_counts),
            "level": self.level,
            "proportion_ci": self.proportion_ci.value,
            "ratio_ci": "log method (Simel 1991 for LRs, Woolf for DOR)",
            "studies": [{k: _json(v) for k, v in row.items()} for row in self.records()],
        }


def _json(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def records_frame(rows: Sequence[dict[str, Any]], index: str | None = None) -> Any:
    """``rows`` as a pandas DataFrame when pandas is installed (optional), else the list itself."""
    try:
        import pandas as pd
    except ImportError:
        return list(rows)
    frame = pd.DataFrame(list(rows))
    return frame.set_index(index) if index is not None and index in frame else frame


def per_study(
    studies: DtaStudies,
    correction: ContinuityCorrection = _DEFAULT_CORRECTION,
    level: float = 0.95,
    proportion_ci: ProportionCi | str = ProportionCi.WILSON,
) -> PerStudy:
    """Sensitivity, specificity, FPR, LR+, LR- and DOR of each study, with CIs.

    Proportions get Wilson (default, as mada) or Clopper-Pearson CIs; the
    ratios get log-method CIs with SE ln LR+ = sqrt(1/TP - 1/(TP+FN) + 1/FP -
    1/(FP+TN)), SE ln LR- = sqrt(1/FN - 1/(TP+FN) + 1/TN - 1/(FP+TN)) (Simel
    1991) and SE ln DOR = sqrt(1/TP + 1/FP + 1/FN + 1/TN) (Woolf 1955). All are
    computed on the corrected counts of the studies ``correction`` selects.

    Examples
    --------
    >>> import numpy as np
    >>> s = DtaStudies(("a", "b"), np.array([47, 126]), np.array([101, 272]), np.array([9, 51]), np.array([738, 1543]))
    >>> r = per_study(s)
    >>> print(f"{r.dor[0]:.3f} [{r.dor_ci[0, 0]:.3f}, {r.dor_ci[0, 1]:.3f}]")
    38.158 [18.154, 80.205]
    """
    method = ProportionCi(proportion_ci)
    z = _z(level)
    raw = studies.counts()
    counts = correction.apply(raw)
    tp, fp, fn, tn = counts.T
    n_dis, n_hea = tp + fn, fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        sens, spec, fpr = tp / n_dis, tn / n_hea, fp / n_hea
        plr = sens / fpr
        nlr = (1 - sens) / spec
        dor = (tp * tn) / (fp * fn)
        se_plr = np.sqrt(1 / tp - 1 / n_dis + 1 / fp - 1 / n_hea)
        se_nlr = np.sqrt(1 / fn - 1 / n_dis + 1 / tn - 1 / n_hea)
        se_dor = np.sqrt(1 / tp + 1 / fp + 1 / fn + 1 / tn)

    def ci(x: np.ndarray, n: np.ndarray) -> np.ndarray:
        return np.column_stack(_binomial_ci(x, n, level, method))

    return PerStudy(
        ids=studies.ids,
        counts=counts,
        raw_counts=raw,
        corrected=correction.corrected_rows(raw),
        correction=correction,
        level=level,
        proportion_ci=method,
        sensitivity=sens,
        sensitivity_ci=ci(tp, n_dis),
        specificity=spec,
        specificity_ci=ci(tn, n_hea),
        fpr=fpr,
        fpr_ci=ci(fp, n_hea),
        positive_lr=plr,
        positive_lr_ci=np.column_stack(_ratio_ci(plr, se_plr, z)),
        negative_lr=nlr,
        negative_lr_ci=np.column_stack(_ratio_ci(nlr, se_nlr, z)),
        dor=dor,
        dor_ci=np.column_stack(_ratio_ci(dor, se_dor, z)),
        se_log_positive_lr=se_plr,
        se_log_negative_lr=se_nlr,
        se_log_dor=se_dor,
    )
