"""Plausibility checks of a segmentation, its measurements and the image it came from.

Each check is a small pure function that returns :class:`Check` results with a
status (``pass``, ``review``, ``fail``) and a sentence a clinician can read.
:func:`run_checks` runs them all on a study; :func:`worst_status` reduces them
to one verdict.

Checks
------
Anatomy, on each labelled frame ``(slices, rows, cols)`` (ACDC labels, see
:mod:`opencmr.labels`):

* :func:`check_myocardium_encloses_lv` -- on mid-ventricular slices the LV
  blood pool is surrounded by myocardium (basal slices may be open at the
  outflow tract and are not judged);
* :func:`check_rv_next_to_septum` -- the RV blood pool lies against the LV
  myocardium on every slice holding both;
* :func:`check_fragments` -- no structure is split into detached pieces (3D)
  or into several pieces on one slice (2D);
* :func:`check_slice_continuity` -- no empty slice between LV slices and no
  abrupt jump of the LV cavity area between interior neighbouring slices;
* :func:`check_coverage` -- over all labelled frames, the stack reaches the
  apex and the base.

Measurements (:func:`check_measurements`): ED volume above ES volume, and
indices inside wide physiological limits (:data:`PHYSIOLOGICAL_LIMITS`).

Image: SNR and a ghosting proxy (:func:`check_image`), blank slices (:func:`check_blank_slices`).

Slice order
-----------
Which end of the stack is the base is taken from the labels
(:func:`basal_end_first`): the half of the LV slices with the larger LV and RV
blood-pool area is the basal half. Give ``base_first`` to override it.

Every threshold is a module constant documented where it is defined; they are
heuristics tuned so that exact labels of the synthetic phantoms
(:mod:`opencmr.phantom`) pass, with margins, and deliberately broken ones do not.

References
----------
.. [1] J. Schulz-Menger et al., "Standardized image interpretation and
   post-processing in cardiovascular magnetic resonance - 2020 update",
   JCMR 22, 2020, 19, doi:10.1186/s12968-020-00610-6.
.. [2] H. Gudbjartsson and S. Patz, "The Rician distribution of noisy MRI
   data", Magn Reson Med 34(6), 1995, 910-914, doi:10.1002/mrm.1910340618.
.. [3] N. Kawel-Boehm et al., "Reference ranges ("normal values") for
   cardiovascular magnetic resonance (CMR) in adults and children: 2020
   update", JCMR 22, 2020, 87, doi:10.1186/s12968-020-00683-3.
.. [4] O. Bernard et al., "Deep learning techniques for automatic MRI cardiac
   multi-structures segmentation and diagnosis: is the problem solved?",
   IEEE TMI 37(11), 2018, 2514-2525, doi:10.1109/TMI.2018.2837502.
.. [5] B. J. Maron et al., "Hypertrophic cardiomyopathy: present and future,
   with translation into contemporary cardiovascular medicine", JACC 64(1),
   2014, 83-99, doi:10.1016/j.jacc.2014.05.003.

Examples
--------
>>> import numpy as np
>>> volume = np.zeros((3, 20, 20), np.uint8)
>>> volume[:, 5:15, 5:15] = 2
>>> volume[:, 7:13, 7:13] = 3
>>> [c.status.value for c in check_myocardium_encloses_lv(volume, frame=0)]
['pass']
>>> worst_status(check_myocardium_encloses_lv(volume)).value
'pass'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from opencmr.io.study import CineStudy, LabelMap
from opencmr.labels import LABEL_VALUES, Label

__all__ = [
    "APEX_MAX_AREA_FRACTION",
    "AREA_JUMP_REVIEW_FRACTION",
    "ENCLOSURE_FAIL_FRACTION",
    "ENCLOSURE_REVIEW_FRACTION",
    "FRAGMENT_FAIL_FRACTION",
    "FRAGMENT_MAX_GAP_MM",
    "GHOST_REVIEW_RATIO",
    "PHYSIOLOGICAL_LIMITS",
    "RV_SEPTUM_FAIL_GAP_MM",
    "RV_SEPTUM_REVIEW_GAP_MM",
    "SNR_FAIL",
    "SNR_REVIEW",
    "Check",
    "Limit",
    "Status",
    "basal_end_first",
    "check_blank_slices",
    "check_coverage",
    "check_fragments",
    "check_image",
    "check_measurements",
    "check_myocardium_encloses_lv",
    "check_rv_next_to_septum",
    "check_slice_continuity",
    "not_measurable",
    "run_checks",
    "worst_status",
]

# --------------------------------------------------------------------------- thresholds

ENCLOSURE_REVIEW_FRACTION = 0.05
"""Fraction of the LV cavity border (mid slices) touching background or RV above which a slice is reviewed.

On a mid-ventricular slice the cavity is a closed disc inside the myocardial
ring [1]_ (exact phantom labels: 0 %). 5 % (a few pixels of a ~100-pixel border)
tolerates single-pixel slips of a network at the endocardium."""

ENCLOSURE_FAIL_FRACTION = 0.20
"""Fraction above which the ring is taken as open (a missing wall segment, not a slip): ``fail``."""

RV_SEPTUM_REVIEW_GAP_MM = 5.0
"""In-plane gap (mm) between the RV blood pool and the LV myocardium above which a slice is reviewed.

