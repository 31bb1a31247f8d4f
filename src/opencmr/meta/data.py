"""Input of a diagnostic-test-accuracy meta-analysis: studies' 2x2 tables, validated, and the continuity correction.

A study is one 2x2 table: true positives (TP), false positives (FP), false
negatives (FN) and true negatives (TN), with an id and optional study-level
covariates. :class:`DtaStudies` validates them once, with errors that name the
file, the study and the problem; :class:`ContinuityCorrection` says what is
added to which cells, and is recorded in every result.

References
----------
.. [1] P. Doebler, mada: Meta-Analysis of Diagnostic Accuracy, R package
   (``correction``, ``correction.control = "all" | "single" | "none"``).
.. [2] J. B. Reitsma et al., "Bivariate analysis of sensitivity and
   specificity produces informative summary measures in diagnostic reviews",
   J Clin Epidemiol 58, 2005, 982-990, doi:10.1016/j.jclinepi.2005.02.022.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from opencmr.errors import InputError

__all__ = ["COUNT_COLUMNS", "ContinuityCorrection", "CorrectionScope", "DtaStudies", "read_dta_csv"]

COUNT_COLUMNS = ("TP", "FP", "FN", "TN")
_ID_COLUMNS = ("study", "id", "author", "study_id", "name")


class CorrectionScope(str, Enum):
    """Which studies get the continuity correction (mada's ``correction.control``)."""

    ALL = "all"
    """Every cell of every study, when any cell of any study is zero (mada's default)."""
    SINGLE = "single"
    """Every cell of the studies that have a zero cell (metafor, MetaDisc)."""
    NONE = "none"
    """No correction (zero cells stay zero; ratios of such studies are undefined)."""


@dataclass(frozen=True)
class ContinuityCorrection:
    """``value`` added to cells of the studies chosen by ``scope``; recorded in every result."""

    value: float = 0.5
    scope: CorrectionScope = CorrectionScope.ALL

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", CorrectionScope(self.scope))
        if not (self.value >= 0 and np.isfinite(self.value)):
            raise ValueError(f"continuity correction must be a non-negative number, got {self.value}")

    def corrected_rows(self, counts: np.ndarray) -> np.ndarray:
        """Boolean per study: whether its cells are corrected (``counts``: ``(k, 4)``)."""
        zero = np.any(counts == 0, axis=1)
        if self.scope is CorrectionScope.NONE or self.value == 0:
            return np.zeros(len(counts), bool)
        if self.scope is CorrectionScope.ALL:
            return np.full(len(counts), bool(zero.any()))
        return zero

    def apply(self, counts: np.ndarray) -> np.ndarray:
        """Corrected counts (float ``(k, 4)`` in TP, FP, FN, TN order)."""
        counts = np.asarray(counts, dtype=np.float64)
        return counts + self.value * self.corrected_rows(counts)[:, None]

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "scope": self.scope.value}

    def describe(self, counts: np.ndarray) -> str:
        rows = self.corrected_rows(np.asarray(counts))
        if not rows.any():
            return "no continuity correction needed (no zero cells)" if self.scope is not CorrectionScope.NONE else "no continuity correction"
        return f"{self.value} added to every cell of {int(rows.sum())} of {len(rows)} studies ({self.scope.value})"


