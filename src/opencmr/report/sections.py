"""What each section of the report shows, as plain typed rows the template lays out.

One function per section; each takes the analysis' own objects and returns
small frozen dataclasses (or lists of them) of already-formatted text, so the
template does no arithmetic and every number's rounding and unit is decided
here, once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opencmr.io.study import CineStudy
from opencmr.measure.function import Measurements
from opencmr.measure.units import unit_of

__all__ = [
    "GROUP_NAMES",
    "NOT_RECORDED",
    "Field",
    "ModelSummary",
    "ProbabilityRow",
    "QcSummary",
    "SliceRow",
    "ValueRow",
    "diagnosis_model_summary",
    "diagnosis_rows",
    "format_number",
    "frame_list",
    "identifier_fields",
    "measurement_rows",
    "merge_similar",
    "qc_summary",
    "segmentation_model_summary",
    "unit_of",
]

NOT_RECORDED = "not recorded"

#: Full names of the diagnostic groups (ACDC).
GROUP_NAMES: Mapping[str, str] = {
    "NOR": "normal",
    "DCM": "dilated cardiomyopathy",
    "HCM": "hypertrophic cardiomyopathy",
    "MINF": "previous myocardial infarction",
    "RV": "abnormal right ventricle",
}

#: Display names of the measurement keys (a key without one is shown as itself).
_NAMES: Mapping[str, str] = {
    "lv_edv_ml": "LV end-diastolic volume",
    "lv_esv_ml": "LV end-systolic volume",
    "lv_sv_ml": "LV stroke volume",
    "lv_ef_percent": "LV ejection fraction",
    "rv_edv_ml": "RV end-diastolic volume",
    "rv_esv_ml": "RV end-systolic volume",
    "rv_sv_ml": "RV stroke volume",
    "rv_ef_percent": "RV ejection fraction",
    "lv_mass_g": "LV mass",
    "lv_myocardial_volume_ed_ml": "LV myocardial volume at ED",
    "lv_co_l_min": "LV cardiac output",
    "bsa_m2": "Body-surface area",
    "max_wall_thickness_mm": "Maximal LV wall thickness",
}


def name_of(key: str) -> str:
    """Display name of a measurement key; indexed keys (``..._m2``) are "<name> index"."""
    if key in _NAMES:
        return _NAMES[key]
    if key.endswith("_m2") and key[: -len("_m2")] in _NAMES:
        return _NAMES[key[: -len("_m2")]] + " index"
    return key


def format_number(value: float | None, digits: int = 1) -> str:
    """A number for a table cell: ``digits`` decimals, ``"—"`` for None or NaN.

    Examples
    --------
    >>> format_number(51.234), format_number(None), format_number(1.876, 2)
    ('51.2', '—', '1.88')
    """
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.{digits}f}"


@dataclass(frozen=True)
class Field:
    """One labelled line of text (``recorded`` False when the value is "not recorded")."""

    label: str
    value: str
    recorded: bool = True


def _field(label: str, value: Any) -> Field:
    if value is None or (isinstance(value, str) and not value.strip()):
        return Field(label, NOT_RECORDED, recorded=False)
    return Field(label, str(value))


def _quantity(value: float | None, unit: str) -> str | None:
    """``"175 cm"`` for a recorded value, None (shown as not recorded) for a missing one."""
    return None if value is None else f"{value:g} {unit}"


def identifier_fields(study: CineStudy) -> list[Field]:
    """Patient and study identifiers exactly as the input carries them; ``not recorded`` where it has none."""
    meta = study.metadata
    return [
        _field("Patient ID", meta.patient_id),
        _field("Patient name", meta.patient_name),
        _field("Study date", meta.study_date),
        _field("Study instance UID", meta.study_uid),
        _field("Series instance UID", meta.series_uid),
        _field("Series description", meta.series_description),
        _field("Source", meta.source),
        _field("Source format", meta.source_format),
    ]


def acquisition_fields(study: CineStudy) -> list[Field]:
    """Grid, frames and the subject data the input records."""
    meta = study.metadata
    geometry = study.geometry
    rows, cols = geometry.pixel_spacing_mm
    frames = study.frame_numbers or ()
    thickness = geometry.slice_thickness_mm
    return [
        Field("Slices × rows × columns", " × ".join(str(n) for n in geometry.shape)),
        Field("Pixel spacing", f"{rows:.2f} × {cols:.2f} mm"),
        Field("Slice spacing", f"{geometry.slice_spacing_mm:.2f} mm"),
        _field("Slice thickness", None if thickness is None else f"{thickness:.2f} mm"),
        Field("Frames held", f"{len(frames)}" + ("" if not frames else f" (numbers {frames[0]}–{frames[-1]})")),
        _field("Frames acquired", meta.n_frames_acquired),
        _field("Height", _quantity(meta.height_cm, "cm")),
        _field("Weight", _quantity(meta.weight_kg, "kg")),
        _field("Sex", meta.sex),
        _field("Heart rate", _quantity(meta.heart_rate_bpm, "bpm")),
    ]


@dataclass(frozen=True)
class ValueRow:
    """One measurement: key, name, value text, unit, reference range and flag."""

    key: str
    name: str
    value: str
    unit: str
    reference: str = ""
    status: str = ""
    """``low``, ``normal``, ``high``, ``unknown`` or ``""`` (no reference range)."""
    flag_text: str = ""


def measurement_rows(measurements: Measurements) -> list[ValueRow]:
    """Every measurement key, in the order of :attr:`Measurements.values`, with its unit and flag."""
    flags = {flag.index: flag for flag in measurements.flags}
    rows = []
    for key, value in measurements.values.items():
        digits = 2 if key.startswith("bsa") or "_l_min" in key else 1
        flag = flags.get(key)
        reference, status, text = "", "", ""
        if flag is not None:
            low = "" if flag.lower is None else format_number(flag.lower)
            high = "" if flag.upper is None else format_number(flag.upper)
            reference = f"{low}–{high}" if low and high else (f"≥ {low}" if low else f"< {high}")
            status, text = flag.status.value, flag.text
        rows.append(ValueRow(key, name_of(key), format_number(value, digits), unit_of(key), reference, status, text))
    return rows


def phase_fields(measurements: Measurements) -> list[Field]:
    """ED and ES frames, how they were chosen, and the conventions behind the numbers."""
    subject = measurements.subject
    return [
        Field("ED frame", str(measurements.phases.ed_frame)),
        Field("ES frame", str(measurements.phases.es_frame)),
        Field("ED/ES chosen by", measurements.phases.rule.value),
        Field("Volume method", measurements.curve.method.value),
        Field("BSA formula", subject.bsa_formula.value),
        _field("Sex used for reference ranges", subject.sex),
        _field("Height used", _quantity(subject.height_cm, "cm")),
        _field("Weight used", _quantity(subject.weight_kg, "kg")),
        _field("Heart rate used", _quantity(subject.heart_rate_bpm, "bpm")),
    ]


@dataclass(frozen=True)
class ProbabilityRow:
    """One diagnostic group's probability, as text and as a bar width in percent."""

    group: str
    name: str
    percent: str
    width: float
    chosen: bool