The RV cavity lies against the septum; trabeculations or the moderator band
labelled as background may leave 2-3 pixels (about 5 mm) between them."""

RV_SEPTUM_FAIL_GAP_MM = 15.0
"""Gap (mm) above which the RV is detached from the heart (mislabelled structure): ``fail``."""

FRAGMENT_MAX_GAP_MM = 5.0
"""A piece of a structure is attached when it lies within this in-plane distance (mm) of the largest
piece on its own slice or a neighbouring one.

Pure 3D connectivity would split normal anatomy: with 8-10 mm slices a small
apical piece of the RV need not overlap the slice above it (seen on the
phantoms). 5 mm is about the blurred edge width of cine (3-4 mm)."""

FRAGMENT_FAIL_FRACTION = 0.05
"""Detached pieces holding more than this fraction of a structure's voxels: ``fail``; smaller ones: ``review``."""

AREA_JUMP_REVIEW_FRACTION = 0.5
"""Relative change of the LV cavity area between interior neighbouring slices above which they are reviewed.

Change is ``|a - b| / max(a, b)``. The cavity tapers smoothly from base to apex;
between interior neighbours 10 mm apart the exact phantom labels change by at
most ~25 %. The first and last LV slices (partial-volume ends) are not judged."""

APEX_MAX_AREA_FRACTION = 0.5
"""The apical-end LV cavity area (as a fraction of the largest) at or below which the apex counts as covered.

Towards the apex the cavity narrows to a point; if the last LV slice still holds
more than half the largest area in every frame, the stack probably stops above
the apex. Half (not less) because a dilated LV stays wide: the DCM phantom's
last slice holds 44 %."""

SNR_REVIEW = 15.0
"""Blood-pool SNR below which the image is reviewed.

ACDC air background noise is 1.2-3.7 % of the blood signal (SNR ~27-80, see
:class:`opencmr.phantom.PhantomConfig`); 15 is about half the lowest."""

SNR_FAIL = 2.0
"""SNR below which blood and myocardium (contrast ~3:1 in bSSFP) are no longer reliably separable: ``fail``.

The robustness benchmark (``benchmarks/robustness.py``, 10 held-out ACDC
patients) showed the bundled model keeping a mean Dice of 0.90-0.92 on images
with added noise down to a blood-pool SNR of 3: such images are sent to
review, not failed. Below 2 the blood pool is hardly distinguishable from noise."""

GHOST_REVIEW_RATIO = 0.05
"""Ghosting proxy (excess air signal in the heart's band, over the blood signal) above which the image is reviewed.

A heuristic: motion ghosts are copies of the moving heart displaced along the
phase-encode direction, so they raise the air signal in the band of rows or
columns through the heart. 5 % of the blood signal is about twice the noise
floor of ACDC images (~2.4 %)."""

AIR_MIN_PIXELS = 200
"""Fewest air pixels needed to estimate noise or ghosting (a tightly cropped field of view has none)."""

BODY_THRESHOLD_FRACTION = 0.15
"""Pixels above this fraction of the blood signal (after 3x3 smoothing), or above twice the image's 10th
percentile when noise lifts the air floor higher, are body; the rest may be air."""

BODY_MARGIN_MM = 10.0
"""Air must lie at least this far outside the body (its edge is blurred and may hold fat signal)."""


@dataclass(frozen=True)
class Limit:
    """Plausible (not normal) range of one index; outside it the measurement is taken as an error."""

    key: str
    lower: float | None
    upper: float | None
    rationale: str


PHYSIOLOGICAL_LIMITS: tuple[Limit, ...] = (
    Limit(
        "lv_ef_percent",
        5.0,
        85.0,
        "severe DCM reaches an LVEF of 10 % (ACDC DCM group < 40 % [4]_); hyperdynamic ventricles rarely pass "
        "80 % (adult normal mean ~ 60-65 %, SD ~ 5 % [3]_)",
    ),
    Limit("rv_ef_percent", 5.0, 85.0, "as the LVEF"),
    Limit(
        "lv_edv_ml",
        30.0,
        500.0,
        "adult normal LVEDV ~ 100-220 mL [3]_; 500 mL is beyond the largest dilated ventricles; 30 mL is a "
        "small child's",
    ),
    Limit("rv_edv_ml", 30.0, 500.0, "adult normal RVEDV ~ 110-250 mL [3]_; limits as the LV"),
    Limit("lv_mass_g", 30.0, 400.0, "adult normal LV mass ~ 80-180 g [3]_; 400 g is beyond severe hypertrophy"),
    Limit(
        "max_wall_thickness_mm",
        None,
        35.0,
        "HCM is diagnosed at >= 15 mm and a wall of >= 30 mm is 'massive' hypertrophy, seen in a few per cent of "
        "HCM patients [5]_",
    ),
)
"""Wide limits of adult indices: outside them a value is implausible (``fail``), not merely abnormal.

Reference ranges for *abnormal* values are in :mod:`opencmr.measure.reference`;
these are far outside them, so that only segmentation or measurement errors
trip them."""


