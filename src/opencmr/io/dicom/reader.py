"""Read the short-axis cine of a DICOM export: a folder tree, a zip archive or one multi-frame file.

:func:`read_dicom` finds the image files (classic single-frame or enhanced
multi-frame, any transfer syntax pydicom's codecs decode), keeps one study,
assembles and validates the cine stacks (:mod:`opencmr.io.dicom.stacks`),
chooses the short-axis cine by geometry (or the series the user names), and
returns a :class:`~opencmr.io.study.CineStudy` with RescaleSlope/Intercept
applied per image (and Philips' private MR Scale Slope, so that differently
scaled series agree) and a provenance record of what was used.

The affine maps the voxel index ``(col, row, slice)`` to RAS+ millimetres
(DICOM's LPS with the first two axes negated), as NIfTI does [1]_.

References
----------
.. [1] NiBabel, "DICOM orientation": the voxel-to-patient affine of a DICOM
   slice stack. https://nipy.org/nibabel/dicom/dicom_orientation.html
.. [2] DICOM PS3.3, C.11.1 Modality LUT Module (RescaleSlope, RescaleIntercept)
   and C.7.6.16.2.9 Pixel Value Transformation Macro.
.. [3] DICOM PS3.5, 10 Transfer Syntax (JPEG Lossless, JPEG-LS, JPEG 2000, RLE).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from opencmr.errors import InputError, describe_exception
from opencmr.io.dicom.headers import DicomImage, declares_image, images_from_dataset, integer, number, text
from opencmr.io.dicom.sources import list_sources
from opencmr.io.dicom.stacks import SeriesSummary, Stack, analyse_images, assemble_stack, directions, series_tokens
from opencmr.io.study import CineStudy, Geometry, StudyMetadata

__all__ = ["ProgressCallback", "read_dicom", "read_dicom_folder", "scan_dicom_folder"]

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` while files are read (stages ``"headers"``, ``"pixels"``)."""

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
class _Scan:
    """Every image of one study, grouped by series, with counts of skipped files."""

    path: Path
    series: dict[str, list[DicomImage]]
    n_not_dicom: int
    n_not_image: int


def _study_key(image: DicomImage) -> tuple[str, str]:
    return image.patient_id, image.study_uid


def _describe_studies(studies: dict[tuple[str, str], list[DicomImage]]) -> str:
    parts = []
    for (patient, uid), images in studies.items():
        date = text(images[0].dataset, "StudyDate") or "no date"
        n_series = len({image.series_uid for image in images})
        parts.append(f"patient {patient or '?'}, study {uid or '?'} ({date}, {n_series} series)")
    return "; ".join(parts)


def _scan(path: Path, study: str | None, progress: ProgressCallback | None) -> _Scan:
    sources = list(list_sources(Path(path)))
    images: list[DicomImage] = []
    n_not_dicom = n_not_image = 0
    for done, source in enumerate(sources, start=1):
        if progress is not None:
            progress("headers", done, len(sources))
        ds = source.read_header()
        if ds is None:
            n_not_dicom += 1
            continue
        if not text(ds, "SeriesInstanceUID") or integer(ds, "Rows") is None or integer(ds, "Columns") is None:
            if declares_image(ds):
                raise InputError(source, "truncated or corrupt DICOM file: the header ends before the image attributes")
            n_not_image += 1  # DICOMDIR, structured reports, presentation states, ...
            continue
        images.extend(images_from_dataset(source, ds))
    if not images:
        raise InputError(
            path, f"no DICOM images found ({n_not_dicom} non-DICOM and {n_not_image} non-image DICOM files skipped)"
        )
    studies: dict[tuple[str, str], list[DicomImage]] = {}
    for image in images:
        studies.setdefault(_study_key(image), []).append(image)
    if study is not None:
        found = studies
        studies = {k: v for k, v in studies.items() if study in k}
        if not studies:
            raise InputError(
                path, f"no study with StudyInstanceUID or PatientID {study!r}; found: {_describe_studies(found)}"
            )
    if len(studies) > 1:
        raise InputError(
            path,
            f"holds {len(studies)} studies: {_describe_studies(studies)}; choose one with --study UID or PATIENT_ID",
        )
    series: dict[str, list[DicomImage]] = {}
    for image in next(iter(studies.values())):
        series.setdefault(image.series_uid, []).append(image)
    return _Scan(path=Path(path), series=series, n_not_dicom=n_not_dicom, n_not_image=n_not_image)


def _listing(summaries: Sequence[SeriesSummary]) -> str:
    return "; ".join(f"{s.label()}: {s.reason}" for s in summaries)


