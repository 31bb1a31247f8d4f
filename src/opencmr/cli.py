"""The ``opencmr`` command line: a thin Typer layer over the library.

Every command turns :class:`~opencmr.errors.OpenCMRError` into a one-line
``error: <file>: <problem>`` on stderr and exit code 1; ``opencmr --debug
COMMAND`` shows the traceback instead. Heavy imports happen inside commands.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import sys
from contextvars import ContextVar
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from opencmr import __version__
from opencmr.errors import OpenCMRError, describe_exception

app = typer.Typer(
    name="opencmr",
    help="Open deep-learning cardiac MRI analysis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


_DEBUG: ContextVar[bool] = ContextVar("opencmr_debug", default=False)


def _debug_enabled() -> bool:
    return _DEBUG.get()


def _one_line(exc: BaseException) -> str:
    """The user-facing message for an exception that ends a command."""
    if isinstance(exc, OpenCMRError):
        return str(exc)
    if isinstance(exc, OSError):  # permissions, full disk, ... on a path the user gave
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"unexpected {describe_exception(exc)} (run 'opencmr --debug ...' for details)"


def _user_errors(func: F) -> F:
    """Report errors in one line on stderr with exit code 1 (130 when interrupted), unless ``--debug``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(code=130) from None
        except Exception as exc:  # OpenCMRError, OSError, or a bug / input problem not yet anticipated
            if _debug_enabled():
                raise
            err_console.print(f"[bold red]error:[/] {_one_line(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"opencmr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Open deep-learning cardiac MRI analysis."""
    _DEBUG.set(debug)


@contextmanager
def _file_progress(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr, driven by ``progress(stage, done, total)`` callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    stages = {"headers": "reading headers", "pixels": "reading images"}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{description}: {stages.get(stage, stage)}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


StudyArg = Annotated[
    Path,
    typer.Argument(help="NIfTI file (3D/4D), ACDC patient folder, or folder of DICOM files.", show_default=False),
]
SeriesOpt = Annotated[
    str | None,
    typer.Option(
        "--series",
        help="DICOM series to read: SeriesNumber or SeriesInstanceUID; FIRST-LAST for a stack stored one series per slice. "
        "Default: the short-axis cine, chosen by geometry.",
    ),
]
StudyOpt = Annotated[
    str | None,
    typer.Option("--study", help="StudyInstanceUID or PatientID, when DICOM input holds several studies."),
]


@app.command()
@_user_errors
def info(
    study: StudyArg,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--labels",
            help="Label file for a NIfTI image (same frames), or FRAME=FILE per labelled frame (0-based); repeatable.",
        ),
    ] = None,
    series: SeriesOpt = None,
    dicom_study: StudyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Describe a study: dimensions, spacing, frames, series found and metadata."""
    from opencmr.io.describe import describe_study
    from opencmr.io.read import read_study

    from opencmr.errors import InputError

    try:
        with _file_progress(str(study)) as progress:
            loaded = read_study(study, labels=_parse_labels(labels), series=series, progress=progress, study=dicom_study)
    except InputError:
        if not as_json:
            _print_dicom_series(study, series, dicom_study)  # what was found, when no stack could be chosen
        raise
    summary = describe_study(loaded)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    _print_summary(summary)


def _parse_labels(values: list[str] | None) -> Path | dict[int, Path] | None:
    """``--labels FILE`` or ``--labels FRAME=FILE ...`` to what :func:`read_study` takes."""
    from opencmr.errors import InputError

    if not values:
        return None
    framed = [v.split("=", 1) for v in values if re.match(r"^\d+=", v)]
    if not framed:
        if len(values) > 1:
            raise InputError("--labels", "several label files need a frame each: --labels FRAME=FILE")
        return Path(values[0])
    if len(framed) != len(values):
        raise InputError("--labels", "give either one FILE or FRAME=FILE for every label file, not a mix")
    mapping = {int(frame): Path(path) for frame, path in framed}
    if len(mapping) != len(framed):
        raise InputError("--labels", "the same frame is given twice")
    return mapping


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['source']} ({summary['format']})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    shape = summary["shape"]
    spacing = summary["spacing_mm"]
    table.add_row("frames x slices x rows x cols", f"{shape['frames']} x {shape['slices']} x {shape['rows']} x {shape['cols']}")
    table.add_row(
        "spacing (mm)",
        f"slice {spacing['slice']:.3g}, row {spacing['row']:.3g}, col {spacing['col']:.3g}",
    )
    table.add_row("slice thickness (mm)", _fmt(summary["slice_thickness_mm"]))
    table.add_row("frame numbers", _fmt_list(summary["frame_numbers"]))
    if summary["frame_times_ms"] is not None:
        table.add_row("frame times (ms)", _fmt_list([round(t, 1) for t in summary["frame_times_ms"]]))
    table.add_row("labelled frames", _fmt_list(summary["labelled_frames"]) if summary["labelled_frames"] else "none")
    table.add_row("intensity range", f"{summary['intensity']['min']:.4g} .. {summary['intensity']['max']:.4g}")
    for key, value in summary["metadata"].items():
        if value not in (None, [], "") and key not in ("source", "source_format", "notes", "provenance"):
            label = key.replace("_", " ") + (" (0-based)" if key in ("ed_frame", "es_frame") else "")
            table.add_row(label, str(value))
    console.print(table)
    for note in summary["metadata"].get("notes") or []:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    _print_series_table(summary.get("series") or [])