# --------------------------------------------------------------------------- results


class Status(str, Enum):
    """Outcome of a check, in increasing severity."""

    PASS = "pass"
    REVIEW = "review"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 pass, 1 review, 2 fail."""
        return _SEVERITY[self]


_SEVERITY = {Status.PASS: 0, Status.REVIEW: 1, Status.FAIL: 2}


@dataclass(frozen=True)
class Check:
    """One check's outcome.

    Parameters
    ----------
    name : str
        Stable identifier of the check (``"lv_enclosed"``, ``"snr"``, ...).
    status : Status or str
        ``"pass"``, ``"review"`` or ``"fail"``.
    reason : str
        A sentence a clinician can read.
    slices : tuple of int
        Slices concerned (array indices), empty for the whole study.
    frame : int, optional
        Acquisition frame number concerned.
    value : float, optional
        The measured quantity compared with the threshold.
    """

    name: str
    status: Status
    reason: str
    slices: tuple[int, ...] = ()
    frame: int | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "slices", tuple(int(s) for s in self.slices))
        if self.frame is not None:
            object.__setattr__(self, "frame", int(self.frame))
        if self.value is not None:
            object.__setattr__(self, "value", float(self.value))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary."""
        value = None if self.value is None or not math.isfinite(self.value) else round(self.value, 4)
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "slices": list(self.slices),
            "frame": self.frame,
            "value": value,
        }


def worst_status(checks: Iterable[Check]) -> Status:
    """The most severe status among ``checks`` (``pass`` when there are none)."""
    return max((c.status for c in checks), key=lambda s: s.severity, default=Status.PASS)


# --------------------------------------------------------------------------- helpers


def _validate_volume(volume: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"a label volume must be 3D (slices, rows, cols), got {volume.ndim}D")
    if not np.issubdtype(volume.dtype, np.integer):
        raise ValueError(f"a label volume must be integer, got {volume.dtype}")
    present = set(np.unique(volume).tolist())
    if not present <= LABEL_VALUES:
        raise ValueError(f"label values {sorted(present - LABEL_VALUES)} are not in {sorted(LABEL_VALUES)}")
    return volume


def _validate_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be three positive sizes (slice, row, col) in mm, got {spacing}")
    return values  # type: ignore[return-value]


def _where(frame: int | None) -> str:
    return "" if frame is None else f" (frame {frame})"


def _lv_slices(volume: np.ndarray) -> np.ndarray:
    """Indices of the slices holding LV blood pool, in array order."""
    return np.flatnonzero((volume == Label.LV_BLOOD_POOL).any(axis=(1, 2)))


def basal_end_first(volume: np.ndarray) -> bool:
    """Whether slice 0 is the basal end of the stack, judged from the labels.

    The half of the LV-holding slices with the larger summed LV + RV blood-pool
    area is the basal half (both ventricles widen towards the base). Ties and
    stacks without LV give ``True`` (the ACDC and phantom order).
    """
    volume = _validate_volume(volume)
    lv = _lv_slices(volume)
    if lv.size < 2:
        return True
    areas = np.isin(volume[lv], (Label.LV_BLOOD_POOL, Label.RV_BLOOD_POOL)).sum(axis=(1, 2))
    half = lv.size // 2
    return bool(areas[:half].sum() >= areas[lv.size - half :].sum())


def _base_to_apex(volume: np.ndarray, base_first: bool | None) -> np.ndarray:
    """LV slice indices ordered from base to apex."""
    lv = _lv_slices(volume)
    first = basal_end_first(volume) if base_first is None else base_first
    return lv if first else lv[::-1]


def _mid_slices(volume: np.ndarray, base_first: bool | None) -> list[int]:
    """The middle third of the LV slices (ordered base to apex), as in the AHA segment model [1]_."""
    ordered = _base_to_apex(volume, base_first)
    if ordered.size < 3:
        return []
    return [int(s) for s in np.array_split(ordered, 3)[1]]


def _slice_list(slices: Iterable[int]) -> str:
    items = [str(int(s)) for s in slices]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- anatomy