@dataclass(frozen=True)
class DtaStudies:
    """Validated 2x2 tables of ``k`` studies.

    Parameters
    ----------
    ids : tuple of str
        Study identifiers (unique).
    tp, fp, fn, tn : numpy.ndarray
        Non-negative integer counts, one per study.
    covariates : mapping of str to tuple
        Study-level covariates by name (values as read: numbers or text).
    source : str, optional
        Where they were read from (for messages).
    """

    ids: tuple[str, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    covariates: Mapping[str, tuple[object, ...]] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        where = self.source or "studies"
        arrays = {}
        for name in ("tp", "fp", "fn", "tn"):
            raw = np.asarray(getattr(self, name))
            values = raw.astype(np.float64)
            if values.shape != (len(self.ids),):
                raise InputError(where, f"{name.upper()} has {values.size} values for {len(self.ids)} studies")
            bad = [i for i, v in enumerate(values) if not (np.isfinite(v) and v >= 0 and v == round(v))]
            if bad:
                i = bad[0]
                raise InputError(where, f"study {self.ids[i]!r}: {name.upper()} = {raw[i]} is not a non-negative whole count")
            arrays[name] = values.astype(np.int64)
        for i, study in enumerate(self.ids):
            if arrays["tp"][i] + arrays["fn"][i] == 0:
                raise InputError(where, f"study {study!r} has no diseased subjects (TP + FN = 0)")
            if arrays["fp"][i] + arrays["tn"][i] == 0:
                raise InputError(where, f"study {study!r} has no healthy subjects (FP + TN = 0)")
        if len(set(self.ids)) != len(self.ids):
            dup = next(s for s in self.ids if self.ids.count(s) > 1)
            raise InputError(where, f"study id {dup!r} appears more than once")
        for name, values in self.covariates.items():
            if len(values) != len(self.ids):
                raise InputError(where, f"covariate {name!r} has {len(values)} values for {len(self.ids)} studies")
        for name, values in arrays.items():
            values.setflags(write=False)
            object.__setattr__(self, name, values)

    @property
    def k(self) -> int:
        """Number of studies."""
        return len(self.ids)

    def counts(self) -> np.ndarray:
        """``(k, 4)`` integer counts in TP, FP, FN, TN order."""
        return np.stack([self.tp, self.fp, self.fn, self.tn], axis=1)

    def require(self, minimum: int, what: str) -> None:
        """Raise a clear error when there are fewer than ``minimum`` studies for ``what``."""
        if self.k < minimum:
            raise InputError(self.source or "studies", f"{what} needs at least {minimum} studies, got {self.k}")

    @classmethod
    def from_records(
        cls, records: Sequence[Mapping[str, object]], source: str | None = None, id_column: str | None = None
    ) -> DtaStudies:
        """From dicts with TP, FP, FN, TN (any case) and an id; other keys become covariates."""
        where = source or "studies"
        if not records:
            raise InputError(where, "holds no studies")
        keys = list(records[0])
        lower = {k.lower(): k for k in keys}
        missing = [c for c in COUNT_COLUMNS if c.lower() not in lower]
        if missing:
            raise InputError(where, f"missing column(s) {', '.join(missing)} (need TP, FP, FN, TN and a study id)")
        if id_column is not None and id_column not in keys:
            raise InputError(where, f"no id column {id_column!r} (columns: {', '.join(keys)})")
        ident = id_column or next((lower[c] for c in _ID_COLUMNS if c in lower), None)
        count_keys = [lower[c.lower()] for c in COUNT_COLUMNS]
        values = {c: [] for c in COUNT_COLUMNS}
        ids = []
        for n, record in enumerate(records, start=1):
            ids.append(str(record[ident]).strip() if ident is not None else f"study {n}")
            for column, key in zip(COUNT_COLUMNS, count_keys):
                values[column].append(_number(where, ids[-1], column, record.get(key)))
        others = [k for k in keys if k not in count_keys and k != ident]
        covariates = {k: tuple(_maybe_number(r.get(k)) for r in records) for k in others}
        return cls(tuple(ids), *(np.array(values[c]) for c in COUNT_COLUMNS), covariates=covariates, source=source)


def _number(where: str, study: str, column: str, value: object) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InputError(where, f"study {study!r}: {column} = {value!r} is not a number") from None
    return number


def _maybe_number(value: object) -> object:
    try:
        return float(str(value))
    except ValueError:
        return value


def read_dta_csv(path: str | os.PathLike[str], id_column: str | None = None) -> DtaStudies:
    """Read studies from a CSV file with columns TP, FP, FN, TN (any case, any order), an id and covariates.

    The id column is ``id_column``, else the first of study/id/author/study_id/name, else the row
    number (``study 1``, ...); every other column is a covariate.

    Raises
    ------
    InputError
        Missing file or columns, non-numeric, negative or fractional counts,
        a study without diseased or without healthy subjects, duplicate ids.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "does not exist" if not p.exists() else "is not a file")
    with p.open(newline="", encoding="utf-8-sig") as handle:
        records = list(csv.DictReader(handle))
    return DtaStudies.from_records(records, source=str(p), id_column=id_column)
