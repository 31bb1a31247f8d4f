"""``report.html``: one self-contained HTML page with everything ``opencmr analyze`` found.

:func:`write_report` renders an :class:`~opencmr.analysis.AnalysisResult` into
a single file that opens offline in any browser and prints cleanly: inline
CSS, every picture a PNG ``data:`` URI, no script, font or link to anything
outside the file. Text from the input (patient name, series description, ...)
is HTML-escaped by Jinja2's autoescaping.

Sections: the research-software disclaimer; patient and study identifiers,
exactly as the input carries them ("not recorded" where it has none); the
segmentation over every slice at ED and ES; the volume curve; the measurements
with units and reference-range flags; the bull's-eye plots of wall thickness
and thickening; the diagnosis with probabilities and explanation; the QC
verdict with its reasons, per-slice verdicts and uncertainty; the model
versions and model-card summaries.

A study in which nothing could be measured (``measurements`` None) still gets
a report: identifiers, the images with whatever was segmented, and the QC
verdict with its reasons.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opencmr.io._atomic import atomic_output, check_writable
from opencmr.labels import Label
from opencmr.report import figures, sections

if TYPE_CHECKING:
    from opencmr.analysis import AnalysisResult

__all__ = ["DISCLAIMER", "REPORT_HTML", "render_report", "write_report"]

REPORT_HTML = "report.html"

DISCLAIMER = (
    "Research software, not a medical device. This report was produced automatically by opencmr and has not been "
    "reviewed by a clinician; it must not be used for diagnosis, treatment or any other clinical decision."
)

_LEGEND = (
    (Label.LV_BLOOD_POOL, "LV blood pool"),
    (Label.LV_MYOCARDIUM, "LV myocardium"),
    (Label.RV_BLOOD_POOL, "RV blood pool"),
)


class ModelLike(Protocol):
    """What the report reads from a segmentation model: ``name`` and ``info`` (PyTorch and ONNX models have both)."""

    @property
    def name(self) -> str: ...

    info: Mapping[str, Any]


def write_report(
    result: AnalysisResult,
    path: str | os.PathLike[str],
    *,
    segmentation_model: ModelLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the self-contained HTML report of one analysed study.

    Parameters
    ----------
    result : AnalysisResult
        What :func:`opencmr.analysis.analyze_study` returned; ``result.study.labels``
        holds the segmentation.
    path : str or PathLike
        The HTML file to write (``report.html`` by convention).
    segmentation_model : model, optional
        The segmentation model that produced the labels (``name`` and ``info``
        are shown); by default the bundled model, and the report says so.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputError
        ``path`` exists and ``overwrite`` is False (checked before any work),
        or it cannot be written.
    """
    target = Path(path)
    check_writable(target, overwrite)
    text = render_report(result, segmentation_model=segmentation_model)
    with atomic_output(target, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def render_report(result: AnalysisResult, *, segmentation_model: ModelLike | None = None) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("opencmr.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template("report.html.j2")
    return template.render(**_context(result, segmentation_model))


def _context(result: AnalysisResult, segmentation_model: ModelLike | None) -> dict[str, Any]:
    import opencmr

    study, measurements, diagnosis, qc = result.study, result.measurements, result.diagnosis, result.qc
    rows = [] if measurements is None else sections.measurement_rows(measurements)
    curve = None if measurements is None else figures.volume_curve_png(measurements, study.frame_times_ms)
    bullseyes = {} if measurements is None else figures.bullseye_pngs(measurements)
    case = study.metadata.patient_id or (study.metadata.source.name if study.metadata.source else None)
    return {
        "title": f"opencmr report: {case}" if case else "opencmr report",
        "disclaimer": DISCLAIMER,
        "version": opencmr.__version__,
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "identifiers": sections.identifier_fields(study),
        "acquisition": sections.acquisition_fields(study),
        "n_slices": study.n_slices,
        "reader_notes": list(study.metadata.notes),
        "legend": [(figures.LABEL_COLOURS[label], name) for label, name in _LEGEND],
        "phases": _phases(result),
        "measured": measurements is not None,
        "not_measured_reason": _not_measured_reason(qc),
        "measurement_rows": rows,
        "flagged": sections.flagged_count(rows),
        "phase_fields": [] if measurements is None else sections.phase_fields(measurements),
        "measurement_notes": [] if measurements is None else [*measurements.phases.notes, *measurements.notes],
        "volume_curve": None if curve is None else figures.data_uri(curve),
        "volume_curve_missing": _curve_missing(measurements),
        "bullseyes": [
            (title, figures.data_uri(bullseyes[key]))
            for key, title in (
                ("wall_thickness", "End-diastolic wall thickness"),
                ("thickening", "Systolic thickening"),
            )
            if key in bullseyes
        ],
        "diagnosis": diagnosis,
        "group_name": None
        if diagnosis is None or diagnosis.group is None
        else sections.GROUP_NAMES.get(diagnosis.group),
        "probabilities": [] if diagnosis is None or diagnosis.group is None else sections.diagnosis_rows(diagnosis),
        "qc": None if qc is None else sections.qc_summary(qc),
        "models": _models(result, segmentation_model),
    }


def _not_measured_reason(qc: Any) -> str:
    if qc is not None:
        for check in qc.checks:
            if check.name == "measurable" and check.status.value != "pass":
                return check.reason
        if qc.reasons:
            return qc.reasons[-1]
    return "no function could be measured from this segmentation"


def _curve_missing(measurements: Any) -> str:
    if measurements is None:
        return "nothing was measured"
    return f"only {len(measurements.curve.frame_numbers)} frames were segmented: a curve needs three or more"


def _phases(result: AnalysisResult) -> list[dict[str, Any]]:
    """The frames shown (ED and ES, or the first labelled frame when they are unknown), with one overlay per slice."""
    study = result.study
    frames = study.frame_numbers or tuple(range(study.n_frames))
    if result.measurements is not None:
        shown = [("ED", result.measurements.phases.ed_frame), ("ES", result.measurements.phases.es_frame)]
    else:
        meta = study.metadata
        shown = [
            (name, f) for name, f in (("ED", meta.ed_frame), ("ES", meta.es_frame)) if f is not None and f in frames
        ]
        if not shown:
            first = study.labels.frame_numbers[0] if study.labels is not None else frames[0]
            shown = [("frame", first)]
    labelled = (
        [study.labels.frame(f) for _, f in shown if f in study.labels.frame_numbers] if study.labels is not None else []
    )
    import numpy as np

    crop = figures.heart_crop(
        np.stack(labelled) if labelled else np.zeros((1, *study.geometry.shape), np.uint8),
        study.geometry.shape[1:],
        study.geometry.pixel_spacing_mm,
    )
    verdicts = _slice_verdicts(result.qc)
    out = []
    for name, frame in shown:
        images = figures.phase_overlays(study, frame, crop)
        out.append(
            {
                "name": name,
                "frame": frame,
                "title": f"{name} (frame {frame})" if name != "frame" else f"Frame {frame} (ED and ES not determined)",
                "slices": [
                    {
                        "index": s,
                        "uri": figures.data_uri(png),
                        "verdict": verdicts.get((frame, s)) or verdicts.get((None, s)) or "",
                    }
                    for s, png in enumerate(images)
                ],
            }
        )
    return out


def _slice_verdicts(qc: Any) -> dict[tuple[int | None, int], str]:
    if qc is None:
        return {}
    return {(entry["frame"], entry["slice"]): entry["verdict"] for entry in qc.slices}


def _models(result: AnalysisResult, segmentation_model: ModelLike | None) -> list[sections.ModelSummary]:
    from opencmr.diagnose.model import load_diagnosis_model

    if segmentation_model is None:
        from opencmr.segment.model import load_model

        segmentation_model, assumed = load_model(), True
    else:
        assumed = False
    info = dict(load_diagnosis_model().info)
    recorded = getattr(result.diagnosis, "model", None) or {}
    if recorded.get("name") not in (None, info.get("name")):
        info = dict(recorded)
    return [
        sections.segmentation_model_summary(segmentation_model.name, segmentation_model.info, assumed),
        sections.diagnosis_model_summary(info),
    ]