def check_myocardium_encloses_lv(
    volume: np.ndarray, *, frame: int | None = None, base_first: bool | None = None
) -> list[Check]:
    """Whether the myocardium encloses the LV blood pool on mid-ventricular slices.

    On each mid slice (middle third of the LV slices, base to apex) the cavity's
    border pixels (cavity pixels with a 4-neighbour outside the cavity; the image
    edge counts as background) are counted, and the fraction of them with a
    4-neighbour that is background or RV rather than myocardium is compared
    with :data:`ENCLOSURE_REVIEW_FRACTION` and :data:`ENCLOSURE_FAIL_FRACTION`.
    Basal slices, open at the outflow tract, and apical slices are not judged.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(slices, rows, cols)`` ACDC labels of one frame.
    frame : int, optional
        Frame number, for the messages.
    base_first : bool, optional
        Whether slice 0 is basal; judged from the labels when omitted.

    Returns
    -------
    list of Check
        One per offending slice, or a single ``pass``.
    """
    volume = _validate_volume(volume)
    out: list[Check] = []
    mids = _mid_slices(volume, base_first)
    for s in mids:
        padded = np.pad(volume[s], 1)  # background all round
        cavity = padded == Label.LV_BLOOD_POOL
        border = np.zeros_like(cavity)
        leak = np.zeros_like(cavity)
        for axis in (0, 1):
            for shift in (1, -1):
                neighbour = np.roll(padded, shift, axis=axis)
                border |= cavity & (neighbour != Label.LV_BLOOD_POOL)
                leak |= cavity & np.isin(neighbour, (Label.BACKGROUND, Label.RV_BLOOD_POOL))
        fraction = float(leak.sum() / max(int(border.sum()), 1))
        if fraction > ENCLOSURE_REVIEW_FRACTION:
            status = Status.FAIL if fraction > ENCLOSURE_FAIL_FRACTION else Status.REVIEW
            out.append(
                Check(
                    "lv_enclosed",
                    status,
                    f"myocardium does not enclose the LV blood pool on mid slice {s}{_where(frame)}: "
                    f"{fraction:.0%} of the cavity border touches background or the RV rather than myocardium",
                    (s,),
                    frame,
                    fraction,
                )
            )
    if not out:
        reason = (
            f"the myocardium encloses the LV blood pool on the mid slices{_where(frame)}"
            if mids
            else f"fewer than 3 LV slices{_where(frame)}: no mid slice to judge"
        )
        out.append(Check("lv_enclosed", Status.PASS, reason, tuple(mids), frame, 0.0 if mids else None))
    return out


def check_rv_next_to_septum(volume: np.ndarray, spacing: Sequence[float], *, frame: int | None = None) -> list[Check]:
    """Whether the RV blood pool lies against the LV myocardium on every slice holding both.

    The gap is the smallest in-plane distance (mm) from an RV pixel to a
    myocardium pixel, compared with :data:`RV_SEPTUM_REVIEW_GAP_MM` and
    :data:`RV_SEPTUM_FAIL_GAP_MM` (touching pixels give one pixel spacing).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(slices, rows, cols)`` ACDC labels of one frame.
    spacing : sequence of float
        ``(slice, row, col)`` voxel spacing in mm.
    frame : int, optional
        Frame number, for the messages.
    """
    volume = _validate_volume(volume)
    _, row_mm, col_mm = _validate_spacing(spacing)
    gaps: dict[int, float] = {}
    for s in range(volume.shape[0]):
        rv, myo = volume[s] == Label.RV_BLOOD_POOL, volume[s] == Label.LV_MYOCARDIUM
        if rv.any() and myo.any():
            distance = ndi.distance_transform_edt(~myo, sampling=(row_mm, col_mm))
            gaps[s] = float(distance[rv].min())
    out: list[Check] = []
    for limit, status in ((RV_SEPTUM_FAIL_GAP_MM, Status.FAIL), (RV_SEPTUM_REVIEW_GAP_MM, Status.REVIEW)):
        far = [s for s, gap in gaps.items() if gap > limit and not any(s in c.slices for c in out)]
        if far:
            worst = max(gaps[s] for s in far)
            out.append(
                Check(
                    "rv_next_to_septum",
                    status,
                    f"the RV blood pool lies up to {worst:.0f} mm away from the LV myocardium on slice "
                    f"{_slice_list(far)}{_where(frame)} (expected against the septum, within "
                    f"{RV_SEPTUM_REVIEW_GAP_MM:g} mm)",
                    tuple(far),
                    frame,
                    worst,
                )
            )
    if not out:
        reason = (
            f"the RV blood pool lies against the septum on every slice{_where(frame)}"
            if gaps
            else f"no slice holds both RV and LV myocardium{_where(frame)}"
        )
        out.append(Check("rv_next_to_septum", Status.PASS, reason, (), frame, max(gaps.values(), default=None)))
    return out


def _detached_pieces(mask: np.ndarray, row_mm: float, col_mm: float) -> tuple[int, int, int]:
    """(3D pieces, detached pieces, detached voxels) of a mask; see :data:`FRAGMENT_MAX_GAP_MM`."""
    labelled, n = ndi.label(mask, ndi.generate_binary_structure(3, 3))
    if n <= 1:
        return n, 0, 0
    sizes = np.bincount(labelled.ravel())[1:]
    main = labelled == (int(np.argmax(sizes)) + 1)
    distance = np.full(mask.shape, np.inf)
    for s in range(mask.shape[0]):
        if main[s].any():
            distance[s] = ndi.distance_transform_edt(~main[s], sampling=(row_mm, col_mm))
    reach = distance.copy()  # distance to the main piece on this slice or a neighbouring one
    reach[1:] = np.minimum(reach[1:], distance[:-1])
    reach[:-1] = np.minimum(reach[:-1], distance[1:])
    nearest = ndi.minimum(reach, labelled, index=np.arange(1, n + 1))
    detached = [i for i in range(n) if nearest[i] > FRAGMENT_MAX_GAP_MM]
    return n, len(detached), int(sum(sizes[i] for i in detached))


