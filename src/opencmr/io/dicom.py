"""Read a short-axis cine stack from a folder of classic (single-frame) DICOM MR images.

A scanner export folder usually holds several series: localisers, long-axis
cines (one slice position each), static sequences and the short-axis cine
stack. :func:`scan_dicom_folder` reads every file's header and says, for each
series, whether it can be a short-axis cine and why (not); :func:`read_dicom_folder`
picks the short-axis cine (or the one the user names) and returns a
:class:`~opencmr.io.study.CineStudy`.

Ordering and geometry follow the headers only, never the file names:

* slices are sorted by their position along the slice normal
  ``n = row_direction x column_direction`` (``dot(ImagePositionPatient, n)``),
  with row and column directions from ImageOrientationPatient;
* within a slice position, phases are sorted by TriggerTime (InstanceNumber
  when TriggerTime is missing);
* the slice spacing is the pitch between slice positions, not SliceThickness
  (the two differ when there is a gap between slices);
* the affine maps the voxel index ``(col, row, slice)`` to RAS+ millimetres
  (DICOM's LPS with the first two axes negated), as NIfTI does.

References
----------
.. [1] DICOM PS3.3, C.7.6.2 Image Plane Module (ImagePositionPatient,
   ImageOrientationPatient, PixelSpacing, SliceThickness).
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.2.html
.. [2] DICOM PS3.3, C.8.3.1 MR Image Module (TriggerTime, NominalInterval,
   CardiacNumberOfImages, HeartRate, ImageType).
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.8.3.html
.. [3] NiBabel, "DICOM orientation": the voxel-to-patient affine of a DICOM
   slice stack. https://nipy.org/nibabel/dicom/dicom_orientation.html
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from opencmr.errors import InputError, describe_exception
from opencmr.io.study import CineStudy, Geometry, StudyMetadata

__all__ = ["ProgressCallback", "SeriesSummary", "read_dicom_folder", "scan_dicom_folder"]

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` while files are read (stages ``"headers"``, ``"pixels"``)."""

_POSITION_TOL_MM = 0.05
"""Images whose positions along the normal differ by less than this share a slice position."""
_TIME_TOL_MS = 0.01
"""Trigger times closer than this are the same cardiac phase (a duplicate image)."""
_ORIENTATION_TOL = 1e-3
"""Largest difference between direction cosines of images of one stack."""
_PITCH_REL_TOL = 0.01
"""Largest relative deviation of one slice pitch from the median pitch."""
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_MAX_NAMES = 3


@dataclass(frozen=True)
class SeriesSummary:
    """What :func:`scan_dicom_folder` found about one series.

    Parameters
    ----------
    series_uid : str
        SeriesInstanceUID.
    series_number : int or None
        SeriesNumber, when recorded.
    description : str
        SeriesDescription (empty when absent).
    modality : str
        Modality (``"MR"`` for the series opencmr reads).
    n_images : int
        Number of image files in the series.
    rows, cols : int or None
        Image size of the first image.
    n_positions : int or None
        Distinct slice positions along the slice normal (None when the
        geometry tags are missing or inconsistent).
    n_phases : int or None
        Cardiac phases per slice position (distinct trigger times, or images
        per position when TriggerTime is absent).
    orientation : tuple of float or None
        ImageOrientationPatient of the first image.
    is_candidate : bool
        Whether the series can be read as a short-axis cine stack.
    reason : str
        Why it is, or is not, a candidate.
    """

    series_uid: str
    series_number: int | None
    description: str
    modality: str
    n_images: int
    rows: int | None
    cols: int | None
    n_positions: int | None
    n_phases: int | None
    orientation: tuple[float, ...] | None
    is_candidate: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dictionary."""
        out = asdict(self)
        out["orientation"] = None if self.orientation is None else list(self.orientation)
        return out

    def label(self) -> str:
        """One-line description: number, description, image count."""
        number = "?" if self.series_number is None else str(self.series_number)
        return f"series {number} '{self.description}' ({self.n_images} images)"


@dataclass(frozen=True, eq=False)
class _Header:
    """The parts of one image file's header that ordering and validation use."""

    path: Path
    dataset: Dataset
    series_uid: str
    series_number: int | None
    description: str
    modality: str
    image_type: tuple[str, ...]
    rows: int | None
    cols: int | None
    n_frames: int
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    trigger_time: float | None
    instance_number: int | None


