"""``opencmr analyze``: read a study, segment it with the bundled model, measure, write the results.

One function, :func:`analyze_study`, used by the CLI (and later the service and
batch runner): it checks every output up front (nothing is overwritten
without ``overwrite``), then reads, segments and measures, and writes into
``out_dir``:

``segmentation.nii.gz``
    labels on the input's grid (``segmentation_frameFF.nii.gz`` per frame for
    an ACDC folder, which holds only ED and ES);
``segmentation.dcm``
    for DICOM input, the same labels as a DICOM Segmentation object that
    references the source images (:func:`opencmr.io.dicom_seg.write_dicom_seg`);
``report_sr.dcm``
    for DICOM input with measurements, the indices as a DICOM Structured Report
    (TID 1500 Measurement Report) that references the ED/ES images and the
    segments of ``segmentation.dcm`` (:func:`opencmr.io.dicom_sr.write_dicom_sr`);
``measurements.json``, ``measurements.csv``
    the indices (:mod:`opencmr.measure.function`), one document and one CSV row;
``volume_curve.png``
    LV and RV volume over the cycle, for a cine (three frames or more);
``bullseye_wall_thickness.png``, ``bullseye_thickening.png``
    end-diastolic wall thickness and systolic thickening per AHA segment;
``diagnosis.json``
    the group (NOR, DCM, HCM, MINF, RV) with calibrated probabilities and the
    explanation (:mod:`opencmr.diagnose.predict`), from the images only;
``report.html``
    everything above on one self-contained page (:func:`opencmr.report.write_report`):
    identifiers, overlays on every slice at ED and ES, tables, plots, diagnosis, QC;
``qc.json``, ``uncertainty.nii.gz``
    the QC verdict (``pass``/``review``/``fail``) with reasons, per slice too,
    from plausibility checks and the segmentation's uncertainty
    (:mod:`opencmr.qc.verdict`), and the per-voxel entropy map.

Before segmenting, the in-plane orientation is checked
(:func:`opencmr.qc.orientation.check_orientation`; ``orientation`` option): a
study whose rows and columns look transposed or turned by 90 degrees is
segmented in the orientation the network expects and the labels mapped back
(``"correct"``, the default), or refused (``"check"``); the check's outcome is
one of the QC checks.

Test-time flips (``tta``, the default) are applied to every frame of an
ED/ES study, and to the ED and ES frames of a cine (more than two frames),
which are segmented again with them once the single-pass segmentation of
every frame has placed ED and ES; the other frames, which only draw the
volume curve, keep one forward pass. That keeps a 30-frame cine inside the
time target at the accuracy of the flipped segmentation where it is measured.

A study in which nothing can be measured (no LV found: noise, another body
part) still gets ``segmentation.nii.gz`` (and ``segmentation.dcm``),
``qc.json`` (verdict ``fail``, with the reason), ``uncertainty.nii.gz`` and
``report.html``; no measurements, plots or diagnosis are written, and
:attr:`AnalysisResult.measurements` is None. With ``overwrite``, outputs of an
earlier analysis in the folder are removed first, so none is left stale.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.io._atomic import check_writable
from opencmr.io.study import CineStudy
from opencmr.measure.body import BsaFormula
from opencmr.measure.function import Measurements, Subject, measure_function
from opencmr.qc.orientation_mode import orientation_mode

__all__ = [
    "MAX_FLIP_ROUNDS",
    "AnalysisOptions",
    "AnalysisResult",
    "analyze_study",
    "example_study",
    "flip_measured_frames",
    "measure_and_check",
    "segment_for_analysis",
    "subject_of",
]

#: ``progress(stage, done, total)``
Progress = Callable[[str, int, int], None]

SEGMENTATION = "segmentation.nii.gz"
SEGMENTATION_DCM = "segmentation.dcm"
REPORT_SR_DCM = "report_sr.dcm"
MEASUREMENTS_JSON = "measurements.json"
MEASUREMENTS_CSV = "measurements.csv"
VOLUME_CURVE = "volume_curve.png"
DIAGNOSIS_JSON = "diagnosis.json"
QC_JSON = "qc.json"
UNCERTAINTY = "uncertainty.nii.gz"
BULLSEYE_THICKNESS = "bullseye_wall_thickness.png"
BULLSEYE_THICKENING = "bullseye_thickening.png"


@dataclass(frozen=True)
class AnalysisOptions:
    """What ``opencmr analyze`` may be told; anything None comes from the study itself."""

    height_cm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    heart_rate_bpm: float | None = None
    bsa_formula: BsaFormula = BsaFormula.MOSTELLER
    series: str | None = None
    study: str | None = None
    model: Path | None = None
    tta: bool = True
    orientation: str = "correct"
    overwrite: bool = False

    def __post_init__(self) -> None:
        orientation_mode(self.orientation)


@dataclass(frozen=True)
class AnalysisResult:
    """What was written, and the measurements."""

    study: CineStudy
    measurements: Measurements | None
    """None when nothing could be measured (the QC verdict is then ``fail``)."""
    files: dict[str, list[Path]] = field(default_factory=dict)
    diagnosis: Any = None
    """The :class:`~opencmr.diagnose.predict.Diagnosis` (group None when refused)."""
    qc: Any = None
    """The :class:`~opencmr.qc.verdict.QcReport`."""


def subject_of(study: CineStudy, options: AnalysisOptions) -> Subject:
    """Height, weight, sex and heart rate: the options where given, else the study's metadata."""
    meta = study.metadata

    def pick(given, known):
        return given if given is not None else known

    return Subject(
        height_cm=pick(options.height_cm, meta.height_cm),
        weight_kg=pick(options.weight_kg, meta.weight_kg),
        sex=pick(options.sex, meta.sex),
        heart_rate_bpm=pick(options.heart_rate_bpm, meta.heart_rate_bpm),
        bsa_formula=options.bsa_formula,
    )