def check_fragments(volume: np.ndarray, spacing: Sequence[float], *, frame: int | None = None) -> list[Check]:
    """Whether any structure is split into detached pieces (3D) or into several pieces on one slice (2D).

    3D: the largest 26-connected piece of each structure is its body; another
    piece is detached when none of its pixels lies within
    :data:`FRAGMENT_MAX_GAP_MM` in-plane of the body on the same or a
    neighbouring slice. Detached pieces holding more than
    :data:`FRAGMENT_FAIL_FRACTION` of the structure fail, smaller ones are
    reviewed. 2D: a structure with several 8-connected pieces on one slice (other than its two end slices,
    where basal crescents and apical partial volume legitimately split) is
    reviewed (an RV split at the base into inflow and outflow can be genuine).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(slices, rows, cols)`` ACDC labels of one frame.
    spacing : sequence of float
        ``(slice, row, col)`` voxel spacing in mm.
    frame : int, optional
        Frame number, for the messages.
    """
    volume = _validate_volume(volume)
    _, row_mm, col_mm = _validate_spacing(spacing)
    out: list[Check] = []
    eight = ndi.generate_binary_structure(2, 2)
    for label in (Label.RV_BLOOD_POOL, Label.LV_MYOCARDIUM, Label.LV_BLOOD_POOL):
        mask = volume == label
        total = int(mask.sum())
        if total == 0:
            continue
        name = _STRUCTURE_NAMES[label]
        n, n_detached, detached_voxels = _detached_pieces(mask, row_mm, col_mm)
        if n_detached:
            fraction = detached_voxels / total
            slices = np.flatnonzero(mask.any(axis=(1, 2)))
            status = Status.FAIL if fraction > FRAGMENT_FAIL_FRACTION else Status.REVIEW
            out.append(
                Check(
                    "fragments_3d",
                    status,
                    f"the {name} is fragmented{_where(frame)}: {n_detached} piece(s) lie apart from the main "
                    f"structure, holding {fraction:.1%} of its voxels ({n} pieces in all)",
                    tuple(int(s) for s in slices),
                    frame,
                    fraction,
                )
            )
        present = [s for s in range(volume.shape[0]) if mask[s].any()]
        inner = present[1:-1]  # the end slices of a structure (basal crescents, apical partial volume) often split
        split = [s for s in inner if ndi.label(mask[s], eight)[1] > 1]
        if split:
            out.append(
                Check(
                    "fragments_2d",
                    Status.REVIEW,
                    f"the {name} is split into several pieces on slice {_slice_list(split)}{_where(frame)}",
                    tuple(split),
                    frame,
                    float(len(split)),
                )
            )
    if not out:
        out.append(Check("fragments", Status.PASS, f"no structure is fragmented{_where(frame)}", (), frame))
    return out


_STRUCTURE_NAMES = {
    Label.RV_BLOOD_POOL: "RV blood pool",
    Label.LV_MYOCARDIUM: "LV myocardium",
    Label.LV_BLOOD_POOL: "LV blood pool",
}


def check_slice_continuity(
    volume: np.ndarray, *, frame: int | None = None, base_first: bool | None = None
) -> list[Check]:
    """Whether the LV cavity is continuous from base to apex.

    Fails when a slice between two LV slices holds no LV blood pool; reviews
    neighbouring interior slices (not the first or last LV slice) whose cavity
    areas differ by more than :data:`AREA_JUMP_REVIEW_FRACTION` of the larger.
    Areas are compared in pixels: the in-plane spacing is common to all slices.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(slices, rows, cols)`` ACDC labels of one frame.
    frame : int, optional
        Frame number, for the messages.
    base_first : bool, optional
        Whether slice 0 is basal (only used to order the slices in messages).
    """
    volume = _validate_volume(volume)
    out: list[Check] = []
    lv = _lv_slices(volume)
    if lv.size == 0:
        return [Check("slice_continuity", Status.FAIL, f"no slice holds the LV blood pool{_where(frame)}", (), frame)]
    gaps = [s for s in range(int(lv[0]), int(lv[-1]) + 1) if s not in set(lv.tolist())]
    if gaps:
        out.append(
            Check(
                "slice_gap",
                Status.FAIL,
                f"slice {_slice_list(gaps)} holds no LV blood pool although the slices on either side do"
                f"{_where(frame)}: a slice was missed or mislabelled",
                tuple(gaps),
                frame,
                float(len(gaps)),
            )
        )
    areas = (volume == Label.LV_BLOOD_POOL).sum(axis=(1, 2)).astype(float)
    ordered = _base_to_apex(volume, base_first)
    interior = ordered[1:-1]
    for a, b in itertools.pairwise(interior):
        if abs(int(a) - int(b)) != 1:
            continue  # across a gap: reported above
        change = abs(areas[a] - areas[b]) / max(areas[a], areas[b])
        if change > AREA_JUMP_REVIEW_FRACTION:
            out.append(
                Check(
                    "area_jump",
                    Status.REVIEW,
                    f"the LV cavity area changes abruptly between slices {int(a)} and {int(b)}{_where(frame)}: "
                    f"{areas[a]:.0f} to {areas[b]:.0f} pixels ({change:.0%}; expected a smooth taper)",
                    (int(a), int(b)),
                    frame,
                    change,
                )
            )
    if not out:
        out.append(
            Check("slice_continuity", Status.PASS, f"the LV is continuous from base to apex{_where(frame)}", (), frame)
        )
    return out