def _select(
    path: Path, summaries: list[SeriesSummary], candidates: list[Stack], singles: list[Stack], series: str | None
) -> Stack:
    """The stack to read: the one ``series`` names, else the best short-axis candidate."""
    if series is not None:
        return _named(path, summaries, candidates, singles, str(series).strip())
    if not candidates:
        raise InputError(path, f"no short-axis cine series found: {_listing(summaries)}")
    best = candidates[0]
    if len(candidates) > 1 and best.rank <= candidates[1].rank:
        tied = [c for c in candidates if c.rank == best.rank]
        raise InputError(path, f"several short-axis cine candidates: {_choices(tied)}; choose one with --series")
    if not best.rank[0]:
        raise InputError(
            path,
            f"no double-oblique (short-axis) cine stack found, only stacks in patient-axis planes: "
            f"{_choices(candidates)}; if one of them is the short-axis cine, choose it with --series",
        )
    return best


def _choices(stacks: Sequence[Stack]) -> str:
    return "; ".join(
        f"{c.summary.label()}, {c.summary.kind} ({c.summary.n_positions} positions x {c.summary.n_phases} phases, "
        f"--series {c.summary.selector})"
        for c in stacks
    )


def _named(
    path: Path, summaries: list[SeriesSummary], candidates: list[Stack], singles: list[Stack], wanted: str
) -> Stack:
    """The stack ``--series`` names; a list of one-slice series is assembled as given."""
    hits = [stack for stack in candidates + singles if stack.summary.matches(wanted)]
    if len(hits) > 1:
        uids = ", ".join(stack.summary.series_uid for stack in hits)
        raise InputError(path, f"several series are numbered {wanted!r}; choose one by UID with --series: {uids}")
    if hits:
        return hits[0]
    tokens = series_tokens(wanted)
    listed = [s for s in singles if {s.summary.series_uid, str(s.summary.series_number)} & tokens]
    if len(tokens) > 1 and len(listed) == len(tokens):
        stack = assemble_stack(listed)
        if not stack.grid:
            raise InputError(path, f"series {wanted} cannot be read as one stack: {stack.summary.reason}")
        return stack
    named = [s for s in summaries if s.matches(wanted)]
    if named:
        raise InputError(path, f"{named[0].label()} is not a cine: {named[0].reason}")
    raise InputError(path, f"no series with number or UID {wanted!r}; found: {_listing(summaries)}")


# --------------------------------------------------------------------------- pixels


def _decode(image: DicomImage, ds: Dataset) -> np.ndarray:
    """All frames ``(frames, rows, cols)`` of one file's pixel data, with a clear error when no codec can decode it."""
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            raise InputError(
                image.source, f"pixel data in transfer syntax {syntax.name} ({syntax}): no decoder exists"
            ) from None
        if not decoder.is_available:
            missing = "; ".join(f"{name}: {', '.join(deps)}" for name, deps in decoder.missing_dependencies.items())
            raise InputError(
                image.source,
                f"pixel data in transfer syntax {syntax.name} ({syntax}) needs a codec that is not installed ({missing})",
            )
    try:
        raw = np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a bad file
        name = f" in transfer syntax {syntax.name}" if syntax is not None else ""
        raise InputError(
            image.source, f"unreadable or truncated pixel data{name} ({describe_exception(exc)})"
        ) from None
    return raw[None] if raw.ndim == 2 else raw


def _read_pixels(stack: Stack, progress: ProgressCallback | None) -> np.ndarray:
    """Rescaled intensities ``[frame, slice, row, col]`` (float32), reading each file once."""
    images = stack.images
    first = images[0]
    n_slices, n_phases = len(stack.grid), len(stack.grid[0])
    out = np.empty((n_phases, n_slices, int(first.rows or 0), int(first.cols or 0)), np.float32)
    where = {id(image): (f, s) for s, row in enumerate(stack.grid) for f, image in enumerate(row)}
    by_source: dict[object, list[DicomImage]] = {}
    for image in images:
        by_source.setdefault(image.source, []).append(image)
    done = 0
    for source, members in by_source.items():
        ds = members[0].source.read()
        frames = _decode(members[0], ds)
        for image in members:
            k = image.frame or 0
            if k >= frames.shape[0] or frames.shape[1:] != (image.rows, image.cols):
                raise InputError(
                    source,
                    f"pixel data of shape {frames.shape} does not match {image.rows}x{image.cols} for {image.name}",
                )
            plane = frames[k].astype(np.float32)
            if image.rescale_slope is not None and image.rescale_slope != 1.0:
                plane *= image.rescale_slope
            if image.rescale_intercept:
                plane += image.rescale_intercept
            if image.vendor_scale is not None:
                plane /= (image.rescale_slope or 1.0) * image.vendor_scale
            out[where[id(image)]] = plane
            done += 1
            if progress is not None:
                progress("pixels", done, len(images))
    return out