def _remove_earlier_outputs(out: Path, names: tuple[str, ...]) -> None:
    """With ``overwrite``: remove what an earlier analysis wrote here, so no stale result sits beside the new ones.

    Only opencmr's own output names are touched (and per-frame segmentation
    files); anything else in the folder is left alone.
    """
    targets = [out / name for name in (*names, SEGMENTATION_DCM, REPORT_SR_DCM)] + sorted(out.glob("segmentation_frame*.nii.gz"))
    for target in targets:
        if target.is_file():
            target.unlink()


def example_study(folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the bundled example study (a synthetic dilated-cardiomyopathy cine, :mod:`opencmr.phantom`) as DICOM.

    What ``opencmr analyze`` analyses when it is given no study: the same
    study the README's first command writes with ``opencmr phantom --group DCM
    --dicom``. Returns the DICOM folder.
    """
    from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

    dicom = Path(folder) / "dicom"
    if not overwrite and dicom.is_dir() and (Path(folder) / "truth.json").is_file():
        return dicom  # written by an earlier run: the same deterministic study
    files = write_phantom(make_phantom(PhantomConfig(group="DCM")), folder, dicom=True, overwrite=overwrite)
    return files["dicom"]


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".zip", ".dcm"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def analyze_study(
    path: str | os.PathLike[str] | tuple[str | os.PathLike[str], str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: AnalysisOptions | None = None,
    progress: Progress | None = None,
) -> AnalysisResult:
    """Read, segment, measure and write the results of one study (see the module docstring).

    ``path`` is anything :func:`opencmr.io.read.read_study` reads, or a pair
    ``(ED, ES)`` of 3D NIfTI files (:func:`opencmr.io.read.read_ed_es_pair`).

    Raises
    ------
    InputError
        The study cannot be read, or ``options.orientation`` is ``"check"`` and it looks transposed.
    OutputError
        An output exists and ``options.overwrite`` is False (checked before any work).
    """
    from opencmr.diagnose.predict import diagnose, write_diagnosis_json
    from opencmr.errors import InputError
    from opencmr.io.dicom_seg import write_dicom_seg
    from opencmr.io.dicom_sr import write_dicom_sr
    from opencmr.io.nifti import frame_file_names, write_segmentation
    from opencmr.io.read import read_ed_es_pair, read_study
    from opencmr.qc.uncertainty import write_uncertainty_nifti
    from opencmr.qc.verdict import write_qc_json
    from opencmr.report import REPORT_HTML, write_report
    from opencmr.segment.model import load_segmenter

    options = options or AnalysisOptions()
    pair = isinstance(path, (tuple, list))
    if pair and len(path) != 2:
        raise ValueError(f"an ED/ES pair is two files, got {len(path)}")
    source, out = Path(path[0] if pair else path), Path(out_dir)
    fixed = (
        MEASUREMENTS_JSON, MEASUREMENTS_CSV, VOLUME_CURVE, SEGMENTATION, BULLSEYE_THICKNESS, BULLSEYE_THICKENING,
        DIAGNOSIS_JSON, QC_JSON, UNCERTAINTY, REPORT_HTML,
    )
    for name in fixed:
        check_writable(out / name, options.overwrite)
    if pair:
        if options.series is not None or options.study is not None:
            raise InputError(source, "--series and --study apply to DICOM input only")
        study = read_ed_es_pair(*path)
    else:
        study = read_study(source, series=options.series, study=options.study, progress=progress)
    model = load_segmenter(options.model)
    for target in frame_file_names(out / SEGMENTATION, study.frame_numbers or ()).values():
        check_writable(target, options.overwrite)
    dicom = study.metadata.source_format == "dicom"
    if dicom:
        check_writable(out / SEGMENTATION_DCM, options.overwrite)
        check_writable(out / REPORT_SR_DCM, options.overwrite)
    try:
        labels, maps, orientation = segment_for_analysis(study, model, options, progress)
    except InputError as exc:
        raise InputError(source, exc.problem) from None
    out.mkdir(parents=True, exist_ok=True)
    if options.overwrite:
        _remove_earlier_outputs(out, fixed)
    files: dict[str, list[Path]] = {
        "segmentation": write_segmentation(labels, out / SEGMENTATION, overwrite=options.overwrite)
    }
    extra_notes: list[str] = []  # DICOM extras (SEG, SR) a source highdicom refuses: noted, not fatal
    if dicom:
        try:
            files["segmentation_dicom"] = [
                write_dicom_seg(labels, study, out / SEGMENTATION_DCM, overwrite=options.overwrite)
            ]
        except InputError as exc:  # the SEG is an extra: a source highdicom refuses must not stop the analysis
            extra_notes.append(f"no segmentation.dcm: {exc.problem}")
    measurements, qc = measure_and_check(study, labels, maps, subject_of(study, options), orientation)
    if dicom and measurements is not None:
        seg_path = files["segmentation_dicom"][0] if "segmentation_dicom" in files else None
        for reference in (seg_path, None) if seg_path is not None else (None,):
            try:  # referencing the SEG's segments; failing that, the source images alone (TID 1501)
                files["report_sr_dicom"] = [
                    write_dicom_sr(
                        measurements, study, out / REPORT_SR_DCM, overwrite=options.overwrite,
                        segmentation_path=reference,
                    )
                ]
                break
            except InputError as exc:
                if reference is None:
                    extra_notes.append(f"no report_sr.dcm: {exc.problem}")
                else:
                    extra_notes.append(f"report_sr.dcm does not reference segmentation.dcm: {exc.problem}")
    if extra_notes:
        qc = dataclasses.replace(qc, notes=(*qc.notes, *extra_notes))
    diagnosis = None
    if measurements is not None:
        files.update(_write_measurement_outputs(study, labels, measurements, source, out, options.overwrite))
        diagnosis = diagnose(measurements, labels)
        files["diagnosis"] = [write_diagnosis_json(diagnosis, out / DIAGNOSIS_JSON, overwrite=options.overwrite)]
    files["qc"] = [
        write_qc_json(qc, out / QC_JSON, overwrite=options.overwrite),
        write_uncertainty_nifti(maps, out / UNCERTAINTY, overwrite=options.overwrite),
    ]
    result = AnalysisResult(
        study=dataclasses.replace(study, labels=labels),
        measurements=measurements,
        files=files,
        diagnosis=diagnosis,
        qc=qc,
    )
    files["report"] = [write_report(result, out / REPORT_HTML, segmentation_model=model, overwrite=options.overwrite)]
    return result


def segment_for_analysis(
    study: CineStudy, model: Any, options: AnalysisOptions | None = None, progress: Progress | None = None
) -> tuple[Any, Any, Any]:
    """Segment a study the way ``analyze`` does: the labels, their uncertainty maps and the orientation check.

    The in-plane orientation is checked first (``options.orientation``;
    :func:`opencmr.qc.orientation.segment_oriented`); with ``options.tta`` an
    ED/ES study is segmented with test-time flips, a cine once per frame and
    then its ED and ES frames again with flips (:func:`flip_measured_frames`).
    ``opencmr diagnose`` segments through here too, so that it measures what
    ``analyze`` measures.

    Returns
    -------
    labels : LabelMap
    maps : UncertaintyMaps
    orientation : OrientationCheck or None
        None when ``options.orientation`` is ``"off"``.

    Raises
    ------
    InputError
        ``options.orientation`` is ``"check"`` and the study looks transposed.
    """
    from opencmr.qc.orientation import segment_oriented

    options = options or AnalysisOptions()
    if options.orientation != "off" and progress is not None:
        progress("checking orientation", 0, 1)
    cine_tta = options.tta and len(study.frame_numbers) > 2  # flips for the ED and ES frames only (see below)
    (labels, maps), orientation = segment_oriented(
        study, model, options.orientation, tta=options.tta and not cine_tta,
        progress=_stage(progress, "segmenting frames"), return_uncertainty=True,
    )
    if cine_tta:
        labels, maps = _ed_es_with_tta(
            study, model, labels, maps, orientation, progress=_stage(progress, "segmenting ED and ES with flips")
        )
    return labels, maps, orientation


#: Rounds of flipped re-segmentation of a cine's ED and ES frames (see :func:`flip_measured_frames`).
MAX_FLIP_ROUNDS = 3


def _ed_es_with_tta(
    study: CineStudy, model: Any, labels: Any, maps: Any, orientation: Any, progress: Callable[[int, int], None] | None
) -> tuple[Any, Any]:
    """Segment a cine's ED and ES frames again with test-time flips, in place of their single-pass labels.

    The frames measured clinically get the steadier, averaged segmentation;
    the other frames of the volume curve keep one forward pass each (a 30-frame
    cine costs about a third of flipping every frame). See
    :func:`flip_measured_frames`; the flipped frames reuse the orientation
    decision (:func:`opencmr.qc.orientation.segment_as_checked`).
    """
    from opencmr.qc.orientation import segment_as_checked

    def flipped(frames: list[int]) -> tuple[Any, Any]:
        return segment_as_checked(
            study, model, orientation, frames=frames, tta=True, return_uncertainty=True, progress=progress
        )

    return flip_measured_frames(labels, maps, flipped, study.metadata.ed_frame, study.metadata.es_frame)


def flip_measured_frames(
    labels: Any,
    maps: Any,
    segment: Callable[[list[int]], tuple[Any, Any]],
    ed_frame: int | None = None,
    es_frame: int | None = None,
    max_rounds: int = MAX_FLIP_ROUNDS,
) -> tuple[Any, Any]:
    """Replace the single-pass labels of the frames measuring will use by their flipped segmentation.

    ED and ES are those the study names, else the LV volume curve's maximum
    and minimum (:func:`opencmr.measure.phases.detect_ed_es`, the rule
    measuring uses). ``segment(frames)`` gives those frames' labels and
    uncertainty maps with test-time flips; they replace the single-pass ones.
    Should the flipped labels move the curve's maximum or minimum to another
    frame, that frame is segmented with flips too, for at most ``max_rounds``
    rounds in all (after which measuring follows the curve, and a frame it
    lands on may be single-pass). Nothing is done when no LV was found (QC
    reports that).

    The uncertainty maps of the flipped frames are replaced too (their view
    disagreement is then from the flips; the other frames' is 0, and
    ``n_views`` is the flips'), and the soft-Dice sums behind the estimated
    Dice are kept for the flipped frames only: the calibration
    (:data:`opencmr.qc.verdict.DICE_CALIBRATION`) was fitted on flipped
    segmentations, and the single-pass frames' sharper probabilities would
    raise it.

    Parameters
    ----------
    labels : LabelMap
        Single-pass labels of every frame.
    maps : UncertaintyMaps
        Their uncertainty maps.
    segment : callable
        Frames (acquisition numbers) to ``(LabelMap, UncertaintyMaps)`` of those frames, flipped.
    ed_frame, es_frame : int, optional
        Frames the study names.
    max_rounds : int
        Calls of ``segment`` at most.

    Returns
    -------
    labels, maps
        With the flipped frames in place.
    """
    from opencmr.measure.phases import detect_ed_es
    from opencmr.measure.volumes import volume_curve

    flipped: list[int] = []
    for _ in range(max_rounds):
        try:
            phases = detect_ed_es(volume_curve(labels), ed_frame, es_frame)
        except ValueError:
            break
        frames = sorted({phases.ed_frame, phases.es_frame} - set(flipped))
        if not frames:
            break
        again, again_maps = segment(frames)
        index = [labels.frame_numbers.index(f) for f in frames]
        data = labels.data.copy()
        data[index] = again.data
        entropy, disagreement = maps.entropy.copy(), maps.disagreement.copy()
        entropy[index], disagreement[index] = again_maps.entropy, again_maps.disagreement
        overlap = None
        if maps.overlap is not None and again_maps.overlap is not None:
            overlap = maps.overlap.copy() if flipped else np.zeros_like(maps.overlap)
            overlap[index] = again_maps.overlap
        labels = dataclasses.replace(labels, data=data)
        maps = dataclasses.replace(
            maps, entropy=entropy, disagreement=disagreement, overlap=overlap, n_views=again_maps.n_views
        )
        flipped += frames
    return labels, maps


def _write_measurement_outputs(
    study: CineStudy, labels: Any, measurements: Measurements, source: Path, out: Path, overwrite: bool
) -> dict[str, list[Path]]:
    """measurements.json/.csv, the volume curve (cine) and the bull's-eyes."""
    from opencmr.measure.output import write_measurements_csv, write_measurements_json
    from opencmr.measure.plots import plot_volume_curve

    case = _case_name(source)
    files = {
        "measurements_json": [
            write_measurements_json(measurements, out / MEASUREMENTS_JSON, case=case, overwrite=overwrite)
        ],
        "measurements_csv": [
            write_measurements_csv(measurements, out / MEASUREMENTS_CSV, case=case, overwrite=overwrite)
        ],
    }
    if len(measurements.curve.frame_numbers) >= 3:
        files["volume_curve"] = [
            plot_volume_curve(
                measurements.curve, measurements.phases, out / VOLUME_CURVE, frame_times_ms=study.frame_times_ms,
                overwrite=overwrite,
            )
        ]
    if measurements.thickening is not None:
        files["bullseye"] = _bullseyes(measurements, out, overwrite)
    return files


def measure_and_check(
    study: CineStudy, labels: Any, maps: Any, subject: Subject, orientation: Any = None
) -> tuple[Measurements | None, Any]:
    """Measure the segmentation and assess it: the measurements (None when nothing is measurable) and the QC report.

    The QC report combines the orientation check (when one was made), every
    plausibility check (:func:`opencmr.qc.checks.run_checks`) and the
    uncertainty scores; when measuring fails (no LV), the failure is the
    ``measurable`` check and the verdict is ``fail``.
    """
    from opencmr.qc.checks import not_measurable, run_checks
    from opencmr.qc.uncertainty import uncertainty_scores
    from opencmr.qc.verdict import qc_report

    meta = study.metadata
    extra = [] if orientation is None else [orientation.to_check()]
    scores = None if maps is None else uncertainty_scores(labels, maps)
    try:
        measurements = measure_function(labels, subject, ed_frame=meta.ed_frame, es_frame=meta.es_frame)
    except ValueError as exc:
        return None, qc_report([*extra, not_measurable(exc)], scores)
    return measurements, qc_report([*extra, *run_checks(study, labels, measurements)], scores)


def _bullseyes(measurements: Measurements, out: Path, overwrite: bool) -> list[Path]:
    from opencmr.measure.bullseye import plot_bullseye

    thickening = measurements.thickening
    assert thickening is not None
    return [
        plot_bullseye(
            thickening.ed.mean_mm,
            out / BULLSEYE_THICKNESS,
            "End-diastolic wall thickness",
            "mm",
            vmin=0.0,
            overwrite=overwrite,
        ),
        plot_bullseye(
            thickening.percent,
            out / BULLSEYE_THICKENING,
            "Systolic wall thickening",
            "%",
            cmap="RdYlGn",
            overwrite=overwrite,
        ),
    ]


def _stage(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)