def check_coverage(
    volumes: np.ndarray, frames: Sequence[int] | None = None, *, base_first: bool | None = None
) -> list[Check]:
    """Whether the short-axis stack covers the LV apex and base, judged over all labelled frames.

    * Apex: in at least one frame the cavity area on the apical-end LV slice is
      at most :data:`APEX_MAX_AREA_FRACTION` of that frame's largest, or the
      apical-end slice holds myocardium without cavity (the apical cap).
    * Base: in at least one frame the basal-end slice does *not* hold the
      largest cavity (or no cavity): the base descends in systole, so a stack
      reaching the mitral plane shows a shrinking or absent LV on its basal
      slice at end-systole.

    Both give ``review`` ("stack may not cover ..."), never ``fail``.

    Parameters
    ----------
    volumes : numpy.ndarray
        ``(frames, slices, rows, cols)`` ACDC labels.
    frames : sequence of int, optional
        Frame numbers, for the messages.
    base_first : bool, optional
        Whether slice 0 is basal; judged from the first frame when omitted.
    """
    volumes = np.asarray(volumes)
    if volumes.ndim != 4:
        raise ValueError(f"label volumes must be 4D (frames, slices, rows, cols), got {volumes.ndim}D")
    for volume in volumes:
        _validate_volume(volume)
    if base_first is None:
        base_first = basal_end_first(volumes[0])
    n_slices = volumes.shape[1]
    base_slice, apex_slice = (0, n_slices - 1) if base_first else (n_slices - 1, 0)
    apex_ratios: list[float] = []
    base_is_largest: list[bool] = []
    for volume in volumes:
        areas = (volume == Label.LV_BLOOD_POOL).sum(axis=(1, 2))
        if areas.max() == 0:
            continue
        myo_any = (volume == Label.LV_MYOCARDIUM).any(axis=(1, 2))
        apex_ratios.append(0.0 if myo_any[apex_slice] and areas[apex_slice] == 0 else areas[apex_slice] / areas.max())
        base_is_largest.append(bool(areas[base_slice] == areas.max()))
    out: list[Check] = []
    if not apex_ratios:
        return [Check("coverage", Status.FAIL, "no frame holds the LV blood pool", ())]
    apex_ratio = min(apex_ratios)
    if apex_ratio > APEX_MAX_AREA_FRACTION:
        out.append(
            Check(
                "coverage_apex",
                Status.REVIEW,
                f"stack may not cover the apex: the LV cavity on the apical slice {apex_slice} still holds "
                f"{apex_ratio:.0%} of the largest cavity area (expected to taper towards the apex)",
                (apex_slice,),
                None,
                apex_ratio,
            )
        )
    if all(base_is_largest):
        out.append(
            Check(
                "coverage_base",
                Status.REVIEW,
                f"stack may not cover the base: the basal slice {base_slice} holds the largest LV cavity in every "
                "labelled frame, end-systole included (expected the LV to shrink or leave it as the base descends)",
                (base_slice,),
                None,
                1.0,
            )
        )
    if not out:
        out.append(Check("coverage", Status.PASS, "the stack covers the LV from base to apex", (), None, apex_ratio))
    return out


# --------------------------------------------------------------------------- measurements


def check_measurements(values: Mapping[str, float | None]) -> list[Check]:
    """Whether ED volumes exceed ES volumes and indices lie inside :data:`PHYSIOLOGICAL_LIMITS`.

    Parameters
    ----------
    values : mapping
        Indices keyed as :attr:`opencmr.measure.function.Measurements.values`
        (``lv_edv_ml``, ``lv_esv_ml``, ...); missing or None values are skipped.

    Returns
    -------
    list of Check
        One per comparison made.
    """
    out: list[Check] = []
    for prefix, name in (("lv", "LV"), ("rv", "RV")):
        edv, esv = values.get(f"{prefix}_edv_ml"), values.get(f"{prefix}_esv_ml")
        if edv is None or esv is None:
            continue
        if edv > esv:
            out.append(
                Check(f"{prefix}_ed_above_es", Status.PASS, f"{name} EDV exceeds ESV", value=float(edv) - float(esv))
            )
        else:
            out.append(
                Check(
                    f"{prefix}_ed_above_es",
                    Status.FAIL,
                    f"the {name} end-diastolic volume ({edv:.0f} mL) is not larger than the end-systolic volume "
                    f"({esv:.0f} mL): ED and ES may be swapped or a frame mis-segmented",
                    value=float(edv) - float(esv),
                )
            )
    for limit in PHYSIOLOGICAL_LIMITS:
        value = values.get(limit.key)
        if value is None or not math.isfinite(value):
            continue
        low = limit.lower is not None and value < limit.lower
        high = limit.upper is not None and value > limit.upper
        bounds = " to ".join(f"{b:g}" for b in (limit.lower, limit.upper) if b is not None)
        bounds = bounds if limit.lower is not None and limit.upper is not None else f"below {limit.upper:g}"
        label = _INDEX_NAMES.get(limit.key, limit.key)
        if low or high:
            out.append(
                Check(
                    f"limit_{limit.key}",
                    Status.FAIL,
                    f"{label} of {value:.1f} is physiologically implausible (plausible {bounds}): "
                    "check the segmentation",
                    value=value,
                )
            )
        else:
            out.append(Check(f"limit_{limit.key}", Status.PASS, f"{label} of {value:.1f} is plausible", value=value))
    return out