def _print_dicom_series(study: Path, series: str | None, dicom_study: str | None) -> None:
    """The series table of DICOM input that could not be read as a study (nothing when it is not DICOM)."""
    from opencmr.errors import InputError
    from opencmr.io.dicom import scan_dicom_folder

    if study.is_file() and study.suffix.lower() in (".nii", ".gz"):
        return
    try:
        found = scan_dicom_folder(study, series=series, study=dicom_study)
    except (InputError, OSError):
        return
    _print_series_table([s.to_dict() for s in found])


def _print_series_table(found: list[dict[str, Any]]) -> None:
    if found:
        series_table = Table(title="DICOM series found")
        for column in ("", "number", "description", "images", "positions x phases", "kind"):
            series_table.add_column(column)
        for s in found:
            grid = "-" if s.get("n_positions") is None else f"{s['n_positions']} x {s.get('n_phases')}"
            series_table.add_row(
                "[bold green]read[/]" if s.get("chosen") else "",
                str(s.get("selector") or _fmt(s.get("series_number"))),
                str(s.get("description") or ""),
                str(s.get("n_images")),
                grid,
                str(s.get("kind") or ""),
            )
        console.print(series_table)
        for s in found:
            if s.get("chosen"):
                console.print(f"[bold green]read:[/] {s.get('reason')}", highlight=False)


def _fmt(value: object) -> str:
    return "unknown" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _fmt_list(values: list[Any]) -> str:
    text = ", ".join(str(v) for v in values)
    return text if len(text) < 100 else text[:97] + "..."


