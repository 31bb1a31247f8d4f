"""A whole diagnostic-test-accuracy meta-analysis: univariate (MetaDisc-style) and bivariate, tables, summary and plots.

:func:`dta_meta_analysis` runs both analyses on one set of studies;
:func:`write_dta_outputs` writes what ``opencmr meta dta --out DIR`` promises:
``per_study.csv``, ``univariate.csv``, ``bivariate.csv``, ``summary.json``,
``forest.png``/``.svg`` (paired sensitivity | specificity) and
``sroc.png``/``.svg``. :func:`add_evaluation` adds opencmr's own evaluation
(the ``two_by_two.csv`` that ``opencmr evaluate-diagnosis`` writes) as a study,
so that it is pooled with the literature and marked on the SROC plot.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.errors import InputError
from opencmr.io._atomic import atomic_output, check_writable, write_json
from opencmr.meta.bivariate import Reitsma, reitsma
from opencmr.meta.data import ContinuityCorrection, DtaStudies
from opencmr.meta.phm import phm
from opencmr.meta.summary_points import summary_points
from opencmr.meta.univariate import UnivariateDta, univariate_dta

__all__ = ["OUTPUT_FILES", "DtaMetaAnalysis", "add_evaluation", "dta_meta_analysis", "write_dta_outputs"]

OUTPUT_FILES = (
    "per_study.csv", "univariate.csv", "bivariate.csv", "summary.json",
    "forest.png", "forest.svg", "sroc.png", "sroc.svg",
)  # fmt: skip


@dataclass(frozen=True)
class DtaMetaAnalysis:
    """Both analyses of one set of studies, and which studies are opencmr's own evaluation."""

    studies: DtaStudies
    univariate: UnivariateDta
    bivariate: Reitsma | None
    highlighted: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    summary_points: Any = None
    """LR+/LR-/DOR sampled from the bivariate summary point (:func:`opencmr.meta.summary_points.summary_points`)."""
    phm: Any = None
    """The proportional hazards model (:func:`opencmr.meta.phm.phm`, heterogeneous)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "studies": list(self.studies.ids),
            "k": self.studies.k,
            "opencmr_studies": list(self.highlighted),
            "univariate": self.univariate.to_dict(),
            "bivariate": None if self.bivariate is None else self.bivariate.to_dict(),
            "summary_points": None if self.summary_points is None else self.summary_points.to_dict(),
            "phm": None if self.phm is None else self.phm.to_dict(),
            "notes": list(self.notes),
        }


def dta_meta_analysis(
    studies: DtaStudies,
    correction: ContinuityCorrection | None = None,
    *,
    method: str = "reml",
    convention: str = "textbook",
    level: float = 0.95,
    covariate: str | None = None,
    highlighted: tuple[str, ...] = (),
) -> DtaMetaAnalysis:
    """Univariate pooling, the bivariate model, its sampled summary LRs/DOR and the proportional hazards
    model (the last three when there are at least 3 studies) of ``studies``."""
    correction = correction or ContinuityCorrection()
    studies.require(2, "a meta-analysis")
    uni = univariate_dta(studies, correction, level, convention=convention)
    notes: list[str] = []
    bivariate = None
    points = proportional = None
    if studies.k >= 3:
        bivariate = reitsma(studies, correction, method=method, level=level, covariate=covariate)
        if covariate is None:
            points = summary_points(bivariate, level=level)
        proportional = phm(studies, correction, hetero=True, level=level)
    else:
        notes.append(f"the bivariate model needs at least 3 studies, got {studies.k}: univariate results only")
    return DtaMetaAnalysis(studies, uni, bivariate, highlighted, tuple(notes), points, proportional)


def add_evaluation(
    studies: DtaStudies, path: str | os.PathLike[str], group: str | None = None
) -> tuple[DtaStudies, tuple[str, ...]]:
    """``studies`` plus rows of a ``two_by_two.csv`` (``study,class,tp,fp,fn,tn``), named ``opencmr (CLASS)``.

    ``group`` picks one class (e.g. ``DCM``); by default every class is added.

    Raises
    ------
    InputError
        Missing file or columns, unknown class, counts that are not whole numbers.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "does not exist")
    with p.open(newline="", encoding="utf-8-sig") as handle:
        rows = [{k.strip().lower(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    needed = {"class", "tp", "fp", "fn", "tn"}
    if not rows or not needed <= set(rows[0]):
        raise InputError(
            p, "expected the columns study,class,tp,fp,fn,tn of 'opencmr evaluate-diagnosis' two_by_two.csv"
        )
    if group is not None:
        rows = [r for r in rows if r["class"].strip().upper() == group.strip().upper()]
        if not rows:
            raise InputError(p, f"has no row for class {group!r}")
    ids = tuple(f"opencmr ({r['class'].strip()})" for r in rows)
    added = DtaStudies.from_records(
        [{"study": i, "TP": r["tp"], "FP": r["fp"], "FN": r["fn"], "TN": r["tn"]} for i, r in zip(ids, rows)],
        source=str(p),
    )
    covariates = {name: (*values, *([None] * added.k)) for name, values in studies.covariates.items()}
    merged = DtaStudies(
        studies.ids + added.ids,
        *(np.concatenate([getattr(studies, c), getattr(added, c)]) for c in ("tp", "fp", "fn", "tn")),
        covariates=covariates,
        source=studies.source,
    )
    return merged, ids


def _write_csv(rows: list[dict[str, Any]], path: Path, overwrite: bool) -> None:
    with atomic_output(path, overwrite) as tmp, tmp.open("w", newline="") as handle:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(str(_cell(v)) for v in value)
    return value


def _rows(frame: Any) -> list[dict[str, Any]]:
    return frame.to_dict("records") if hasattr(frame, "to_dict") and not isinstance(frame, list) else list(frame)


def write_dta_outputs(
    analysis: DtaMetaAnalysis, out_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> list[Path]:
    """Write the tables, ``summary.json`` and the plots (see the module docstring); all are checked before any is written."""
    from opencmr.meta.plots import plot_paired_forest
    from opencmr.meta.sroc_plot import plot_sroc

    out = Path(out_dir)
    targets = {name: out / name for name in OUTPUT_FILES}
    for path in targets.values():
        check_writable(path, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(_rows(analysis.univariate.per_study.summary_frame()), targets["per_study.csv"], overwrite)
    _write_csv(_rows(analysis.univariate.summary_frame()), targets["univariate.csv"], overwrite)
    bivariate_rows = [] if analysis.bivariate is None else _rows(analysis.bivariate.summary_frame())
    _write_csv(
        bivariate_rows or [{"note": "no bivariate model (fewer than 3 studies)"}], targets["bivariate.csv"], overwrite
    )
    write_json(targets["summary.json"], analysis.to_dict(), overwrite)
    written = [targets[n] for n in ("per_study.csv", "univariate.csv", "bivariate.csv", "summary.json")]
    for suffix in ("png", "svg"):
        written.append(
            plot_paired_forest(
                analysis.univariate.per_study, analysis.univariate, targets[f"forest.{suffix}"], overwrite=overwrite
            )
        )
        if analysis.bivariate is not None and analysis.bivariate.hsroc is not None:
            extra = _highlighted_points(analysis)
            written.append(
                plot_sroc(
                    analysis.bivariate,
                    analysis.studies,
                    targets[f"sroc.{suffix}"],
                    extra_points=extra,
                    overwrite=overwrite,
                )
            )
    return written


def _highlighted_points(analysis: DtaMetaAnalysis) -> dict[str, tuple[float, float]]:
    ps = analysis.univariate.per_study
    return {
        study: (float(ps.sensitivity[i]), float(ps.fpr[i]))
        for i, study in enumerate(ps.ids)
        if study in analysis.highlighted
    }