_INDEX_NAMES = {
    "lv_ef_percent": "LVEF (%)",
    "rv_ef_percent": "RVEF (%)",
    "lv_edv_ml": "LVEDV (mL)",
    "rv_edv_ml": "RVEDV (mL)",
    "lv_mass_g": "LV mass (g)",
    "max_wall_thickness_mm": "maximal wall thickness (mm)",
}


# --------------------------------------------------------------------------- image


def _air_mask(image: np.ndarray, blood: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Pixels of air outside the body (the largest bright piece), at least :data:`BODY_MARGIN_MM` from it, per slice."""
    smooth = ndi.uniform_filter(image, size=(1, 3, 3))
    # a noisy image lifts the air floor itself: the body must also stand well above its darkest tenth
    body = smooth > max(BODY_THRESHOLD_FRACTION * blood, 2.0 * float(np.percentile(smooth, 10)))
    air = np.zeros_like(body)
    for s in range(image.shape[0]):
        pieces, n = ndi.label(body[s])
        if n == 0:
            continue
        largest = pieces == (int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1)  # the patient; ghosts are apart
        filled = ndi.binary_fill_holes(largest)
        air[s] = ndi.distance_transform_edt(~filled, sampling=spacing[1:]) > BODY_MARGIN_MM
    return air


def check_image(
    image: np.ndarray, volume: np.ndarray, spacing: Sequence[float], *, frame: int | None = None
) -> list[Check]:
    """Input quality of one frame: SNR and a ghosting proxy.

    * SNR: mean of the LV blood pool over the noise SD. The SD comes from air
      outside the body (below :data:`BODY_THRESHOLD_FRACTION` of the blood
      signal, at least :data:`BODY_MARGIN_MM` away from it), where magnitude
      images hold Rayleigh-distributed noise: ``sigma = median / sqrt(2 ln 2)``
      [2]_, robust to ghosts and to the odd bright pixel. Compared with
      :data:`SNR_REVIEW` and :data:`SNR_FAIL`.
    * Ghosting (heuristic): motion ghosts lie along the phase-encode direction,
      which is not recorded here, so both in-plane axes are tried: the mean
      air signal in the band of rows (or columns) through the heart minus the
      mean air signal outside that band, over the blood signal; the larger of
      the two is compared with :data:`GHOST_REVIEW_RATIO`.

    Blank slices are left out of the air; :func:`check_blank_slices` reports them.

    SNR and ghosting are not estimated (``pass``, with a note) when fewer than
    :data:`AIR_MIN_PIXELS` air pixels remain (tight field of view).

    Parameters
    ----------
    image : numpy.ndarray
        ``(slices, rows, cols)`` intensities of one frame.
    volume : numpy.ndarray
        ``(slices, rows, cols)`` ACDC labels of the same frame (for the blood pool).
    spacing : sequence of float
        ``(slice, row, col)`` voxel spacing in mm.
    frame : int, optional
        Frame number, for the messages.
    """
    image = np.asarray(image, dtype=np.float64)
    volume = _validate_volume(volume)
    spacing = _validate_spacing(spacing)
    if image.shape != volume.shape:
        raise ValueError(f"image shape {image.shape} does not match label shape {volume.shape}")
    out: list[Check] = []
    flat = image.reshape(image.shape[0], -1)
    blank = np.flatnonzero(flat.max(axis=1) == flat.min(axis=1))
    # intensities are defined up to a * x + b (raw scanner values, offsets): measure from the image's floor
    image = image - float(np.percentile(image, 0.5))
    pool = volume == Label.LV_BLOOD_POOL
    if not pool.any():
        out.append(Check("snr", Status.REVIEW, f"no LV blood pool to measure the SNR on{_where(frame)}", (), frame))
        return out
    blood = float(image[pool].mean())
    live = np.ones(image.shape[0], bool)
    live[blank] = False
    air = _air_mask(image, blood, spacing) & live[:, None, None]
    if air.sum() < AIR_MIN_PIXELS or blood <= 0:
        note = f"SNR and ghosting not estimated{_where(frame)}: too little air background in the field of view"
        out.append(Check("snr", Status.PASS, note, (), frame))
        return out
    sigma = float(np.median(image[air])) / math.sqrt(2.0 * math.log(2.0))
    snr = blood / sigma if sigma > 0 else math.inf
    status = Status.FAIL if snr < SNR_FAIL else Status.REVIEW if snr < SNR_REVIEW else Status.PASS
    wording = "too low for reliable contours" if status is not Status.PASS else "adequate"
    out.append(Check("snr", status, f"blood-pool SNR is {snr:.0f}{_where(frame)}: {wording}", (), frame, snr))
    heart = np.isin(volume, (Label.RV_BLOOD_POOL, Label.LV_MYOCARDIUM, Label.LV_BLOOD_POOL)).any(axis=0)
    ratios: list[float] = []
    for axis in (0, 1):  # axis 0: band of rows through the heart, axis 1: band of columns
        along = heart.any(axis=1 - axis)
        band = np.zeros(heart.shape, bool)
        if axis == 0:
            band[along, :] = True
        else:
            band[:, along] = True
        inside, outside = air & band[None], air & ~band[None]
        if inside.sum() >= AIR_MIN_PIXELS // 4 and outside.sum() >= AIR_MIN_PIXELS // 4:
            ratios.append((float(image[inside].mean()) - float(image[outside].mean())) / blood)
    if ratios:
        ghost = max(ratios)
        if ghost > GHOST_REVIEW_RATIO:
            reason = (
                f"signal in the air along the heart's rows or columns reaches {ghost:.0%} of the blood signal"
                f"{_where(frame)}: possible motion or flow ghosting"
            )
            out.append(Check("ghosting", Status.REVIEW, reason, (), frame, ghost))
        else:
            out.append(Check("ghosting", Status.PASS, f"no ghosting detected{_where(frame)}", (), frame, ghost))
    return out


def check_blank_slices(image: np.ndarray, frames: Sequence[int] | None = None) -> list[Check]:
    """Whether any image slice is blank (all intensities equal, e.g. zero-filled missing data): ``fail``.

    Parameters
    ----------
    image : numpy.ndarray
        ``(frames, slices, rows, cols)`` intensities.
    frames : sequence of int, optional
        Frame numbers of the first axis (default 0, 1, ...).
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError(f"image must be 4D (frames, slices, rows, cols), got {image.ndim}D")
    numbers = list(range(image.shape[0])) if frames is None else [int(f) for f in frames]
    if len(numbers) != image.shape[0]:
        raise ValueError(f"need {image.shape[0]} frame numbers, got {len(numbers)}")
    flat = image.reshape(image.shape[0], image.shape[1], -1)
    blank = flat.max(axis=2) == flat.min(axis=2)  # (frames, slices)
    slices = np.flatnonzero(blank.any(axis=0))
    if slices.size == 0:
        return [Check("blank_slices", Status.PASS, "no image slice is blank", (), None, 0.0)]
    out: list[Check] = []
    for s in slices:
        hit = [numbers[f] for f in np.flatnonzero(blank[:, s])]
        where = "every frame" if len(hit) == len(numbers) else f"frame {_slice_list(hit)}"
        out.append(
            Check(
                "blank_slices",
                Status.FAIL,
                f"image slice {int(s)} is blank (constant) in {where}: missing data",
                (int(s),),
                hit[0] if len(hit) == 1 else None,
                float(len(hit)),
            )
        )
    return out


# --------------------------------------------------------------------------- everything


def not_measurable(error: Exception | str) -> Check:
    """The ``measurable`` check, failed: nothing could be measured from the segmentation (the reason given).

    What :func:`opencmr.analysis.analyze_study` reports for a study in which no
    LV is found -- noise, another body part, a broken series -- instead of
    measurements that would mean nothing.
    """
    return Check(
        "measurable",
        Status.FAIL,
        f"nothing could be measured: {error}. The input may not be a cardiac short-axis cine, "
        "or the heart was not found in it",
    )


def run_checks(study: CineStudy, labels: LabelMap, measurements: Any | None = None) -> list[Check]:
    """Every check on a study, its segmentation and its measurements.

    Anatomical checks run on each labelled frame; coverage over all of them;
    image checks on end-diastole (``measurements.phases.ed_frame``, else the
    first labelled frame); measurement checks on ``measurements.values`` (a
    :class:`opencmr.measure.function.Measurements`, or a plain mapping of values).

    Raises
    ------
    ValueError
        The labels are not on the image grid or name a frame the image lacks.
    """
    if not labels.geometry.same_grid(study.geometry):
        raise ValueError(
            f"labels {labels.geometry.shape} are not on the image grid {study.geometry.shape} (shape or affine differ)"
        )
    missing = set(labels.frame_numbers) - set(study.frame_numbers or ())
    if missing:
        raise ValueError(f"labelled frames {sorted(missing)} are not among the image frames {study.frame_numbers}")
    spacing = labels.geometry.spacing
    ed_frame = labels.frame_numbers[0]
    phases = getattr(measurements, "phases", None)
    if phases is not None and phases.ed_frame in labels.frame_numbers:
        ed_frame = phases.ed_frame
    base_first = basal_end_first(labels.frame(ed_frame))
    checks: list[Check] = []
    for frame in labels.frame_numbers:
        volume = labels.frame(frame)
        checks += check_myocardium_encloses_lv(volume, frame=frame, base_first=base_first)
        checks += check_rv_next_to_septum(volume, spacing, frame=frame)
        checks += check_fragments(volume, spacing, frame=frame)
        checks += check_slice_continuity(volume, frame=frame, base_first=base_first)
    checks += check_coverage(labels.data, labels.frame_numbers, base_first=base_first)
    if measurements is not None:
        values = getattr(measurements, "values", measurements)
        checks += check_measurements(values)
    checks += check_blank_slices(study.image, study.frame_numbers)
    checks += check_image(study.frame(ed_frame), labels.frame(ed_frame), spacing, frame=ed_frame)
    return checks