# --------------------------------------------------------------------------- geometry, timing, metadata


def _affine(stack: Stack) -> np.ndarray:
    """RAS+ affine of the voxel index ``(col, row, slice)`` ([1]_)."""
    first = stack.grid[0][0]
    row, col = directions(first.orientation or ())  # type: ignore[misc]
    row_spacing, col_spacing = first.pixel_spacing or (1.0, 1.0)
    origin = np.asarray(first.position, dtype=np.float64)
    n = len(stack.grid)
    if n > 1:
        step = (np.asarray(stack.grid[-1][0].position) - origin) / (n - 1)
    else:
        step = stack.normal * (first.slice_thickness or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = col_spacing * row
    lps[:3, 1] = row_spacing * col
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return _LPS_TO_RAS @ lps


def _slice_rr(stack: Stack) -> list[float | None]:
    """The RR interval (ms) recorded for each slice position (its breath-hold), or None."""
    return [row[0].rr_interval_ms for row in stack.grid]


def _frame_times(stack: Stack) -> tuple[float, ...] | None:
    """Trigger time of each phase: the mean over slices, each slice's times scaled to the mean RR interval.

    Slices acquired in separate breath-holds have different RR intervals; a
    phase is the same fraction of each slice's cycle, so times are normalised
    by each slice's RR before averaging (plain mean when RR is unknown).
    """
    times = np.array([[image.trigger_time for image in row] for row in stack.grid], dtype=object)
    if any(t is None for t in times.ravel()):
        return None
    times = times.astype(np.float64)
    rr = _slice_rr(stack)
    if all(r is not None for r in rr):
        rr_arr = np.asarray(rr, dtype=np.float64)
        times = times / rr_arr[:, None] * rr_arr.mean()
    return tuple(float(t) for t in times.mean(axis=0))


def _heart_rate(ds: Dataset, stack: Stack) -> float | None:
    """From the mean RR interval of the slices (the frame times are scaled to it), else HeartRate."""
    rr = [r for r in _slice_rr(stack) if r]
    if rr:
        return 60000.0 / float(np.mean(rr))
    rate = number(ds, "HeartRate")
    return rate if rate is not None and rate > 0 else None


def _pitch(stack: Stack) -> float | None:
    if len(stack.grid) < 2:
        return None
    span = np.asarray(stack.grid[-1][0].position) - np.asarray(stack.grid[0][0].position)
    return float(np.linalg.norm(span)) / (len(stack.grid) - 1)


def _spacing_notes(stack: Stack, thickness: float | None, ds: Dataset) -> list[str]:
    pitch = _pitch(stack)
    if pitch is None:
        return []
    notes = []
    if thickness is not None and pitch > thickness + 0.01:
        notes.append(
            f"slice gap: positions are {pitch:.2f} mm apart but SliceThickness is {thickness:.2f} mm; "
            "the slice spacing is the position pitch"
        )
    elif thickness is not None and pitch < thickness - 0.01:
        notes.append(f"overlapping slices: positions are {pitch:.2f} mm apart, SliceThickness is {thickness:.2f} mm")
    between = number(ds, "SpacingBetweenSlices")
    if between is not None and abs(between - pitch) > 0.01:
        notes.append(
            f"SpacingBetweenSlices ({between:.2f} mm) differs from the position pitch ({pitch:.2f} mm); the pitch is used"
        )
    return notes


def _rr_notes(stack: Stack) -> list[str]:
    rr = [r for r in _slice_rr(stack) if r is not None]
    if len(rr) < 2 or max(rr) - min(rr) < 1.0:
        return []
    return [
        (
            f"RR intervals differ between slices (breath-holds): {min(rr):.0f}-{max(rr):.0f} ms "
            f"(spread {max(rr) - min(rr):.0f} ms); phases are aligned by phase index"
        )
    ]


def _scaling_notes(stack: Stack) -> list[str]:
    scaled = [image for image in stack.images if image.vendor_scale is not None]
    if not scaled:
        return []
    return [
        (
            f"Philips floating-point scaling applied to {len(scaled)} of {len(stack.images)} images "
            "(rescaled value / (RescaleSlope x MR Scale Slope), so that series scaled differently agree)"
        )
    ]


def _iso_date(value: str) -> str | None:
    """A DICOM DA value (``YYYYMMDD``) as ``YYYY-MM-DD``; None when empty or not a valid date.

    >>> _iso_date("20261127"), _iso_date(""), _iso_date("20261340"), _iso_date("202611")
    ('2026-11-27', None, None, None)
    """
    import datetime

    if not re.fullmatch(r"\d{8}", value.strip()):  # strptime alone takes "202611" as 2026-01-01
        return None
    try:
        return datetime.datetime.strptime(value.strip(), "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _metadata(scan: _Scan, stack: Stack, summaries: list[SeriesSummary], notes: list[str]) -> StudyMetadata:
    ds = stack.grid[0][0].dataset
    size_m = number(ds, "PatientSize")
    weight = number(ds, "PatientWeight")
    ignored = [s for s in summaries if not s.chosen and s.kind != "stack slice"]
    notes = [f"ignored {s.label()}: {s.reason}" for s in ignored] + notes
    if scan.n_not_dicom:
        notes.append(f"{scan.n_not_dicom} non-DICOM file(s) skipped")
    if scan.n_not_image:
        notes.append(f"{scan.n_not_image} DICOM file(s) without an image skipped (DICOMDIR, reports, ...)")
    n_acquired = integer(ds, "CardiacNumberOfImages")
    return StudyMetadata(
        source=scan.path,
        source_format="dicom",
        patient_id=text(ds, "PatientID") or None,
        patient_name=text(ds, "PatientName") or None,
        study_uid=text(ds, "StudyInstanceUID") or None,
        study_date=_iso_date(text(ds, "StudyDate")),
        series_uid=text(ds, "SeriesInstanceUID") or None,
        series_description=text(ds, "SeriesDescription") or None,
        height_cm=round(size_m * 100.0, 6) if size_m else None,
        weight_kg=weight if weight else None,
        sex=text(ds, "PatientSex").upper() or None,
        heart_rate_bpm=_heart_rate(ds, stack),
        n_frames_acquired=n_acquired if n_acquired and n_acquired > 0 else len(stack.grid[0]),
        notes=tuple(notes),
    )


def provenance(stack: Stack, summaries: Sequence[SeriesSummary], geometry: Geometry) -> dict[str, Any]:
    """What was read, for the JSON sidecar of ``opencmr convert``: series, files, orientation, pitch and gaps, timing.

    Keys: ``series`` (the chosen stack's series: ``number``, ``uid``,
    ``description``), ``kind``, ``orientation_lps`` (ImageOrientationPatient),
    ``slice_normal_lps``, ``slice_pitch_mm``, ``slice_thickness_mm``,
    ``slice_gap_mm`` (pitch minus thickness; negative for overlap),
    ``slices`` (per slice position: ``location_mm`` along the normal,
    ``series_uid``, ``rr_interval_ms``, ``trigger_times_ms`` and ``files``,
    a multi-frame file's frames as ``FILE#FRAME``, 1-based), and
    ``series_found`` (every series summary).
    """
    first = stack.grid[0][0]
    pitch = _pitch(stack)
    thickness = first.slice_thickness
    chosen = stack.summary
    members = list(zip(chosen.members, chosen.member_numbers)) or [(chosen.series_uid, chosen.series_number)]
    return {
        "series": [{"uid": uid, "number": n, "description": chosen.description} for uid, n in members],
        "kind": stack.summary.kind,
        "orientation_lps": list(first.orientation or ()),
        "slice_normal_lps": [float(v) for v in stack.normal],
        "slice_pitch_mm": pitch,
        "slice_thickness_mm": thickness,
        "slice_gap_mm": None if pitch is None or thickness is None else round(pitch - thickness, 4),
        "affine_ras": geometry.to_dict()["affine_ras"],
        "slices": [
            {
                "location_mm": float(location),
                "series_uid": row[0].series_uid,
                "rr_interval_ms": row[0].rr_interval_ms,
                "trigger_times_ms": [image.trigger_time for image in row],
                "files": [str(image.source) + ("" if image.frame is None else f"#{image.frame + 1}") for image in row],
            }
            for location, row in zip(stack.locations_mm, stack.grid)
        ],
        "series_found": [s.to_dict() for s in summaries],
    }


# --------------------------------------------------------------------------- entry points


def _analyse(path: Path, series: str | None, study: str | None, progress: ProgressCallback | None):
    scan = _scan(path, study, progress)
    summaries, candidates, singles = analyse_images(scan.series)
    return scan, summaries, candidates, singles


def scan_dicom_folder(folder: Path, series: str | None = None, study: str | None = None) -> list[SeriesSummary]:
    """Summarise every DICOM image series under ``folder`` (a folder tree, a zip archive or one file).

    Parameters
    ----------
    folder : pathlib.Path
        DICOM files in any sub-folder layout, with any file names.
    series, study : str, optional
        As for :func:`read_dicom`; the stack that would be read is marked ``chosen``.

    Returns
    -------
    list of SeriesSummary
        One per series (sorted by SeriesNumber), then one per stack assembled
        from one-slice series; ``kind``, ``is_candidate`` and ``reason`` say what
        each is and why.

    Raises
    ------
    InputError
        The path does not exist, holds no DICOM images, several studies and no
        ``study``, or a DICOM file whose header is corrupt.
    """
    scan, summaries, candidates, singles = _analyse(folder, series, study, None)
    try:
        chosen = _select(scan.path, summaries, candidates, singles, series)
    except InputError:
        return summaries
    return _mark_chosen(summaries, chosen)


def _mark_chosen(summaries: list[SeriesSummary], chosen: Stack) -> list[SeriesSummary]:
    return [replace(s, chosen=True) if s == chosen.summary else s for s in summaries]


def read_dicom(
    path: Path, series: str | None = None, progress: ProgressCallback | None = None, study: str | None = None
) -> CineStudy:
    """Read the short-axis cine (or the named series) of a DICOM folder, zip archive or multi-frame file.

    Parameters
    ----------
    path : pathlib.Path
        Folder (searched recursively; DICOMDIR and non-DICOM files are
        skipped), ``.zip`` archive, or a single (enhanced multi-frame) file.
    series : str, optional
        SeriesNumber or SeriesInstanceUID of the series to read; for a stack
        stored one series per slice, ``FIRST-LAST`` series numbers. A
        single-position (long-axis) cine is read as a one-slice study.
        Needed when several stacks are equally likely to be the short-axis cine.
    progress : callable, optional
        ``progress(stage, done, total)``, called for every file and image read.
    study : str, optional
        StudyInstanceUID or PatientID, when the path holds several studies.

    Returns
    -------
    CineStudy
        Image ``[frame, slice, row, col]`` (rescaling applied per image), RAS+
        geometry, frame times and metadata; ED/ES frames are left unset.
        ``metadata.notes`` lists ignored series, skipped files, slice gaps and
        RR differences; ``metadata.provenance`` says what was read (:func:`provenance`).

    Raises
    ------
    InputError
        Missing path; no DICOM images; several studies and no ``study``; no
        candidate, or several equally likely ones and no ``series``; duplicate
        images, unequal numbers of phases per position, mixed image sizes or
        pixel spacings, unevenly spaced positions (a missing slice), missing
        geometry; pixel data no installed codec decodes. The message names the
        file or folder.

    Examples
    --------
    >>> study = read_dicom(Path("export/"), series="7")  # doctest: +SKIP
    >>> study.image.shape  # (frames, slices, rows, cols)  # doctest: +SKIP
    (25, 12, 208, 256)
    """
    scan, summaries, candidates, singles = _analyse(path, series, study, progress)
    if Path(path).is_file() and sum(len(images) for images in scan.series.values()) == 1:
        raise InputError(
            path, "is a single DICOM image; give the folder (or zip archive) that holds the whole cine series"
        )
    stack = _select(scan.path, summaries, candidates, singles, series)
    if stack.summary not in summaries:  # a stack assembled from the series the user listed
        summaries = [s for s in summaries if s.series_uid not in stack.summary.members] + [stack.summary]
    summaries = _mark_chosen(summaries, stack)
    image = _read_pixels(stack, progress)
    first = stack.grid[0][0]
    geometry = Geometry(
        affine=_affine(stack),
        shape=(len(stack.grid), int(first.rows or 0), int(first.cols or 0)),
        slice_thickness_mm=first.slice_thickness,
    )
    notes = _spacing_notes(stack, first.slice_thickness, first.dataset) + _rr_notes(stack) + _scaling_notes(stack)
    metadata = _metadata(scan, stack, summaries, notes)
    metadata = replace(metadata, provenance=provenance(stack, summaries, geometry))
    return CineStudy(image=image, geometry=geometry, metadata=metadata, frame_times_ms=_frame_times(stack))


def read_dicom_folder(folder: Path, series: str | None = None, progress: ProgressCallback | None = None) -> CineStudy:
    """Read the short-axis cine stack of a DICOM folder (:func:`read_dicom` with its defaults)."""
    return read_dicom(folder, series=series, progress=progress)