def diagnosis_rows(diagnosis: Any) -> list[ProbabilityRow]:
    """Probabilities of a :class:`~opencmr.diagnose.predict.Diagnosis`, most probable first."""
    items = sorted(diagnosis.probabilities.items(), key=lambda item: -item[1])
    return [
        ProbabilityRow(
            group=group,
            name=GROUP_NAMES.get(group, group),
            percent=f"{100 * p:.1f} %",
            width=round(max(0.0, min(1.0, p)) * 100, 1),
            chosen=group == diagnosis.group,
        )
        for group, p in items
    ]


@dataclass(frozen=True)
class SliceRow:
    """One slice the QC flagged in any frame: its worst verdict, the frames and the reasons (similar ones merged)."""

    slice: int
    verdict: str
    frames: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class QcSummary:
    """QC verdict and what supports it, ready to show."""

    verdict: str
    reasons: tuple[str, ...]
    findings: tuple[str, ...]
    """Slice-level findings that did not raise the study verdict (``qc.json`` ``findings``)."""
    check_counts: Mapping[str, int]
    slices_flagged: Mapping[str, int]
    """Number of slices whose worst verdict over the frames is ``review`` / ``fail``."""
    slices: tuple[SliceRow, ...]
    """The flagged slices, in slice order (at most ``limit``)."""
    slices_left_out: int
    uncertainty: tuple[Field, ...]
    notes: tuple[str, ...]


