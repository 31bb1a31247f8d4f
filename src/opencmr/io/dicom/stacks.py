"""From image records to cine stacks: validate each series, assemble stacks split one series per slice, tell short-axis from long-axis.

Ordering and geometry follow the headers only, never file names or frame order:

* slices are sorted by their position along the slice normal
  ``n = row_direction x column_direction`` (``dot(ImagePositionPatient, n)``);
* within a slice position, phases are sorted by trigger time (TemporalPositionIndex,
  then InstanceNumber when it is missing);
* the slice spacing is the pitch between slice positions, not SliceThickness.

Many exports store each short-axis slice position as its own series (1
position x N phases, consecutive series numbers). Such single-position cine
series that share orientation (parallel normals), image size, pixel spacing
and study are assembled into one stack (which must then have the same number
of phases at every position) when their positions
lie along the normal; their phases are aligned by phase index, since each
slice was acquired in its own breath-hold with its own RR interval.

Which stack is the short-axis cine is decided by geometry, not by series
description: the short-axis normal is double-oblique (far from the patient
axes), and the long-axis cines (2-, 3-, 4-chamber, LVOT/RVOT) are planes that
contain the left-ventricular long axis, so their normals are perpendicular to
the short-axis normal [1]_.

References
----------
.. [1] M. D. Cerqueira et al., "Standardized myocardial segmentation and
   nomenclature for tomographic imaging of the heart", Circulation 105, 2002,
   doi:10.1161/hc0402.102975 (short-axis planes are perpendicular to the long axis).
.. [2] DICOM PS3.3, C.7.6.2 Image Plane Module.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from opencmr.io.dicom.headers import DicomImage, text

__all__ = [
    "AXIS_TOL_DEG",
    "PERPENDICULAR_DEG",
    "SeriesSummary",
    "Stack",
    "analyse_images",
    "assemble_stack",
    "series_tokens",
]

_POSITION_TOL_MM = 0.05
"""Images whose positions along the normal differ by less than this share a slice position."""
_TIME_TOL_MS = 0.01
"""Trigger times closer than this are the same cardiac phase (a duplicate image)."""
_ORIENTATION_TOL = 1e-3
"""Largest difference between direction cosines of images of one stack."""
_PITCH_REL_TOL = 0.01
"""Largest relative deviation of one slice pitch from the median pitch."""
AXIS_TOL_DEG = 20.0
"""A stack whose normal is within this angle of a patient axis is axial, sagittal or coronal, not short-axis."""
PERPENDICULAR_DEG = 60.0
"""A single-position cine whose normal is at least this far from the short-axis normal is a long-axis view."""
_MAX_NAMES = 3


@dataclass(frozen=True)
class SeriesSummary:
    """What the reader found about one series, or about a stack assembled from several series.

    Parameters
    ----------
    series_uid : str
        SeriesInstanceUID (for an assembled stack, the first member's).
    series_number : int or None
        SeriesNumber, when recorded (for an assembled stack, the first member's).
    description : str
        SeriesDescription (empty when absent).
    modality : str
        Modality (``"MR"`` for the series opencmr reads).
    n_images : int
        Number of 2D images (files, or frames of multi-frame files).
    rows, cols : int or None
        Image size of the first image.
    n_positions : int or None
        Distinct slice positions along the slice normal.
    n_phases : int or None
        Cardiac phases per slice position.
    orientation : tuple of float or None
        ImageOrientationPatient of the first image.
    is_candidate : bool
        Whether it can be read as a cine stack (several positions and phases).
    reason : str
        Why it is, or is not, a candidate.
    kind : str
        ``"short-axis cine"``, ``"axial cine stack"`` (sagittal, coronal),
        ``"long-axis cine"``, ``"single-slice cine"``, ``"localizer"``,
        ``"static"`` or ``"other"``.
    members : tuple of str
        For a stack assembled from one series per slice: the member series' UIDs, in slice order.
    member_numbers : tuple of int or None
        Their SeriesNumbers.
    chosen : bool
        Whether this is the stack that was read.
    """

    series_uid: str
    series_number: int | None
    description: str
    modality: str
    n_images: int
    rows: int | None
    cols: int | None
    orientation: tuple[float, ...] | None
    is_candidate: bool
    reason: str
    n_positions: int | None = None
    n_phases: int | None = None
    kind: str = "other"
    members: tuple[str, ...] = ()
    member_numbers: tuple[int | None, ...] = ()
    chosen: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dictionary (with ``selector``, the ``--series`` text that chooses it)."""
        out = asdict(self)
        for key in ("orientation", "members", "member_numbers"):
            out[key] = None if out[key] is None else list(out[key])
        out["selector"] = self.selector
        return out

    @property
    def assembled(self) -> bool:
        return bool(self.members)

    @property
    def selector(self) -> str:
        """What ``--series`` takes to choose this: a number or UID; ``FIRST-LAST`` or a comma list for an assembled stack."""
        if not self.assembled:
            return self.series_uid if self.series_number is None else str(self.series_number)
        numbers = self.member_numbers
        if any(n is None for n in numbers) or len(set(numbers)) < len(numbers):
            return ",".join(self.members)
        ordered = sorted(int(n) for n in numbers)  # type: ignore[arg-type]
        if ordered == list(range(ordered[0], ordered[-1] + 1)):
            return f"{ordered[0]}-{ordered[-1]}"
        return ",".join(map(str, ordered))

    def label(self) -> str:
        """One-line description: number(s), description, image count."""
        if self.assembled:
            return (
                f"series {self.selector} '{self.description}' "
                f"({len(self.members)} series of one slice each, {self.n_images} images)"
            )
        number = "?" if self.series_number is None else str(self.series_number)
        return f"series {number} '{self.description}' ({self.n_images} images)"

    def matches(self, wanted: str) -> bool:
        """Whether ``--series`` text names this: a number or UID, or for an assembled stack its series as a set."""
        if not self.assembled:
            return wanted.strip() in (self.series_uid, str(self.series_number))
        tokens = series_tokens(wanted)
        return tokens in ({str(n) for n in self.member_numbers}, set(self.members))


def series_tokens(wanted: str) -> set[str]:
    """``"10-12"`` -> {"10", "11", "12"}; ``"10,14"`` or UIDs separated by commas -> the set of them."""
    tokens: set[str] = set()
    for part in (p.strip() for p in wanted.split(",")):
        bounds = part.split("-")
        if len(bounds) == 2 and all(b.strip().isdigit() for b in bounds):
            tokens.update(str(n) for n in range(int(bounds[0]), int(bounds[1]) + 1))
        elif part:
            tokens.add(part)
    return tokens


@dataclass(frozen=True, eq=False)
class Stack:
    """A validated cine stack: images ``grid[position][phase]`` sorted along the normal and in time."""

    grid: tuple[tuple[DicomImage, ...], ...]
    normal: np.ndarray
    locations_mm: np.ndarray
    summary: SeriesSummary = field(compare=False)
    rank: tuple[int, ...] = ()
    """Geometric evidence that this is the short-axis cine (compared between candidates; larger is better)."""

    @property
    def images(self) -> list[DicomImage]:
        return [image for row in self.grid for image in row]


def names(images: Sequence[DicomImage]) -> str:
    """The first few image names, for messages."""
    shown = ", ".join(image.name for image in images[:_MAX_NAMES])
    more = len(images) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def directions(orientation: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """Row and column direction cosines (LPS), or None unless they are orthogonal unit vectors."""
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:], dtype=np.float64)
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        return None
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _normal(image: DicomImage) -> np.ndarray:
    row, col = directions(image.orientation or ())  # type: ignore[misc]
    return np.cross(row, col)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two lines (0-90 degrees; the sign of the normals does not matter)."""
    return float(np.degrees(np.arccos(np.clip(abs(float(a @ b)), 0.0, 1.0))))


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


def _image_problem(images: Sequence[DicomImage]) -> str | None:
    """Why a series is not an MR image set with complete, consistent geometry, or None."""
    first = images[0]
    if first.modality != "MR":
        return f"not MR (modality {first.modality or 'missing'})"
    if any("LOCALIZER" in image.image_type for image in images):
        return "localizer (ImageType LOCALIZER)"
    sizes = sorted({(image.rows, image.cols) for image in images})
    if len(sizes) > 1:
        return "mixed image sizes (" + ", ".join(f"{r}x{c}" for r, c in sizes) + ")"
    for keyword, attr in (
        ("ImageOrientationPatient", "orientation"),
        ("ImagePositionPatient", "position"),
        ("PixelSpacing", "pixel_spacing"),
    ):
        missing = [image for image in images if getattr(image, attr) is None]
        if missing:
            where = " (no per-frame functional groups)" if missing[0].multiframe else ""
            return f"missing or invalid {keyword}{where} in {len(missing)} image(s) ({names(missing)})"
    orientations = np.array([image.orientation for image in images])
    if np.abs(orientations - orientations[0]).max() > _ORIENTATION_TOL:
        return "inconsistent orientation (images are not parallel with the same in-plane axes)"
    if directions(first.orientation or ()) is None:
        return f"invalid ImageOrientationPatient (not two orthogonal unit vectors) in {first.name}"
    spacings = np.array([image.pixel_spacing for image in images])
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        return "mixed PixelSpacing (" + ", ".join(sorted({f"{r:g}x{c:g}" for r, c in spacings})) + ")"
    return None


def _time_key(image: DicomImage) -> tuple[float, float]:
    return (
        image.trigger_time if image.trigger_time is not None else 0.0,
        image.temporal_index or image.instance_number or 0,
    )


def _order_phases(images: list[DicomImage]) -> tuple[list[DicomImage], str | None]:
    """Images of one slice position in temporal order, and a problem (duplicates, no order) or None."""
    if all(image.trigger_time is not None for image in images):
        ordered = sorted(images, key=_time_key)
        for a, b in itertools.pairwise(ordered):
            if abs((b.trigger_time or 0.0) - (a.trigger_time or 0.0)) <= _TIME_TOL_MS:
                return ordered, f"duplicate images at the same position and trigger time ({names([a, b])})"
        return ordered, None
    keys = [image.temporal_index or image.instance_number for image in images]
    if any(k is None for k in keys):
        return images, "cannot order phases: TriggerTime, TemporalPositionIndex and InstanceNumber are missing"
    ordered = [image for _, image in sorted(zip(keys, images), key=lambda item: item[0])]  # type: ignore[arg-type,return-value]
    if len(set(keys)) < len(keys):
        return ordered, f"duplicate images with the same phase number and no TriggerTime ({names(ordered[:2])})"
    return ordered, None


def _phase_count(group: Sequence[DicomImage]) -> int:
    if all(image.trigger_time is not None for image in group):
        return len(_cluster(np.array([image.trigger_time for image in group]), _TIME_TOL_MS))
    return len(group)


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


def _line_problem(grid: Sequence[Sequence[DicomImage]]) -> str | None:
    """Why image positions do not lie on one evenly stepped line, or None."""
    first = np.asarray(grid[0][0].position)
    step = (np.asarray(grid[-1][0].position) - first) / (len(grid) - 1)
    worst = max(
        float(np.linalg.norm(np.asarray(image.position) - (first + s * step)))
        for s, images in enumerate(grid)
        for image in images
    )
    if worst > max(_POSITION_TOL_MM, _PITCH_REL_TOL * float(np.linalg.norm(step))):
        return f"slice positions do not lie on one straight, evenly stepped line (off by up to {worst:.2f} mm)"
    return None


def _summary(images: Sequence[DicomImage], candidate: bool, reason: str, kind: str, **extra: object) -> SeriesSummary:
    first = images[0]
    return SeriesSummary(
        series_uid=first.series_uid,
        series_number=first.series_number,
        description=first.description,
        modality=first.modality,
        n_images=len(images),
        rows=first.rows,
        cols=first.cols,
        orientation=first.orientation,
        is_candidate=candidate,
        reason=reason,
        kind=kind,
        **extra,  # type: ignore[arg-type]
    )


def _grid(
    groups: list[list[DicomImage]], normal: np.ndarray
) -> tuple[tuple[tuple[DicomImage, ...], ...], np.ndarray] | str:
    """Sorted grid and locations of position groups, or the problem that prevents it."""
    grid = []
    for group in groups:
        ordered, problem = _order_phases(group)
        if problem is not None:
            return problem
        grid.append(tuple(ordered))
    counts = Counter(len(g) for g in grid)
    if len(counts) > 1:
        usual = counts.most_common(1)[0][0]
        odd = [f"{len(g)} at slice position {k}" for k, g in enumerate(grid) if len(g) != usual]
        return f"different numbers of phases per slice position ({usual} at most, " + ", ".join(odd) + ")"
    locations = np.array([np.asarray(g[0].position) @ normal for g in grid])
    problem = _pitch_problem(locations) or _line_problem(grid)
    return problem if problem is not None else (tuple(grid), locations)


def _analyse_series(images: list[DicomImage]) -> tuple[SeriesSummary, Stack | None]:
    """Summarise one series and, when it is a cine stack, sort it into a grid."""
    problem = _image_problem(images)
    if problem is not None:
        return _summary(images, False, problem, "localizer" if problem.startswith("localizer") else "other"), None
    normal = _normal(images[0])
    along = np.array([np.asarray(image.position) @ normal for image in images])
    groups = [[images[i] for i in g] for g in _cluster(along, _POSITION_TOL_MM)]
    n_pos, n_ph = len(groups), max(_phase_count(g) for g in groups)
    counts = {"n_positions": n_pos, "n_phases": n_ph}
    if n_ph < 2:
        static = "no cardiac phases (static)"
        if max(len(g) for g in groups) > 1:
            static += "; several images per position share one trigger time"
        return _summary(images, False, static, "static", **counts), None
    if n_pos < 2:
        ordered, problem = _order_phases(groups[0])
        if problem is not None:
            return _summary(images, False, problem, "other", **counts), None
        summary = _summary(images, False, "single slice position", "single-slice cine", **counts)
        return summary, Stack(grid=(tuple(ordered),), normal=normal, locations_mm=along[:1], summary=summary)
    result = _grid(groups, normal)
    if isinstance(result, str):
        return _summary(images, False, result, "other", **counts), None
    grid, locations = result
    summary = _summary(images, True, f"cine stack ({n_pos} positions x {n_ph} phases)", "cine stack", **counts)
    return summary, Stack(grid=grid, normal=normal, locations_mm=locations, summary=summary)


_MIN_ASSEMBLED = 3
"""Fewest one-slice series that make a stack (two parallel long-axis cines are not a short-axis stack)."""


def _assembly_key(stack: Stack) -> tuple:
    first = stack.grid[0][0]
    frame_of_reference = text(first.dataset, "FrameOfReferenceUID")
    return (first.study_uid, frame_of_reference, first.rows, first.cols, tuple(np.round(first.pixel_spacing or (), 4)))


def _same_axes(a: Stack, b: Stack) -> bool:
    """Same in-plane row and column directions (not merely parallel planes: a transposed slice is not the same)."""
    return bool(np.abs(np.subtract(a.grid[0][0].orientation, b.grid[0][0].orientation)).max() <= _ORIENTATION_TOL)


def _repeated_positions(members: list[Stack], along: np.ndarray) -> str | None:
    """Which series share a slice position (a slice acquired again), or None."""
    for group in _cluster(along, _POSITION_TOL_MM):
        if len(group) > 1:
            numbers = ", ".join(str(members[i].summary.series_number) for i in group)
            return (
                f"slice position {along[group[0]]:.1f} mm is in several series ({numbers}): choose them with --series"
            )
    return None


def _assemble(singles: list[Stack]) -> list[Stack]:
    """Stacks assembled from single-position cine series with the same in-plane axes and matching images."""
    pools: dict[tuple, list[Stack]] = {}
    for stack in singles:
        pools.setdefault(_assembly_key(stack), []).append(stack)
    assembled = []
    for pool in pools.values():
        while pool:
            seed = pool[0]
            parallel = [s for s in pool if _same_axes(s, seed)]
            pool = [s for s in pool if s not in parallel]
            if len(parallel) >= _MIN_ASSEMBLED:
                assembled.append(assemble_stack(parallel))
    return assembled


def assemble_stack(series: list[Stack]) -> Stack:
    """One stack from one-slice cine series (in any order); a stack without grid, and the reason, when they do not fit."""
    normal = series[0].normal
    along = np.array([np.asarray(s.grid[0][0].position) @ normal for s in series])
    members = [series[i] for i in np.argsort(along, kind="stable")]
    along = np.sort(along)
    images = [image for s in members for image in s.images]
    n_pos, n_ph = len(members), len(members[0].grid[0])
    extra = {
        "n_positions": n_pos,
        "n_phases": n_ph,
        "members": tuple(s.summary.series_uid for s in members),
        "member_numbers": tuple(s.summary.series_number for s in members),
    }
    problem = None if all(_same_axes(s, members[0]) for s in members) else "the series have different in-plane axes"
    problem = problem or _repeated_positions(members, along)
    result = problem or _grid([list(s.grid[0]) for s in members], normal)
    if isinstance(result, str):
        summary = _summary(images, False, f"one series per slice, but {result}", "other", **extra)
        return Stack(grid=(), normal=normal, locations_mm=along, summary=summary)
    grid, locations = result
    reason = f"cine stack assembled from {n_pos} series of one slice each ({n_pos} positions x {n_ph} phases)"
    summary = _summary(images, True, reason, "cine stack", **extra)
    return Stack(grid=grid, normal=normal, locations_mm=locations, summary=summary)


def _axis_name(normal: np.ndarray) -> str | None:
    """``"axial"``, ``"sagittal"`` or ``"coronal"`` when the normal is near a patient axis (LPS), else None."""
    for axis, name in ((2, "axial"), (0, "sagittal"), (1, "coronal")):
        unit = np.zeros(3)
        unit[axis] = 1.0
        if _angle_deg(normal, unit) < AXIS_TOL_DEG:
            return name
    return None


def _relabel(stack: Stack, **changes: object) -> Stack:
    return replace(stack, summary=replace(stack.summary, **changes))


def _classify(stacks: list[Stack], singles: list[Stack]) -> tuple[list[Stack], list[Stack]]:
    """Name each candidate stack and single-position cine by geometry; candidates best first."""
    ranked: list[Stack] = []
    for stack in stacks:
        votes = sum(_angle_deg(stack.normal, s.normal) >= PERPENDICULAR_DEG for s in singles)
        axis = _axis_name(stack.normal)
        kind = f"{axis} cine stack" if axis else "short-axis cine"
        why = f"{axis} planes" if axis else "double-oblique planes"
        if singles:
            why += f"; perpendicular to {votes} of {len(singles)} single-slice cine(s)"
        relabelled = _relabel(stack, kind=kind, reason=f"{stack.summary.reason}: {why}")
        ranked.append(replace(relabelled, rank=(int(axis is None), votes)))
    candidates = sorted(ranked, key=lambda stack: stack.rank, reverse=True)
    best = candidates[0].normal if candidates and candidates[0].rank[0] else None
    named = []
    for single in singles:
        if best is not None and _angle_deg(best, single.normal) >= PERPENDICULAR_DEG:
            kind, why = (
                "long-axis cine",
                f"single slice position, {_angle_deg(best, single.normal):.0f} deg from the short-axis planes",
            )
        else:
            kind, why = "single-slice cine", "single slice position"
        named.append(_relabel(single, kind=kind, reason=why))
    return candidates, named


def analyse_images(series: dict[str, list[DicomImage]]) -> tuple[list[SeriesSummary], list[Stack], list[Stack]]:
    """Analyse every series of one study.

    Returns
    -------
    summaries : list of SeriesSummary
        One per series (sorted by SeriesNumber), then one per assembled stack.
    candidates : list of Stack
        Cine stacks (single series or assembled), the most likely short-axis cine first.
    singles : list of Stack
        Single-position cine series (long-axis or single-slice, and the
        slices of assembled stacks), readable as studies of their own.
    """
    analysed = [_analyse_series(images) for images in series.values()]
    analysed.sort(key=lambda r: (r[0].series_number is None, r[0].series_number or 0, r[0].series_uid))
    stacks = [stack for summary, stack in analysed if stack is not None and summary.is_candidate]
    singles = [stack for summary, stack in analysed if stack is not None and not summary.is_candidate]
    assembled = _assemble(singles)
    used = {uid for stack in assembled if stack.grid for uid in stack.summary.members}
    singles_all, singles = singles, [s for s in singles if s.summary.series_uid not in used]
    members = [_relabel(s, kind="stack slice") for s in singles_all if s.summary.series_uid in used]
    candidates, singles = _classify(stacks + [s for s in assembled if s.grid], singles)
    by_uid = {s.summary.series_uid: s.summary for s in candidates + singles if not s.summary.assembled}
    summaries = [by_uid.get(summary.series_uid, summary) for summary, _ in analysed]
    summaries = [_member_summary(s) if s.series_uid in used else s for s in summaries]
    summaries += [s.summary for s in candidates + [a for a in assembled if not a.grid] if s.summary.assembled]
    return summaries, candidates, singles + members


def _member_summary(summary: SeriesSummary) -> SeriesSummary:
    return replace(summary, kind="stack slice", reason="one slice of an assembled stack (listed below)")