@app.command()
@_user_errors
def convert(
    source: Annotated[Path, typer.Argument(help="DICOM folder (or any study opencmr reads).", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Output 4D NIfTI file (.nii or .nii.gz).", show_default=False)],
    series: SeriesOpt = None,
    dicom_study: StudyOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
) -> None:
    """Convert a cine study to one 4D NIfTI (x, y, slice, frame) in patient (RAS) coordinates.

    For DICOM input a JSON sidecar (same name, .json) records which series and
    files were used, the orientation, slice pitch and gaps, and the trigger
    times and RR interval of every slice.
    """
    from opencmr.errors import InputError
    from opencmr.io.nifti import write_study_nifti
    from opencmr.io.read import read_study

    from opencmr.io._atomic import atomic_output, check_writable

    _check_nifti_output(output, source, overwrite)  # fail before the (slow) read
    sidecar = output.with_name(output.name.removesuffix(".gz").removesuffix(".nii") + ".json")
    with _file_progress(str(source)) as progress:
        study = read_study(source, series=series, progress=progress, study=dicom_study)
    if study.metadata.provenance is not None:
        check_writable(sidecar, overwrite)
        chosen = [s for s in study.metadata.provenance["series_found"] if s["chosen"]]
        if chosen:
            console.print(f"read {chosen[0]['kind']}: {chosen[0]['reason']}", highlight=False)
    assert study.frame_numbers is not None
    if study.frame_numbers != tuple(range(study.frame_numbers[0], study.frame_numbers[0] + study.n_frames)):
        raise InputError(
            source,
            f"holds only frames {list(study.frame_numbers)} of the cine, not consecutive frames; "
            "a 4D NIfTI would present them as a continuous cine",
        )
    written = write_study_nifti(study, output, overwrite=overwrite)
    if study.metadata.provenance is not None:
        with atomic_output(sidecar, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps({"source": str(source), **study.metadata.provenance}, indent=1) + "\n")
        console.print(f"wrote {sidecar} (which series and files were used, slice geometry and timing)", highlight=False)
    s, r, c = study.spacing
    console.print(
        f"wrote {written}: {study.geometry.shape[2]} x {study.geometry.shape[1]} x {study.n_slices} x {study.n_frames} "
        f"(x, y, slice, frame), spacing {c:.3g} x {r:.3g} x {s:.3g} mm",
        highlight=False,
    )


@app.command()
@_user_errors
def phantom(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (ACDC-style patient folder).")],
    group: Annotated[str, typer.Option("--group", help="NOR, DCM, HCM, MINF or RV.")] = "NOR",
    dicom: Annotated[bool, typer.Option("--dicom", help="Also write a DICOM series (with decoy series).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    frames: Annotated[int, typer.Option("--frames", min=2, help="Cardiac phases.")] = 20,
    slices: Annotated[int, typer.Option("--slices", min=2, help="Short-axis slices.")] = 10,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty folder.")] = False,
    dicom_layout: Annotated[
        str,
        typer.Option(
            "--dicom-layout",
            help="How the DICOM cine is exported: single-series, series-per-slice (one series per slice position, "
            "each with its own RR interval) or enhanced (one multi-frame file).",
        ),
    ] = "single-series",
    dicom_compression: Annotated[
        str, typer.Option("--dicom-compression", help="none, rle, jpeg-ls or jpeg2000 (lossless).")
    ] = "none",
) -> None:
    """Generate a synthetic short-axis cine study with known ground truth."""
    from opencmr.errors import InputError
    from opencmr.io.dicom_write import COMPRESSIONS
    from opencmr.labels import DiagnosticGroup
    from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

    try:
        parsed = DiagnosticGroup.parse(group)
    except ValueError as exc:
        raise InputError("--group", str(exc)) from None
    if dicom_compression != "none" and dicom_compression not in COMPRESSIONS:
        raise InputError("--dicom-compression", f"unknown {dicom_compression!r}; choose none, {', '.join(COMPRESSIONS)}")
    syntax = None if dicom_compression == "none" else COMPRESSIONS[dicom_compression]
    with err_console.status(f"generating {parsed.value} phantom"):
        generated = make_phantom(PhantomConfig(group=parsed, n_frames=frames, n_slices=slices, seed=seed))
        try:
            written = write_phantom(
                generated, out, dicom=dicom, overwrite=overwrite, dicom_layout=dicom_layout, dicom_transfer_syntax=syntax
            )
        except ValueError as exc:
            raise InputError("--dicom-layout", str(exc)) from None
    truth = generated.truth
    console.print(f"wrote {parsed.value} phantom to {out} ({len(written)} outputs)", highlight=False)
    console.print(
        f"truth: LV EDV {truth.lv_edv_ml:.1f} mL, ESV {truth.lv_esv_ml:.1f} mL, EF {truth.lv_ef_percent:.1f} %; "
        f"RV EDV {truth.rv_edv_ml:.1f} mL, EF {truth.rv_ef_percent:.1f} %; LV mass {truth.lv_mass_g:.1f} g",
        highlight=False,
    )


ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help="Model file (.pt, or .onnx from 'opencmr export-onnx'); default: the bundled model."),
]


def _orientation(value: str) -> str:
    from opencmr.qc.orientation_mode import orientation_mode

    try:
        return orientation_mode(value, "")  # typer names the option
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


OrientationOpt = Annotated[
    str,
    typer.Option(
        "--orientation",
        help="In-plane orientation safety: 'correct' segments a transposed or 90-degree-rotated study the way "
        "the model expects and maps the labels back; 'check' refuses it; 'off' skips the check.",
        callback=_orientation,
    ),
]


@app.command()
@_user_errors
def segment(
    study: StudyArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output label file (.nii.gz).", show_default=False)],
    model: ModelOpt = None,
    series: SeriesOpt = None,
    dicom_study: StudyOpt = None,
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Average over test-time flips.")] = True,
    qc: Annotated[
        bool,
        typer.Option(
            "--qc", help="Also write OUTPUT's QC report (NAME_qc.json: verdict pass/review/fail with reasons) and "
            "per-voxel uncertainty map (NAME_uncertainty.nii.gz) beside it."
        ),
    ] = False,
    orientation: OrientationOpt = "correct",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
) -> None:
    """Segment LV blood pool (3), LV myocardium (2) and RV blood pool (1) on every slice and frame.

    The output has the input's grid (for DICOM, the grid 'opencmr convert' writes): 3D for a 3D input,
    otherwise 4D (x, y, slice, frame). A study whose frames are not consecutive (an ACDC folder with
    only ED and ES) gets one 3D file per frame instead, named as ACDC names them: OUTPUT_frameFF.nii.gz
    with FF the 1-based frame number.
    """
    import time

    import nibabel

    from opencmr.analysis import AnalysisOptions, measure_and_check, subject_of
    from opencmr.errors import InputError
    from opencmr.io._atomic import check_writable
    from opencmr.io.nifti import frame_file_names, is_nifti_path, write_segmentation
    from opencmr.io.read import read_study
    from opencmr.qc.orientation import segment_oriented
    from opencmr.qc.uncertainty import write_uncertainty_nifti
    from opencmr.qc.verdict import write_qc_json
    from opencmr.segment.model import load_segmenter

    _check_nifti_output(output, study, overwrite)
    stem = output.name.removesuffix(".gz").removesuffix(".nii")
    qc_json, qc_map = output.with_name(f"{stem}_qc.json"), output.with_name(f"{stem}_uncertainty.nii.gz")
    if qc:
        check_writable(qc_json, overwrite)
        _check_nifti_output(qc_map, study, overwrite)
    segmenter = load_segmenter(model)
    with _file_progress(str(study)) as progress:
        loaded = read_study(study, series=series, progress=progress, study=dicom_study)
        for target in frame_file_names(output, loaded.frame_numbers).values():
            _check_nifti_output(target, study, overwrite)
        started = time.perf_counter()
        try:
            result, check = segment_oriented(
                loaded, segmenter, orientation, tta=tta, return_uncertainty=qc,
                progress=lambda done, total: progress("segmenting frames", done, total),
            )
        except InputError as exc:
            raise InputError(study, exc.problem) from None
        seconds = time.perf_counter() - started
    labels, maps = result if qc else (result, None)
    as_4d = study.is_file() and is_nifti_path(study) and int(nibabel.load(study).header["dim"][0]) == 4  # keep (x,y,z,1)
    written = write_segmentation(labels, output, as_4d=as_4d, overwrite=overwrite)
    n = loaded.n_frames * loaded.n_slices
    console.print(
        f"wrote {', '.join(map(str, written))}: {loaded.n_frames} frame(s) x {loaded.n_slices} slices segmented in "
        f"{seconds:.1f} s ({1000 * seconds / n:.0f} ms per slice) with {getattr(segmenter, 'name', 'model')}",
        highlight=False,
    )
    if qc:
        _, report = measure_and_check(loaded, labels, maps, subject_of(loaded, AnalysisOptions()), check)
        write_qc_json(report, qc_json, overwrite=overwrite)
        write_uncertainty_nifti(maps, qc_map, overwrite=overwrite)
        _print_qc(report)
        console.print(f"wrote {qc_json} and {qc_map}", highlight=False)


def _check_nifti_output(output: Path, source: Path, overwrite: bool) -> None:
    """A NIfTI output that may be written: right suffix, not existing (unless ``overwrite``), not the input."""
    from opencmr.errors import OutputError
    from opencmr.io._atomic import check_writable
    from opencmr.io.nifti import is_nifti_path

    if not is_nifti_path(output):
        raise OutputError(output, "output must end in .nii or .nii.gz")
    check_writable(output, overwrite)
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise OutputError(output, "is the input itself; choose another output file")


HeightOpt = Annotated[float | None, typer.Option("--height", help="Height in cm (default: from the study).")]
WeightOpt = Annotated[float | None, typer.Option("--weight", help="Weight in kg (default: from the study).")]
HrOpt = Annotated[float | None, typer.Option("--hr", help="Heart rate in beats/min, for cardiac output.")]
SexOpt = Annotated[str | None, typer.Option("--sex", help="M or F, for reference ranges (default: from the study).")]
BsaOpt = Annotated[str, typer.Option("--bsa", help="Body-surface-area formula: mosteller or dubois.")]


def _bsa_formula(name: str) -> Any:
    from opencmr.errors import InputError
    from opencmr.measure.body import BsaFormula

    try:
        return BsaFormula(name.lower())
    except ValueError:
        raise InputError("--bsa", f"unknown formula {name!r}; choose mosteller or dubois") from None


def _sex(value: str | None) -> str | None:
    """``--sex`` as M, F or None (unknown), with a one-line error for anything else."""
    from opencmr.errors import InputError
    from opencmr.measure.reference import parse_sex

    try:
        parsed = parse_sex(value)
    except ValueError as exc:
        raise InputError("--sex", str(exc)) from None
    return None if parsed is None else parsed.value


def _print_measurements(measurements: Any) -> None:
    values = measurements.values
    status = {flag.index: flag.status.value for flag in measurements.flags}
    style = {"low": "[bold yellow]low[/]", "high": "[bold yellow]high[/]", "normal": "normal", "unknown": "?"}
    table = Table(title=f"Cardiac function (ED frame {measurements.phases.ed_frame}, ES frame "
                  f"{measurements.phases.es_frame}, 0-based; rule: {measurements.phases.rule.value})")
    for column in ("index", "value", "indexed to BSA", "reference range"):
        table.add_column(column)
    rows = [("LV EDV", "lv_edv_ml", "mL"), ("LV ESV", "lv_esv_ml", "mL"), ("LV SV", "lv_sv_ml", "mL"),
            ("LV EF", "lv_ef_percent", "%"), ("LV mass", "lv_mass_g", "g"), ("RV EDV", "rv_edv_ml", "mL"),
            ("RV ESV", "rv_esv_ml", "mL"), ("RV SV", "rv_sv_ml", "mL"), ("RV EF", "rv_ef_percent", "%"),
            ("cardiac output", "lv_co_l_min", "L/min"), ("max wall thickness", "max_wall_thickness_mm", "mm")]
    for name, key, unit in rows:
        value, indexed = values.get(key), values.get(f"{key}_m2")
        marks = [style[status[k]] for k in (key, f"{key}_m2") if k in status]
        table.add_row(name, "-" if value is None else f"{value:.1f} {unit}",
                      "" if indexed is None else f"{indexed:.1f} {unit}/m²", " / ".join(marks))
    console.print(table)
    for flag in measurements.flags:
        if flag.status.value in ("low", "high"):
            console.print(f"[bold yellow]{flag.status.value}:[/] {flag.text}", highlight=False)
    for note in measurements.to_dict()["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _parse_segmentations(values: list[str]) -> list[tuple[int | None, Path]]:
    """``FILE`` or ``FRAME=FILE`` arguments; ``*_frameFF.nii.gz`` names give frame FF - 1."""
    parsed: list[tuple[int | None, Path]] = []
    for value in values:
        framed = re.match(r"^(\d+)=(.+)$", value)
        if framed:
            parsed.append((int(framed.group(1)), Path(framed.group(2))))
            continue
        named = re.search(r"_frame(\d+)\.nii(\.gz)?$", value)
        parsed.append((int(named.group(1)) - 1 if named else None, Path(value)))
    return parsed


def _read_segmentations(values: list[str]) -> Any:
    """One label file (3D or 4D), or one 3D file per frame (``FRAME=FILE`` or ACDC ``_frameFF`` names)."""
    import numpy as np

    from opencmr.errors import InputError
    from opencmr.io.nifti import read_label_map
    from opencmr.io.study import LabelMap

    parsed = _parse_segmentations(values)
    if len(parsed) == 1 and parsed[0][0] is None:
        return read_label_map(parsed[0][1])
    missing = [str(path) for frame, path in parsed if frame is None]
    if missing:
        raise InputError(missing[0], "several segmentation files need a frame each: FRAME=FILE or a _frameFF name")
    maps = [read_label_map(path, (frame,)) for frame, path in parsed]
    first = maps[0]
    for (frame, path), other in zip(parsed, maps):
        if not other.geometry.same_grid(first.geometry):
            raise InputError(path, f"is not on the grid of {parsed[0][1]} (shape or affine differ)")
    frames = [frame for frame, _ in parsed]
    if len(set(frames)) != len(frames):
        raise InputError(values[0], f"the same frame is given twice ({frames})")
    return LabelMap(np.concatenate([m.data for m in maps]), first.geometry, tuple(frames))


@app.command()
@_user_errors
def measure(
    segmentation: Annotated[
        list[str],
        typer.Argument(help="Label file (3D/4D NIfTI), or one file per frame: FRAME=FILE or ACDC *_frameFF names.",
                       show_default=False),
    ],
    height: HeightOpt = None,
    weight: WeightOpt = None,
    hr: HrOpt = None,
    sex: SexOpt = None,
    ed: Annotated[int | None, typer.Option("--ed", help="ED frame (0-based); default: largest LV volume.")] = None,
    es: Annotated[int | None, typer.Option("--es", help="ES frame (0-based); default: smallest LV volume.")] = None,
    bsa: BsaOpt = "mosteller",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for measurements.json/.csv.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Volumes, EF, LV mass and BSA-indexed values from a segmentation (ours or manual)."""
    from opencmr.errors import InputError
    from opencmr.io._atomic import check_writable
    from opencmr.measure.function import Subject, measure_function
    from opencmr.measure.output import write_measurements_csv, write_measurements_json

    if out is not None:
        for name in ("measurements.json", "measurements.csv"):
            check_writable(out / name, overwrite)
    labels = _read_segmentations(segmentation)
    subject = Subject(height_cm=height, weight_kg=weight, sex=_sex(sex), heart_rate_bpm=hr, bsa_formula=_bsa_formula(bsa))
    try:
        measurements = measure_function(labels, subject, ed_frame=ed, es_frame=es)
    except ValueError as exc:
        raise InputError(segmentation[0], str(exc)) from None
    _print_measurements(measurements)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        case = Path(segmentation[0].split("=", 1)[-1]).name.split(".nii")[0]
        write_measurements_json(measurements, out / "measurements.json", case=case, overwrite=overwrite)
        write_measurements_csv(measurements, out / "measurements.csv", case=case, overwrite=overwrite)
        console.print(f"wrote {out / 'measurements.json'} and {out / 'measurements.csv'}", highlight=False)


def _print_qc(qc: Any) -> None:
    colour = {"pass": "green", "review": "yellow", "fail": "red"}[qc.verdict.value]
    console.print(f"[bold {colour}]QC: {qc.verdict.value}[/]", highlight=False)
    for reason in qc.reasons:
        console.print(f"  - {reason}", highlight=False)


def _print_diagnosis(diagnosis: Any) -> None:
    if diagnosis.group is None:
        console.print(f"[yellow]no diagnosis:[/] {diagnosis.reason}", highlight=False)
        return
    ranked = sorted(diagnosis.probabilities.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{group} {p:.2f}" for group, p in ranked)
    console.print(f"[bold]diagnosis: {diagnosis.group}[/] (probabilities {shown})", highlight=False)
    for sentence in diagnosis.explanation:
        console.print(f"  - {sentence}", highlight=False)


@app.command()
@_user_errors
def diagnose(
    study: StudyArg,
    height: HeightOpt = None,
    weight: WeightOpt = None,
    sex: SexOpt = None,
    model: ModelOpt = None,
    series: SeriesOpt = None,
    dicom_study: StudyOpt = None,
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Test-time augmentation in segmentation.")] = True,
    orientation: OrientationOpt = "correct",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write diagnosis.json here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """Cardiomyopathy group (NOR, DCM, HCM, MINF, RV) with calibrated probabilities and an explanation.

    Computed from the images (segmented as `analyze` segments them, then measurements and features); a group
    recorded in the input (ACDC Info.cfg) is never read. Needs height and weight (from the study or
    --height/--weight).
    """
    from opencmr.analysis import AnalysisOptions, segment_for_analysis, subject_of
    from opencmr.diagnose.predict import diagnose as run_diagnosis
    from opencmr.diagnose.predict import write_diagnosis_json
    from opencmr.errors import InputError
    from opencmr.io._atomic import check_writable
    from opencmr.io.read import read_study
    from opencmr.measure.function import measure_function
    from opencmr.segment.model import load_segmenter

    if json_out is not None:
        check_writable(json_out, overwrite)
    options = AnalysisOptions(
        height_cm=height, weight_kg=weight, sex=_sex(sex), tta=tta, orientation=orientation
    )
    segmenter = load_segmenter(model)
    with _file_progress(str(study)) as progress:
        loaded = read_study(study, series=series, progress=progress, study=dicom_study)
        try:
            labels, _, _ = segment_for_analysis(loaded, segmenter, options, progress)
        except InputError as exc:
            raise InputError(study, exc.problem) from None
    meta = loaded.metadata
    try:
        measured = measure_function(labels, subject_of(loaded, options), ed_frame=meta.ed_frame, es_frame=meta.es_frame)
    except ValueError as exc:
        raise InputError(study, str(exc)) from None
    result = run_diagnosis(measured, labels)
    _print_diagnosis(result)
    if json_out is not None:
        write_diagnosis_json(result, json_out, overwrite=overwrite)
    if result.group is None:
        raise InputError(study, result.reason or "no diagnosis")


@app.command()
@_user_errors
def analyze(
    studies: Annotated[
        list[Path] | None,
        typer.Argument(
            help="The study: a NIfTI file (3D/4D), an ACDC patient folder, DICOM (folder, zip, multi-frame file), or "
            "two 3D NIfTI files ED then ES. None: the bundled example study (a synthetic DCM cine, written as "
            "DICOM into OUTDIR/example_input).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--output", "-o", help="Output folder.", show_default=False)] = ...,  # type: ignore[assignment]
    height: HeightOpt = None,
    weight: WeightOpt = None,
    hr: HrOpt = None,
    sex: SexOpt = None,
    bsa: BsaOpt = "mosteller",
    model: ModelOpt = None,
    series: SeriesOpt = None,
    dicom_study: StudyOpt = None,
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Test-time augmentation in segmentation.")] = True,
    orientation: OrientationOpt = "correct",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs in the folder.")] = False,
) -> None:
    """Read a study, segment it with the bundled model, measure function, and write the results.

    OUTDIR gets segmentation.nii.gz (per-frame files for an ACDC folder), measurements.json,
    measurements.csv, diagnosis.json, report.html, qc.json (verdict pass/review/fail with reasons),
    uncertainty.nii.gz, bull's-eye plots of wall thickness and thickening, for a cine volume_curve.png, and for
    DICOM input segmentation.dcm and report_sr.dcm (the measurements as a DICOM SR). Height, weight, sex, heart rate and ED/ES come from the study (ACDC Info.cfg,
    DICOM) unless given.
    """
    from opencmr.analysis import AnalysisOptions, analyze_study, example_study
    from opencmr.errors import InputError

    studies = list(studies or [])
    if len(studies) > 2:
        raise typer.BadParameter(f"give one study, or two 3D NIfTI files (ED then ES), not {len(studies)} paths")
    if not studies:
        study: Path | tuple[Path, Path] = example_study(out / "example_input", overwrite=overwrite)
        console.print(f"no study given: analysing the bundled example study, written to {study}", highlight=False)
    else:
        study = studies[0] if len(studies) == 1 else (studies[0], studies[1])
    source = studies[0] if studies else study
    options = AnalysisOptions(
        height_cm=height, weight_kg=weight, sex=_sex(sex), heart_rate_bpm=hr, bsa_formula=_bsa_formula(bsa),
        series=series, study=dicom_study, model=model, tta=tta, orientation=orientation,
        overwrite=overwrite,
    )
    with _file_progress(str(source)) as progress:
        try:
            result = analyze_study(study, out, options, progress=progress)
        except ValueError as exc:
            raise InputError(source, str(exc)) from None
    if result.measurements is not None:
        _print_measurements(result.measurements)
        _print_diagnosis(result.diagnosis)
    _print_qc(result.qc)
    written = [str(path) for paths in result.files.values() for path in paths]
    console.print(f"wrote {len(written)} files to {out}: {', '.join(Path(p).name for p in written)}", highlight=False)
    if result.measurements is None:
        raise InputError(source, "nothing could be measured (QC fail, see qc.json); no measurements were written")


@app.command()
@_user_errors
def train(
    data: Annotated[Path, typer.Option("--data", help="Folder of labelled patient folders (ACDC layout).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, log, model files).")],
    iterations: Annotated[int, typer.Option("--iterations", min=1, help="Optimiser steps.")] = 20000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    validation: Annotated[int, typer.Option("--validation", min=0, help="Patients held out for model selection.")] = 10,
    validate_every: Annotated[int, typer.Option("--validate-every", min=1)] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threads: Annotated[int, typer.Option("--threads", min=0, help="CPU threads (0: torch's default).")] = 2,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")] = False,
    init: Annotated[
        Path | None, typer.Option("--init", help="Start from this model file's weights (fine-tuning, a second schedule).")
    ] = None,
    learning_rate: Annotated[float, typer.Option("--learning-rate", min=0.0, help="Initial AdamW learning rate.")] = 2e-3,
    name: Annotated[str | None, typer.Option("--name", help="Model name recorded in the model file.")] = None,
    context_slices: Annotated[
        int | None,
        typer.Option(
            "--context-slices", min=0,
            help="Neighbouring slices on each side as extra input channels (2.5D). Default: 0, or --init's setting "
            "(a 2D --init model can start a 2.5D network).",
        ),
    ] = None,
    patch_size: Annotated[
        int | None,
        typer.Option("--patch-size", min=16, help="Square training crop in pixels at the model spacing (multiple of 16). "
                     "Default: 144, or --init's setting."),
    ] = None,
) -> None:
    """Train the 2D U-Net (Dice + cross-entropy, heavy augmentation); resumable and seeded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from opencmr.segment.config import SegmentationConfig
    from opencmr.segment.train import TrainingConfig
    from opencmr.segment.train import train as run_training

    config = TrainingConfig(
        iterations=iterations, batch_size=batch_size, learning_rate=learning_rate, n_validation=validation,
        validate_every=validate_every,
        checkpoint_every=min(250, validate_every), seed=seed, threads=threads,
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val Dice {task.fields[dice]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    ) as bar:
        loading = bar.add_task("loading patients", total=None, loss="-", dice="-")
        task = bar.add_task("training", total=iterations, loss="-", dice="-", visible=False)

        def on_load(done: int, total: int) -> None:
            bar.update(loading, completed=done, total=total)

        def on_step(done: int, total: int, loss: float, dice: float | None) -> None:
            bar.update(task, completed=done, visible=True, loss=f"{loss:.3f}", **({} if dice is None else {"dice": f"{dice:.3f}"}))

        given = {k: v for k, v in (("context_slices", context_slices), ("patch_size", patch_size and (patch_size,) * 2))
                 if v is not None}
        if given and init is not None:
            from opencmr.segment.model import load_model

            seg_config = dataclasses.replace(load_model(init).config, **given)
        else:
            seg_config = SegmentationConfig(**given) if given else None
        selected = run_training(
            data, out, seg_config, config=config,
            resume=resume, init=init, name=name, progress=on_step, loading_progress=on_load,
        )
    console.print(f"model: {selected}", highlight=False)


@app.command("export-onnx")
@_user_errors
def export_onnx_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .onnx file.", show_default=False)],
    model: Annotated[Path | None, typer.Option("--model", help="Model file (.pt); default: the bundled model.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
) -> None:
    """Export a segmentation model to ONNX (its preprocessing settings go into the file's metadata)."""
    from opencmr.errors import OutputError
    from opencmr.segment.model import load_model
    from opencmr.segment.onnx import export_onnx

    if output.suffix.lower() != ".onnx":
        raise OutputError(output, "output must end in .onnx (the suffix tells opencmr to run it with ONNX Runtime)")
    written = export_onnx(load_model(model), output, overwrite=overwrite)
    console.print(f"wrote {written}", highlight=False)


# Commands defined in modules of their own, listed after the ones above in --help. Those modules import
# opencmr.cli only when a command runs (opencmr.cli_errors), so these imports stay one-way.
from opencmr.cli_batch import batch  # noqa: E402
from opencmr.cli_evaluate import agreement, evaluate, evaluate_diagnosis  # noqa: E402
from opencmr.cli_meta import meta_app  # noqa: E402
from opencmr.cli_serve import serve  # noqa: E402

app.command("evaluate")(evaluate)
app.command("evaluate-diagnosis")(evaluate_diagnosis)
app.command("agreement")(agreement)
app.command("batch")(batch)
app.command("serve")(serve)
app.add_typer(meta_app, name="meta")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="opencmr")


if __name__ == "__main__":  # pragma: no cover
    main()