_SEVERITY = {"pass": 0, "review": 1, "fail": 2}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FRAME_MENTION = re.compile(r" \(frames? \d+(?:, \d+)*\)")


def frame_list(frames: Sequence[int]) -> str:
    """Frame numbers as short ranges.

    Examples
    --------
    >>> frame_list([0, 1, 2, 3, 5, 7, 8])
    '0–3, 5, 7–8'
    """
    parts: list[str] = []
    ordered = sorted(set(frames))
    start = previous = None
    for frame in [*ordered, None]:
        if frame is not None and previous is not None and frame == previous + 1:
            previous = frame
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}–{previous}")
        start = previous = frame
    return ", ".join(parts)


def merge_similar(reasons: Sequence[str]) -> list[str]:
    """Reasons that differ only in their numbers as one sentence, each differing number shown as its range.

    A mention of the frame (``" (frame 3)"``) is dropped first: the table gives the frames.

    Examples
    --------
    >>> merge_similar(["entropy 0.29 on this slice", "entropy 0.34 on this slice", "RV 6 mm away (frame 3)"])
    ['entropy 0.29–0.34 on this slice', 'RV 6 mm away']
    """
    groups: dict[str, list[str]] = {}
    for reason in (_FRAME_MENTION.sub("", text) for text in reasons):
        groups.setdefault(_NUMBER.sub("#", reason), []).append(reason)
    out = []
    for texts in groups.values():
        numbers = [_NUMBER.findall(text) for text in texts]
        shown = []
        for column in zip(*numbers):
            low, high = min(column, key=float), max(column, key=float)
            shown.append(low if float(low) == float(high) else f"{low}–{high}")
        pieces = _NUMBER.split(texts[0])
        out.append("".join(piece + (shown[i] if i < len(shown) else "") for i, piece in enumerate(pieces)))
    return out


def qc_summary(qc: Any, limit: int = 40) -> QcSummary:
    """Summarise a :class:`~opencmr.qc.verdict.QcReport` from its :meth:`~opencmr.qc.verdict.QcReport.to_dict`."""
    doc = qc.to_dict()
    by_slice: dict[int, list[Mapping[str, Any]]] = {}
    for entry in doc["slices"]:
        if entry["verdict"] != "pass":
            by_slice.setdefault(int(entry["slice"]), []).append(entry)
    rows = []
    for index in sorted(by_slice):
        entries = by_slice[index]
        frames = [e["frame"] for e in entries if e["frame"] is not None]
        whole = any(e["frame"] is None for e in entries)
        rows.append(
            SliceRow(
                slice=index,
                verdict=max((e["verdict"] for e in entries), key=_SEVERITY.__getitem__),
                frames=", ".join(filter(None, ["all" if whole else "", frame_list(frames)])),
                reasons=tuple(merge_similar(list(dict.fromkeys(r for e in entries for r in e["reasons"])))),
            )
        )
    return QcSummary(
        verdict=doc["verdict"],
        reasons=tuple(doc["reasons"]),
        findings=tuple(doc.get("findings", ())),
        check_counts=_counts(check["status"] for check in doc["checks"]),
        slices_flagged=_counts(row.verdict for row in rows),
        slices=tuple(rows[:limit]),
        slices_left_out=max(0, len(rows) - limit),
        uncertainty=tuple(_estimate_fields(doc) + _uncertainty_fields(doc["uncertainty"])),
        notes=tuple(doc["notes"]),
    )


def _counts(statuses: Any) -> dict[str, int]:
    counts = {"pass": 0, "review": 0, "fail": 0}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def _estimate_fields(doc: Mapping[str, Any]) -> list[Field]:
    """The calibrated Dice estimate and the QC score, when ``qc.json`` has them."""
    estimate = doc.get("estimated_dice")
    if estimate is None:
        return []
    threshold = (doc.get("thresholds") or {}).get("estimated_dice_review")
    review = "" if threshold is None else f" (review below {threshold:g})"
    return [
        Field("Estimated Dice (calibrated)", format_number(estimate, 3) + review),
        Field("QC score (1 − estimated Dice)", format_number(doc.get("qc_score"), 3)),
    ]