@dataclass(frozen=True, eq=False)
class _Stack:
    """A validated slice stack: images ``grid[position][phase]`` sorted along the normal and in time."""

    grid: tuple[tuple[_Header, ...], ...]
    normal: np.ndarray
    locations_mm: np.ndarray


@dataclass(frozen=True, eq=False)
class _Scan:
    """Every image header of a folder grouped by series, with counts of skipped files."""

    folder: Path
    series: dict[str, list[_Header]]
    n_not_dicom: int
    n_not_image: int


# --------------------------------------------------------------------------- header reading


def _values(ds: Dataset, keyword: str) -> list[object] | None:
    """The value(s) of an element as a list, or None when absent or empty."""
    try:
        if keyword not in ds:
            return None
        value = ds[keyword].value
    except Exception:  # noqa: BLE001 - a malformed value counts as missing
        return None
    if value is None or value == "":
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _floats(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    """``count`` finite numbers from a DS/FD element, or None when missing or malformed."""
    values = _values(ds, keyword)
    if values is None or len(values) != count:
        return None
    try:
        numbers = tuple(float(v) for v in values)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return numbers if all(np.isfinite(numbers)) else None


def _float(ds: Dataset, keyword: str) -> float | None:
    found = _floats(ds, keyword, 1)
    return None if found is None else found[0]


def _int(ds: Dataset, keyword: str) -> int | None:
    value = _float(ds, keyword)
    return None if value is None else int(round(value))


def _text(ds: Dataset, keyword: str) -> str:
    values = _values(ds, keyword)
    return "" if values is None else "\\".join(str(v) for v in values).strip()


def _parse_header(path: Path, ds: Dataset) -> _Header:
    image_type = tuple(str(v).strip().upper() for v in (_values(ds, "ImageType") or []))
    return _Header(
        path=path,
        dataset=ds,
        series_uid=_text(ds, "SeriesInstanceUID"),
        series_number=_int(ds, "SeriesNumber"),
        description=_text(ds, "SeriesDescription"),
        modality=_text(ds, "Modality").upper(),
        image_type=image_type,
        rows=_int(ds, "Rows"),
        cols=_int(ds, "Columns"),
        n_frames=_int(ds, "NumberOfFrames") or 1,
        position=_floats(ds, "ImagePositionPatient", 3),
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        pixel_spacing=_floats(ds, "PixelSpacing", 2),
        trigger_time=_float(ds, "TriggerTime"),
        instance_number=_int(ds, "InstanceNumber"),
    )


def _read_header(path: Path) -> Dataset | None:
    """The header of ``path`` without pixel data; None when the file is not DICOM.

    pydicom stops quietly at the end of a truncated file, so :func:`_scan` also
    checks that files declaring an image SOP class have image attributes.

    Raises
    ------
    InputError
        The file starts like DICOM but its header cannot be parsed.
    """
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or describe_exception(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a corrupt file
        raise InputError(path, f"cannot read the DICOM header (truncated or corrupt file: {describe_exception(exc)})") from None


def _declares_image(ds: Dataset) -> bool:
    """Whether the file meta (or dataset) names an image storage SOP class, e.g. MR Image Storage."""
    meta = getattr(ds, "file_meta", None)
    uid = (meta.get("MediaStorageSOPClassUID") if meta is not None else None) or ds.get("SOPClassUID")
    try:
        return uid is not None and "Image Storage" in UID(str(uid)).name
    except Exception:  # noqa: BLE001 - an unparsable UID names nothing
        return False


def _check_folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise InputError(folder, "does not exist")
    if not folder.is_dir():
        raise InputError(folder, "is a single file; give the folder that holds the DICOM series")
    return folder


def _scan(folder: Path, progress: ProgressCallback | None = None) -> _Scan:
    folder = _check_folder(folder)
    series: dict[str, list[_Header]] = {}
    n_not_dicom = 0
    n_not_image = 0
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    for done, path in enumerate(paths, start=1):
        if progress is not None:
            progress("headers", done, len(paths))
        ds = _read_header(path)
        if ds is None:
            n_not_dicom += 1
            continue
        header = _parse_header(path, ds)
        if not header.series_uid or header.rows is None or header.cols is None:
            if _declares_image(ds):
                raise InputError(path, "truncated or corrupt DICOM file: the header ends before the image attributes")
            n_not_image += 1  # DICOMDIR, structured reports, presentation states, ...
            continue
        series.setdefault(header.series_uid, []).append(header)
    if not series:
        raise InputError(
            folder,
            f"no DICOM images found ({n_not_dicom} non-DICOM and {n_not_image} non-image DICOM files skipped)",
        )
    return _Scan(folder=folder, series=series, n_not_dicom=n_not_dicom, n_not_image=n_not_image)


# --------------------------------------------------------------------------- series analysis


def _names(headers: Sequence[_Header]) -> str:
    shown = ", ".join(h.path.name for h in headers[:_MAX_NAMES])
    more = len(headers) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _directions(orientation: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """Row and column direction cosines (LPS), or None unless they are orthogonal unit vectors."""
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:], dtype=np.float64)
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        return None
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _cluster(values: np.ndarray, tol: float) -> list[list[int]]:
    """Indices of ``values`` grouped into runs of sorted values closer than ``tol``."""
    order = np.argsort(values, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and values[i] - values[groups[-1][-1]] <= tol:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return groups


def _image_problem(headers: Sequence[_Header]) -> str | None:
    """Why a series is not a single-frame MR stack with complete geometry, or None."""
    first = headers[0]
    if first.modality != "MR":
        return f"not MR (modality {first.modality or 'missing'})"
    if any("LOCALIZER" in h.image_type for h in headers):
        return "localizer (ImageType LOCALIZER)"
    if any(h.n_frames > 1 for h in headers):
        return "multi-frame (enhanced) DICOM images are not supported"
    sizes = sorted({(h.rows, h.cols) for h in headers})
    if len(sizes) > 1:
        return "mixed image sizes (" + ", ".join(f"{r}x{c}" for r, c in sizes) + ")"
    for keyword, attr in (
        ("ImageOrientationPatient", "orientation"),
        ("ImagePositionPatient", "position"),
        ("PixelSpacing", "pixel_spacing"),
    ):
        missing = [h for h in headers if getattr(h, attr) is None]
        if missing:
            return f"missing or invalid {keyword} in {len(missing)} image(s) ({_names(missing)})"
    orientations = np.array([h.orientation for h in headers])
    if np.abs(orientations - orientations[0]).max() > _ORIENTATION_TOL:
        return "inconsistent orientation (images are not parallel with the same in-plane axes)"
    if _directions(first.orientation or ()) is None:
        return f"invalid ImageOrientationPatient (not two orthogonal unit vectors) in {first.path.name}"
    spacings = np.array([h.pixel_spacing for h in headers])
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        return "mixed PixelSpacing (" + ", ".join(sorted({f"{r:g}x{c:g}" for r, c in spacings})) + ")"
    return None


def _order_phases(headers: list[_Header], times_known: bool) -> tuple[list[_Header], str | None]:
    """Images of one slice position in temporal order, and a problem (duplicates) or None."""
    if times_known:
        ordered = sorted(headers, key=lambda h: (h.trigger_time, h.instance_number or 0))
        for a, b in zip(ordered, ordered[1:]):
            if abs((b.trigger_time or 0.0) - (a.trigger_time or 0.0)) <= _TIME_TOL_MS:
                return ordered, f"duplicate images at the same position and trigger time ({_names([a, b])})"
        return ordered, None
    if any(h.instance_number is None for h in headers):
        return headers, "cannot order phases: TriggerTime and InstanceNumber are missing"
    ordered = sorted(headers, key=lambda h: h.instance_number or 0)
    for a, b in zip(ordered, ordered[1:]):
        if a.instance_number == b.instance_number:
            return ordered, f"duplicate images with the same InstanceNumber and no TriggerTime ({_names([a, b])})"
    return ordered, None


def _pitch_problem(locations: np.ndarray) -> str | None:
    """Why slice positions (mm along the normal, ascending) are not evenly spaced, or None."""
    pitches = np.diff(locations)
    median = float(np.median(pitches))
    bad = np.flatnonzero(np.abs(pitches - median) > max(_PITCH_REL_TOL * median, 1e-3))
    if bad.size == 0:
        return None
    k = int(bad[0])
    return (
        f"non-uniform slice positions: {pitches[k]:.2f} mm between slice positions {k} and {k + 1} "
        f"(at {locations[k]:.2f} and {locations[k + 1]:.2f} mm along the slice normal) where the pitch "
        f"is otherwise {median:.2f} mm; a slice is missing or the stack is irregular"
    )


def _line_problem(grid: Sequence[Sequence[_Header]]) -> str | None:
    """Why image positions do not lie on one evenly stepped line, or None."""
    first = np.asarray(grid[0][0].position)
    n = len(grid)
    step = (np.asarray(grid[-1][0].position) - first) / (n - 1)
    worst = 0.0
    for s, images in enumerate(grid):
        for h in images:
            worst = max(worst, float(np.linalg.norm(np.asarray(h.position) - (first + s * step))))
    if worst > max(_POSITION_TOL_MM, _PITCH_REL_TOL * float(np.linalg.norm(step))):
        return f"slice positions do not lie on one straight, evenly stepped line (off by up to {worst:.2f} mm)"
    return None


def _analyse(headers: list[_Header]) -> tuple[SeriesSummary, _Stack | None]:
    """Summarise one series and, when it is a valid short-axis cine stack, sort it into a grid."""
    first = headers[0]

    def summary(candidate: bool, reason: str, n_pos: int | None = None, n_ph: int | None = None) -> SeriesSummary:
        return SeriesSummary(
            series_uid=first.series_uid,
            series_number=first.series_number,
            description=first.description,
            modality=first.modality,
            n_images=len(headers),
            rows=first.rows,
            cols=first.cols,
            n_positions=n_pos,
            n_phases=n_ph,
            orientation=first.orientation,
            is_candidate=candidate,
            reason=reason,
        )

    problem = _image_problem(headers)
    if problem is not None:
        return summary(False, problem), None
    row, col = _directions(first.orientation or ())  # type: ignore[misc]
    normal = np.cross(row, col)
    along = np.array([np.asarray(h.position) @ normal for h in headers])
    groups = [[headers[i] for i in g] for g in _cluster(along, _POSITION_TOL_MM)]
    n_pos = len(groups)
    times_known = all(h.trigger_time is not None for h in headers)
    if times_known:
        per_position = [len(_cluster(np.array([h.trigger_time for h in g]), _TIME_TOL_MS)) for g in groups]
    else:
        per_position = [len(g) for g in groups]
    n_ph = max(per_position)
    if n_pos < 2:
        return summary(False, "single slice position (long-axis or single-slice cine)", n_pos, n_ph), None
    if n_ph < 2:
        static = "no cardiac phases (static)"
        if max(len(g) for g in groups) > 1:
            static += "; several images per position share one trigger time"
        return summary(False, static, n_pos, n_ph), None
    grid = []
    for g in groups:
        ordered, problem = _order_phases(g, times_known)
        if problem is not None:
            return summary(False, problem, n_pos, n_ph), None
        grid.append(tuple(ordered))
    counts = Counter(len(g) for g in grid)
    if len(counts) > 1:
        usual = counts.most_common(1)[0][0]
        odd = [f"{len(g)} at slice position {k}" for k, g in enumerate(grid) if len(g) != usual]
        reason = f"different numbers of phases per slice position ({usual} at most, " + ", ".join(odd) + ")"
        return summary(False, reason, n_pos, n_ph), None
    locations = np.array([np.asarray(g[0].position) @ normal for g in grid])
    problem = _pitch_problem(locations) or _line_problem(grid)
    if problem is not None:
        return summary(False, problem, n_pos, n_ph), None
    reason = f"short-axis cine candidate ({n_pos} positions x {n_ph} phases)"
    return summary(True, reason, n_pos, n_ph), _Stack(grid=tuple(grid), normal=normal, locations_mm=locations)


def _analyse_all(scan: _Scan) -> list[tuple[SeriesSummary, _Stack | None]]:
    results = [_analyse(headers) for headers in scan.series.values()]
    results.sort(key=lambda r: (r[0].series_number is None, r[0].series_number or 0, r[0].series_uid))
    return results


def scan_dicom_folder(folder: Path) -> list[SeriesSummary]:
    """Summarise every DICOM image series under ``folder`` (searched recursively).

    Parameters
    ----------
    folder : pathlib.Path
        Folder of DICOM files, in any sub-folder layout and with any file names.

    Returns
    -------
    list of SeriesSummary
        One per SeriesInstanceUID, sorted by SeriesNumber; ``is_candidate`` and
        ``reason`` say whether the series can be read as a short-axis cine.

    Raises
    ------
    InputError
        ``folder`` does not exist, is a file, holds no DICOM images, or holds a
        DICOM file whose header is corrupt.

    Notes
    -----
    Only headers are read (``stop_before_pixels``); files that are not DICOM
    (no ``DICM`` prefix) and DICOM objects without an image are skipped.
    """
    return [summary for summary, _ in _analyse_all(_scan(folder))]


# --------------------------------------------------------------------------- reading a series


def _select(folder: Path, results: list[tuple[SeriesSummary, _Stack | None]], series: str | None) -> int:
    """Index in ``results`` of the series to read."""

    def listing(items: list[tuple[SeriesSummary, _Stack | None]]) -> str:
        return "; ".join(f"{s.label()}: {s.reason}" for s, _ in items)

    if series is not None:
        wanted = str(series).strip()
        hits = [i for i, (s, _) in enumerate(results) if wanted in (s.series_uid, str(s.series_number))]
        if not hits:
            raise InputError(folder, f"no series with number or UID {wanted!r}; found: {listing(results)}")
        if len(hits) > 1:
            uids = ", ".join(results[i][0].series_uid for i in hits)
            raise InputError(folder, f"several series are numbered {wanted!r}; choose one by UID with --series: {uids}")
        summary, stack = results[hits[0]]
        if stack is None:
            raise InputError(folder, f"{summary.label()} is not a short-axis cine: {summary.reason}")
        return hits[0]
    candidates = [i for i, (_, stack) in enumerate(results) if stack is not None]
    if not candidates:
        raise InputError(folder, f"no short-axis cine series found: {listing(results)}")
    if len(candidates) > 1:
        choices = "; ".join(
            f"series {results[i][0].series_number} '{results[i][0].description}' "
            f"({results[i][0].n_positions} positions x {results[i][0].n_phases} phases, UID {results[i][0].series_uid})"
            for i in candidates
        )
        raise InputError(
            folder, f"several short-axis cine candidates: {choices}; choose one with --series NUMBER or UID"
        )
    return candidates[0]


def _pixels(header: _Header) -> np.ndarray:
    """Rescaled intensities (float32, rows x cols) of one image file."""
    path = header.path
    try:
        ds = pydicom.dcmread(path)
        raw = np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a bad file
        raise InputError(path, f"unreadable or truncated pixel data ({describe_exception(exc)})") from None
    if raw.shape != (header.rows, header.cols):
        expected = f"{header.rows}x{header.cols}"
        raise InputError(path, f"pixel data of shape {raw.shape} does not match Rows x Columns {expected}")
    slope = _float(ds, "RescaleSlope")
    intercept = _float(ds, "RescaleIntercept")
    out = raw.astype(np.float32)
    if slope is not None and slope != 1.0:
        out *= slope
    if intercept:
        out += intercept
    return out


def _affine(stack: _Stack) -> np.ndarray:
    """RAS+ affine of the voxel index ``(col, row, slice)`` ([1]_, [3]_)."""
    first = stack.grid[0][0]
    row, col = _directions(first.orientation or ())  # type: ignore[misc]
    row_spacing, col_spacing = first.pixel_spacing or (1.0, 1.0)
    origin = np.asarray(first.position, dtype=np.float64)
    n = len(stack.grid)
    step = (np.asarray(stack.grid[-1][0].position) - origin) / (n - 1)
    lps = np.eye(4)
    lps[:3, 0] = col_spacing * row
    lps[:3, 1] = row_spacing * col
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return _LPS_TO_RAS @ lps


def _frame_times(stack: _Stack) -> tuple[float, ...] | None:
    """Mean TriggerTime of each phase across slice positions, when every image has one."""
    times = [[h.trigger_time for h in images] for images in stack.grid]
    if any(t is None for row in times for t in row):
        return None
    return tuple(float(t) for t in np.mean(np.array(times, dtype=np.float64), axis=0))


def _heart_rate(ds: Dataset) -> float | None:
    rate = _float(ds, "HeartRate")
    if rate is not None and rate > 0:
        return rate
    interval = _float(ds, "NominalInterval")
    if interval is not None and interval > 0:
        return 60000.0 / interval
    return None


def _spacing_notes(stack: _Stack, thickness: float | None, ds: Dataset) -> list[str]:
    pitch = float(np.linalg.norm(np.asarray(stack.grid[-1][0].position) - np.asarray(stack.grid[0][0].position)))
    pitch /= len(stack.grid) - 1
    notes = []
    if thickness is not None and pitch > thickness + 0.01:
        notes.append(
            f"slice gap: positions are {pitch:.2f} mm apart but SliceThickness is {thickness:.2f} mm; "
            "the slice spacing is the position pitch"
        )
    elif thickness is not None and pitch < thickness - 0.01:
        notes.append(f"overlapping slices: positions are {pitch:.2f} mm apart, SliceThickness is {thickness:.2f} mm")
    between = _float(ds, "SpacingBetweenSlices")
    if between is not None and abs(between - pitch) > 0.01:
        notes.append(
            f"SpacingBetweenSlices ({between:.2f} mm) differs from the position pitch ({pitch:.2f} mm); "
            "the pitch is used"
        )
    return notes


def _metadata(scan: _Scan, stack: _Stack, ignored: list[SeriesSummary], extra_notes: list[str]) -> StudyMetadata:
    ds = stack.grid[0][0].dataset
    size_m = _float(ds, "PatientSize")
    weight = _float(ds, "PatientWeight")
    notes = [f"ignored {s.label()}: {s.reason}" for s in ignored] + extra_notes
    if scan.n_not_dicom:
        notes.append(f"{scan.n_not_dicom} non-DICOM file(s) skipped")
    if scan.n_not_image:
        notes.append(f"{scan.n_not_image} DICOM file(s) without an image skipped")
    n_acquired = _int(ds, "CardiacNumberOfImages")
    return StudyMetadata(
        source=scan.folder,
        source_format="dicom",
        patient_id=_text(ds, "PatientID") or None,
        patient_name=_text(ds, "PatientName") or None,
        study_uid=_text(ds, "StudyInstanceUID") or None,
        series_uid=_text(ds, "SeriesInstanceUID") or None,
        series_description=_text(ds, "SeriesDescription") or None,
        height_cm=round(size_m * 100.0, 6) if size_m else None,
        weight_kg=weight if weight else None,
        sex=_text(ds, "PatientSex").upper() or None,
        heart_rate_bpm=_heart_rate(ds),
        n_frames_acquired=n_acquired if n_acquired and n_acquired > 0 else len(stack.grid[0]),
        notes=tuple(notes),
    )


def read_dicom_folder(
    folder: Path, series: str | None = None, progress: ProgressCallback | None = None
) -> CineStudy:
    """Read the short-axis cine stack of a DICOM folder.

    Parameters
    ----------
    folder : pathlib.Path
        Folder (searched recursively) holding the cine series, possibly beside
        other series (localisers, long-axis cines, static sequences).
    series : str, optional
        SeriesInstanceUID or SeriesNumber of the series to read; needed when
        the folder holds several short-axis cine candidates.
    progress : callable, optional
        ``progress(stage, done, total)``, called for every file read.

    Returns
    -------
    CineStudy
        Image ``[frame, slice, row, col]`` (RescaleSlope/Intercept applied),
        RAS+ geometry, frame times (per-phase mean TriggerTime) and metadata;
        ED/ES frames are left unset. ``metadata.notes`` lists ignored series,
        skipped files and slice gaps.

    Raises
    ------
    InputError
        The path is missing or a single file; no DICOM images; no candidate,
        or several candidates and no ``series``; duplicate images, unequal
        numbers of phases per position, mixed image sizes or pixel spacings,
        unevenly spaced positions (a missing slice), missing geometry tags;
        unreadable pixel data. The message names the folder or file.

    Notes
    -----
    A candidate is an MR series of single-frame images, not a localiser, with
    parallel orientation, at least two slice positions along the normal and
    at least two phases per position. Nothing checks that the stack is
    truly short-axis: an axial cine stack is a candidate as well.

    Examples
    --------
    >>> study = read_dicom_folder(Path("export/"), series="7")  # doctest: +SKIP
    >>> study.image.shape  # (frames, slices, rows, cols)  # doctest: +SKIP
    (25, 12, 208, 256)
    """
    scan = _scan(folder, progress)
    results = _analyse_all(scan)
    chosen = _select(scan.folder, results, series)
    summary, stack = results[chosen]
    assert stack is not None
    n_files = sum(len(images) for images in stack.grid)

    def pixels(header: _Header, done: int) -> np.ndarray:
        if progress is not None:
            progress("pixels", done, n_files)
        return _pixels(header)

    n_phases = len(stack.grid[0])
    image = np.stack(
        [
            np.stack([pixels(h, s * n_phases + f + 1) for f, h in enumerate(images)])
            for s, images in enumerate(stack.grid)
        ],
        axis=1,
    )
    first = stack.grid[0][0]
    thickness = _float(first.dataset, "SliceThickness")
    geometry = Geometry(
        affine=_affine(stack),
        shape=(len(stack.grid), int(first.rows or 0), int(first.cols or 0)),
        slice_thickness_mm=thickness,
    )
    ignored = [s for i, (s, _) in enumerate(results) if i != chosen]
    metadata = _metadata(scan, stack, ignored, _spacing_notes(stack, thickness, first.dataset))
    return CineStudy(
        image=image.astype(np.float32),
        geometry=geometry,
        metadata=metadata,
        frame_times_ms=_frame_times(stack),
    )