def _uncertainty_fields(doc: Mapping[str, Any] | None) -> list[Field]:
    if doc is None:
        return [Field("Uncertainty", "not computed (segmentation given, not predicted)", recorded=False)]
    study = doc["study"]
    fields = [
        Field(
            "Mean entropy over the heart",
            "no heart region segmented"
            if study["entropy"] is None
            else format_number(study["entropy"], 3) + " (0 certain, 1 uniform)",
        ),
        Field(
            f"Voxels above entropy {doc['threshold']:g}",
            "—" if study["uncertain_fraction"] is None else f"{100 * study['uncertain_fraction']:.1f} %",
        ),
        Field("Test-time views", str(doc["n_views"])),
    ]
    dice = doc.get("expected_dice")
    if dice:
        parts = ", ".join(f"{name.upper()} {format_number(value, 3)}" for name, value in dice["structures"].items())
        fields.append(Field("Expected Dice (mean)", format_number(dice["mean"], 3)))
        fields.append(Field("Expected Dice per structure", parts))
    return fields


@dataclass(frozen=True)
class ModelSummary:
    """A model's name and a few lines of its model card."""

    role: str
    name: str
    lines: tuple[str, ...]
    card: str
    """Where the full model card is, inside the package."""


def segmentation_model_summary(name: str, info: Mapping[str, Any], assumed: bool) -> ModelSummary:
    """Name, training data and validation Dice of the segmentation model, from its ``info``."""
    lines = []
    if assumed:
        lines.append("The model used was not given to the report: this is the bundled model.")
    if "train_patients" in info:
        held_out = info.get("validation_patients") or ()
        lines.append(
            f"Trained on {info['train_patients']} ACDC patients; validated on {len(held_out)} held-out patients."
        )
    dice = info.get("validation_dice_model_grid")
    if isinstance(dice, Mapping) and dice:
        parts = ", ".join(f"{k.upper()} {float(v):.3f}" for k, v in dice.items() if k != "mean")
        mean = dice.get("mean")
        lines.append(
            "Validation Dice (model grid): " + parts + ("" if mean is None else f"; mean {float(mean):.3f}") + "."
        )
    if "iteration" in info:
        lines.append(f"Selected checkpoint: iteration {info['iteration']}.")
    if not lines:
        lines.append("The model file records no training or validation information.")
    return ModelSummary(
        "Segmentation", name, tuple(lines), "opencmr/segment/weights/MODEL_CARD.md (describes the bundled model)"
    )


def diagnosis_model_summary(info: Mapping[str, Any]) -> ModelSummary:
    """Name, classifier and cross-validated performance of the diagnosis model, from its ``info``."""
    lines = []
    if "classifier" in info:
        lines.append(f"Classifier: {info['classifier']}.")
    if "training_data" in info:
        lines.append(f"Training data: {info['training_data']}.")
    cv = info.get("cross_validation") or {}
    accuracy = cv.get("accuracy")
    if isinstance(accuracy, Mapping):
        low, high = accuracy.get("ci", (None, None))
        ci = "" if low is None else f" (95% CI {low:.3f}–{high:.3f})"
        lines.append(
            f"{cv.get('folds', '?')}-fold {'nested ' if 'nested' in str(cv.get('reported', '')) else ''}"
            f"cross-validated accuracy {accuracy['estimate']:.3f}{ci}, "
            f"n = {accuracy.get('n', '?')}; Brier {cv.get('brier', float('nan')):.3f}, "
            f"ECE {cv.get('ece', float('nan')):.3f}."
        )
    per_class = cv.get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        parts = [
            f"{group} {c['sensitivity']['estimate']:.2f}/{c['specificity']['estimate']:.2f}"
            for group, c in per_class.items()
            if isinstance(c, Mapping) and "sensitivity" in c and "specificity" in c
        ]
        if parts:
            lines.append("Sensitivity/specificity per group: " + ", ".join(parts) + ".")
    return ModelSummary(
        "Diagnosis", str(info.get("name", "unnamed")), tuple(lines), "opencmr/diagnose/weights/MODEL_CARD.md"
    )


def flagged_count(rows: Sequence[ValueRow]) -> int:
    """How many measurements lie outside their reference range."""
    return sum(row.status in ("low", "high") for row in rows)
