"""Myocardial wall thickness from a label map: per ray, per AHA segment, its maximum and systolic thickening.

Wall thickness of a slice
-------------------------
:func:`slice_thickness` casts ``n_rays`` rays (default 100, evenly spaced in
angle in millimetres, so anisotropic pixels are handled) from the centroid of
the LV blood pool. Each ray is sampled every ``step_px`` (default 0.1) of the
smaller pixel spacing and each sample takes the label of the pixel it falls in
(nearest neighbour: a pixel is the square around its centre), so the borders
are found to within one step (0.15 mm for 1.5 mm pixels) of the pixelated
contours. Along a ray:

* the **endocardial border** is the last LV blood-pool sample before the ray
  first leaves the LV (myocardium or blood pool). Myocardium met before it
  (papillary muscles labelled as myocardium, trabeculae) is not counted;
* the **epicardial border** is where the ray then leaves the myocardium (into
  background or the RV blood pool: the septum is measured between the two
  cavities);
* the ray's **crossing length** is the distance between the two borders.

The wall is generally not perpendicular to a ray from the centroid (an oval
cavity, an eccentric septal bulge); a ray crossing the wall at an angle
``alpha`` from its normal is ``1 / cos(alpha)`` times too long. The reported
**thickness** is therefore measured perpendicular to the wall's centreline, as
in the centreline method [1]_: the centreline is the curve of the midpoints of
the crossings, at distance ``r(phi)`` from the centre along the ray at angle
``phi``; the ray meets it at ``alpha`` from its normal with
``tan(alpha) = (dr/dphi) / r``, where ``r`` is median-filtered over five rays
(so that one outlying ray does not tilt its neighbours) and ``dr/dphi`` is the
least-squares slope over the same five rays; thickness = crossing length x
``cos(alpha)``. For a circular ring the two coincide; for a cavity of axis
ratio 1.3 the correction reaches about 4 %.

A ray gives NaN, never a number that is not a wall thickness
(:class:`RayStatus`), when the myocardium is not a closed ring there: the
blood pool meets background or the RV directly (basal slices through the LV
outflow tract, a missing wall; the rays either side of such an opening are
also NaN, because they may cut the end of the wall obliquely); the ray meets
no blood pool before leaving the LV (a crescent cavity whose centroid lies
outside it); the myocardium reaches the edge of the image; or the ray runs
along the wall (``alpha`` > 60 deg).

**Maximum wall thickness** must not come from one noisy ray: the
*neighbour-agreed* thickness of a ray is the second largest of the finite
values of the ray and its two neighbours (their median when all three are
finite), i.e. a thickness counts only if a neighbouring ray, 3.6 deg away with
100 rays, reaches it too. :func:`max_wall_thickness` is the largest
neighbour-agreed thickness over all slices, compared with
:data:`HYPERTROPHY_THRESHOLD_MM` (15 mm, the ESC criterion for hypertrophic
cardiomyopathy [3]_).

A slice whose cavity is nearly closed (equivalent radius below
:data:`MIN_CAVITY_RADIUS_MM`, 5 mm) cuts the curved apical wall tangentially,
so its in-plane thickness overstates the wall (by 50 % and more in the
phantoms of :mod:`opencmr.phantom`); such slices are measured but left out of
the segment values and the maximum, and the notes name them. Basal slices cut
the wall obliquely too where the base is tilted; they are kept, as in clinical
practice, which measures the basal septum.

Base, apex and the three levels
-------------------------------
Slice 0 may be basal or apical. The order is decided from the anatomy (the
rule used is written in the notes): the LV blood-pool area, fitted by a
straight line over the slices that hold any structure, decreases towards the
apex; if it changes by less than 10 % of its largest value over the stack,
the RV blood-pool area is used the same way (the RV is largest at the base);
if neither tells, slice 0 is taken as basal (as in 79 of the 80 ACDC training
volumes). The slices with both LV blood pool and myocardium, ordered from base
to apex, are split into basal, mid and apical thirds as equal in number as
possible (``level = floor(3 rank / n)``: the basal, then the mid third gets the
extra slice). Slices beyond the apical end with myocardium but no cavity are
the apical cap (segment 17 of the AHA model), which has no wall thickness in
this sense and is not reported.

AHA segments and where they start
---------------------------------
The 16 segments of the AHA 17-segment model without the apical cap [2]_: six
of 60 deg at the basal and mid levels (1-6 and 7-12: anterior, anteroseptal,
inferoseptal, inferior, inferolateral, anterolateral) and four of 90 deg at the
apical level (13-16: anterior, septal, inferior, lateral), numbered
counter-clockwise as seen from the apex.

The angular origin comes from the **RV insertion points**: the RV blood-pool
pixels of the slice's largest RV component that touch the myocardium (8-connected)
are seen from the LV centroid under a range of angles; the shortest arc that
holds them all is the septum, and its two ends are the insertion points.
Segment angles are measured in an anatomical frame, the *AHA angle*
(degrees): septum at 180, anterior at 90, inferior at 270, lateral at 0 --
the angles of the bull's-eye plot (:mod:`opencmr.measure.bullseye`). By
default (:attr:`SegmentOrigin.ANTERIOR_INSERTION`) the anterior insertion
point is at 120 deg, the border between segment 1 (basal anterior) and 2
(anteroseptal): segment 1 "starts" there when walking clockwise (seen from the
apex) from the septum, and the septal segments 2-3 and 8-9 cover the 120 deg
from the anterior insertion point towards the inferior one.
:attr:`SegmentOrigin.SEPTAL_BISECTOR` puts the bisector of the two insertion
points at 180 deg (the 2|3 border) instead, which is less sensitive to either
point alone. Apical segment 14 is centred on the septal direction
(180 deg) in both cases.

Which insertion point is anterior (the direction of rotation) follows from the
anatomy, not from which way the heart happens to face in the image: going
from the anterior wall across the septum (the RV side, found from the data)
to the inferior wall is a counter-clockwise turn seen from the apex [2]_.
Seen from the apex or from the base, i.e. whether the stored image is a
mirror image, cannot be told from a label map (a mirrored heart looks like a
normal heart); it is taken from

* the **affine** (``affine=``, :attr:`opencmr.io.study.Geometry.affine`,
  mapping ``(col, row, slice)`` to patient coordinates), when it is a real
  oblique orientation: the handedness of the voxel grid (sign of its
  determinant) and the base-to-apex direction along the slice axis (from the
  data) fix the turn. An axis-aligned affine (a diagonal scaling, as in the
  ACDC NIfTI files, which carry no orientation) is not used for this;
* otherwise the **display convention**: the image shown with row 0 at the
  top and column 0 at the left is the standard short-axis view, seen from the
  apex, at any in-plane rotation -- as scanners display short-axis cines and
  as the ACDC volumes are stored (the liver below and right of the heart,
  counter-clockwise after the RV; checked on the ACDC training images, where
  the thickest segments of the hypertrophic hearts then fall on the anterior
  septum, the typical site). In that view the AHA angle decreases with the
  image angle ``atan2(row, col)``, whatever the slice order.

The notes say which was used. Whatever the orientation, the septal segments
are the ones on the RV side; a mirrored image (flipped left-right) without an
affine saying so swaps anterior and inferior segments (1 and 4, 2 and 3, 5
and 6, ...).

A slice without RV contact (apical slices, usually) takes the insertion points
(as angles) of the nearest slice that has them. If no slice has any, the
septum is placed towards the centroid of the RV blood pool (if there is one),
else towards lower column and higher row indices as in the ACDC volumes, and
:attr:`SegmentThickness.fallback` is set.

Thickening
----------
:func:`segment_thickening` measures the segments at ED and at ES separately
(each phase gets its own levels and insertion points: the base descends in
systole) and gives ``(ES - ED) / ED x 100 %`` of the segment means.

References
----------
.. [1] F. H. Sheehan, E. L. Bolson, H. T. Dodge, D. G. Mathey, J. Schofer and
   H. W. Woo, "Advantages and applications of the centerline method for
   characterizing regional ventricular function", Circulation 74(2), 1986,
   pp. 293-305, doi:10.1161/01.CIR.74.2.293.
.. [2] M. D. Cerqueira et al., "Standardized myocardial segmentation and
   nomenclature for tomographic imaging of the heart", Circulation 105(4),
   2002, pp. 539-542, doi:10.1161/hc0402.102975.
.. [3] P. M. Elliott et al., "2014 ESC Guidelines on diagnosis and management
   of hypertrophic cardiomyopathy", Eur Heart J 35(39), 2014, pp. 2733-2779,
   doi:10.1093/eurheartj/ehu284.
.. [4] W. Bai et al., "Automated cardiovascular magnetic resonance image
   analysis with fully convolutional networks", JCMR 20, 2018, 65,
   doi:10.1186/s12968-018-0471-x (automated AHA-segment wall thickness from a
   short-axis segmentation, with the septum found from the RV).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from opencmr.labels import LABEL_VALUES, Label

__all__ = [
    "AHA_SEGMENT_NAMES",
    "DEFAULT_N_RAYS",
    "DEFAULT_STEP_PX",
    "HYPERTROPHY_THRESHOLD_MM",
    "MAX_OBLIQUITY_DEG",
    "MIN_CAVITY_RADIUS_MM",
    "SEPTAL_SEGMENTS",
    "Level",
    "MaxWallThickness",
    "RayStatus",
    "SegmentOrigin",
    "SegmentThickening",
    "SegmentThickness",
    "SliceThickness",
    "aha_segment",
    "aha_segments",
    "max_wall_thickness",
    "neighbour_agreed",
    "rv_insertion_angles",
    "segment_thickening",
    "slice_thickness",
]

#: Maximal end-diastolic LV wall thickness (mm) at or above which hypertrophic cardiomyopathy is diagnosed in
#: adults (in the absence of another cause): ESC 2014 HCM guideline, Elliott et al., Eur Heart J 35:2733,
#: doi:10.1093/eurheartj/ehu284, section 6.
HYPERTROPHY_THRESHOLD_MM: float = 15.0

#: Rays per slice (3.6 deg apart: about 1.6 mm along a 25 mm radius wall).
DEFAULT_N_RAYS: int = 100

#: Sampling step along a ray, as a fraction of the smaller pixel spacing.
DEFAULT_STEP_PX: float = 0.1

#: A ray more oblique than this to the wall's normal runs along the wall and gives NaN.
MAX_OBLIQUITY_DEG: float = 60.0

#: A slice whose LV cavity has a smaller equivalent radius (mm) cuts the curved apical wall tangentially (its
#: in-plane thickness overstates the wall): it is left out of the segment values and of the maximum.
MIN_CAVITY_RADIUS_MM: float = 5.0

#: Names of the 16 segments of the AHA model (Cerqueira et al. 2002); 17, the apical cap, is not measured.
AHA_SEGMENT_NAMES: dict[int, str] = {
    1: "basal anterior",
    2: "basal anteroseptal",
    3: "basal inferoseptal",
    4: "basal inferior",
    5: "basal inferolateral",
    6: "basal anterolateral",
    7: "mid anterior",
    8: "mid anteroseptal",
    9: "mid inferoseptal",
    10: "mid inferior",
    11: "mid inferolateral",
    12: "mid anterolateral",
    13: "apical anterior",
    14: "apical septal",
    15: "apical inferior",
    16: "apical lateral",
}

#: The septal segments: on the RV side, between the insertion points.
SEPTAL_SEGMENTS: frozenset[int] = frozenset({2, 3, 8, 9, 14})

_SEGMENTS = tuple(AHA_SEGMENT_NAMES)
_OUTSIDE = 255  # ray sample beyond the image
_BLOOD, _MYO, _RV = int(Label.LV_BLOOD_POOL), int(Label.LV_MYOCARDIUM), int(Label.RV_BLOOD_POOL)
_CENTRELINE_HALF_WINDOW = 2  # rays either side used for the centreline direction
_ACDC_SEPTUM_RAD = math.atan2(1.0, -1.0)  # fallback septal direction: higher row, lower column (ACDC layout)
_AREA_CHANGE_FRACTION = 0.1  # base/apex rule: fitted area change over the stack, relative to the largest area


class Level(StrEnum):
    """Long-axis level of a short-axis slice in the AHA model."""

    BASAL = "basal"
    MID = "mid"
    APICAL = "apical"
    APEX = "apex"
    """The apical cap beyond the cavity (segment 17): myocardium without blood pool, not measured."""


class SegmentOrigin(StrEnum):
    """Where the AHA segments start, relative to the RV insertion points."""

    ANTERIOR_INSERTION = "anterior-insertion"
    """The anterior insertion point is the border of segments 1 and 2 (AHA angle 120 deg)."""
    SEPTAL_BISECTOR = "septal-bisector"
    """The bisector of the two insertion points is the border of segments 2 and 3 (AHA angle 180 deg)."""


class RayStatus(IntEnum):
    """Why a ray has, or has no, thickness."""

    OK = 0
    OPEN = 1
    """The blood pool meets background or the RV directly: no wall on this ray (open ring)."""
    NEXT_TO_OPEN = 2
    """Beside an open ray: may cut the end of the wall obliquely."""
    NO_CAVITY = 3
    """The ray meets no blood pool before leaving the LV (the centroid lies outside the cavity)."""
    AT_IMAGE_EDGE = 4
    """The myocardium reaches the edge of the image."""
    ALONG_WALL = 5
    """The ray is more than :data:`MAX_OBLIQUITY_DEG` from the wall's normal."""


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, eq=False)
class SliceThickness:
    """Wall thickness along rays from the LV blood-pool centroid of one slice.

    Attributes
    ----------
    angles_rad : numpy.ndarray
        ``(n_rays,)`` ray angles in the image plane, in millimetre space:
        ``atan2(drow_mm, dcol_mm)``, 0 along +col, pi/2 along +row.
    thickness_mm : numpy.ndarray
        ``(n_rays,)`` wall thickness perpendicular to the centreline; NaN where
        not measurable (see ``status``).
    crossing_mm : numpy.ndarray
        ``(n_rays,)`` length of the ray inside the wall (before the obliquity
        correction); NaN where not measurable.
    status : numpy.ndarray
        ``(n_rays,)`` :class:`RayStatus` codes.
    centre_rc : tuple of float
        The LV blood-pool centroid, ``(row, col)`` in pixel indices.
    endocardium_rc, epicardium_rc : numpy.ndarray
        ``(n_rays, 2)`` border points along each ray, ``(row, col)`` in pixel
        indices; NaN where not measurable.
    spacing_rc : tuple of float
        In-plane pixel spacing ``(row, col)`` in mm.
    """

    angles_rad: np.ndarray
    thickness_mm: np.ndarray
    crossing_mm: np.ndarray
    status: np.ndarray
    centre_rc: tuple[float, float]
    endocardium_rc: np.ndarray
    epicardium_rc: np.ndarray
    spacing_rc: tuple[float, float]

    @property
    def n_measured(self) -> int:
        """Number of rays with a thickness."""
        return int(np.count_nonzero(np.isfinite(self.thickness_mm)))

    @property
    def neighbour_agreed_mm(self) -> np.ndarray:
        """Thickness per ray confirmed by a neighbouring ray (:func:`neighbour_agreed`)."""
        return neighbour_agreed(self.thickness_mm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (NaN as None)."""
        return {
            "centre_rc": list(self.centre_rc),
            "spacing_rc": list(self.spacing_rc),
            "angles_deg": [round(math.degrees(a), 3) for a in self.angles_rad],
            "thickness_mm": [_finite_or_none(v) for v in self.thickness_mm],
            "status": [RayStatus(int(s)).name.lower() for s in self.status],
        }


@dataclass(frozen=True)
class MaxWallThickness:
    """The largest neighbour-agreed wall thickness of a stack, where it is, and the hypertrophy criterion.

    Attributes
    ----------
    thickness_mm : float
        NaN when no ray could be measured.
    slice_index : int or None
        Slice of the maximum.
    angle_rad : float or None
        Ray angle of the maximum (image convention of :class:`SliceThickness`).
    segment : int or None
        AHA segment (1-16) of that ray.
    threshold_mm : float
        :data:`HYPERTROPHY_THRESHOLD_MM`.
    meets_threshold : bool
        ``thickness_mm >= threshold_mm``. Meaningful at end-diastole.
    """

    thickness_mm: float
    slice_index: int | None
    angle_rad: float | None
    segment: int | None
    threshold_mm: float = HYPERTROPHY_THRESHOLD_MM
    meets_threshold: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (NaN as None)."""
        return {
            "thickness_mm": _finite_or_none(self.thickness_mm),
            "slice_index": self.slice_index,
            "angle_deg": None if self.angle_rad is None else round(math.degrees(self.angle_rad), 3),
            "segment": self.segment,
            "threshold_mm": self.threshold_mm,
            "meets_threshold": self.meets_threshold,
        }


@dataclass(frozen=True, eq=False)
class SegmentThickness:
    """Wall thickness per AHA segment of one frame, and how the segments were placed.

    Attributes
    ----------
    mean_mm : dict of int to float
        Segment 1-16: mean thickness of the measured rays of the segment's
        slices; NaN when none.
    max_mm : dict of int to float
        Segment 1-16: largest neighbour-agreed ray thickness; NaN when none.
    ray_counts : dict of int to int
        Segment 1-16: number of measured rays.
    levels : tuple of Level or None
        Level of each slice (None: no myocardium, or myocardium without cavity
        that is not the apical cap).
    base_first : bool
        Whether slice 0 is the basal end.
    aha_rotation : int
        +1 when the AHA angle grows with the image angle ``atan2(row, col)``,
        -1 when it decreases (the standard view from the apex).
    orientation_from : str
        ``"affine"`` or ``"display"``: what decided ``aha_rotation``.
    origin : SegmentOrigin
        Where the segments start.
    slices : tuple of SliceThickness or None
        Per slice (None where there is no cavity with myocardium).
    ray_segments : tuple of numpy.ndarray or None
        Per slice, the AHA segment of each ray (0 for none: no level).
    aha_angles_deg : tuple of numpy.ndarray or None
        Per slice, the AHA angle of each ray (septum 180, anterior 90).
    insertion_angles_rad : tuple of (float, float) or None
        Per slice, the image angles of the (anterior, inferior) RV insertion
        points used (own or borrowed).
    insertion_source : tuple of int or None
        Per slice, the slice whose insertion points were used (None: fallback
        or no measurement).
    fallback : bool
        True when no slice had RV insertion points and the septum was placed
        by the fallback rule.
    small_cavity_slices : tuple of int
        Slices measured but left out of the segment values and the maximum:
        cavity radius below :data:`MIN_CAVITY_RADIUS_MM`.
    notes : tuple of str
        Rules applied and problems met, in words.
    """

    mean_mm: dict[int, float]
    max_mm: dict[int, float]
    ray_counts: dict[int, int]
    levels: tuple[Level | None, ...]
    base_first: bool
    aha_rotation: int
    orientation_from: str
    origin: SegmentOrigin
    slices: tuple[SliceThickness | None, ...]
    ray_segments: tuple[np.ndarray | None, ...]
    aha_angles_deg: tuple[np.ndarray | None, ...]
    insertion_angles_rad: tuple[tuple[float, float] | None, ...]
    insertion_source: tuple[int | None, ...]
    fallback: bool
    small_cavity_slices: tuple[int, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    def max_wall_thickness(self) -> MaxWallThickness:
        """The largest neighbour-agreed thickness over all measured slices (see :func:`max_wall_thickness`)."""
        best = (-math.inf, None, None)
        for k, result in enumerate(self.slices):
            if result is None or k in self.small_cavity_slices:
                continue
            agreed = result.neighbour_agreed_mm
            if np.isfinite(agreed).any():
                i = int(np.nanargmax(agreed))
                if agreed[i] > best[0]:
                    best = (float(agreed[i]), k, i)
        value, k, i = best
        if k is None or i is None:
            return MaxWallThickness(math.nan, None, None, None)
        segments = self.ray_segments[k]
        segment = int(segments[i]) if segments is not None and segments[i] > 0 else None
        return MaxWallThickness(
            thickness_mm=value,
            slice_index=k,
            angle_rad=float(self.slices[k].angles_rad[i]),  # type: ignore[union-attr]
            segment=segment,
            meets_threshold=value >= HYPERTROPHY_THRESHOLD_MM,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary: per segment (keys ``"1"``..``"16"``), levels, flags and notes (NaN as None)."""
        return {
            "segments": {
                str(s): {
                    "name": AHA_SEGMENT_NAMES[s],
                    "mean_mm": _finite_or_none(self.mean_mm[s]),
                    "max_mm": _finite_or_none(self.max_mm[s]),
                    "n_rays": self.ray_counts[s],
                }
                for s in _SEGMENTS
            },
            "slice_levels": [None if level is None else level.value for level in self.levels],
            "base_first": self.base_first,
            "aha_rotation": self.aha_rotation,
            "orientation_from": self.orientation_from,
            "origin": self.origin.value,
            "insertion_source": list(self.insertion_source),
            "fallback": self.fallback,
            "small_cavity_slices": list(self.small_cavity_slices),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, eq=False)
class SegmentThickening:
    """Systolic wall thickening per AHA segment.

    Attributes
    ----------
    percent : dict of int to float
        Segment 1-16: ``(ES - ED) / ED x 100`` of the segment mean thickness;
        NaN when either is missing.
    ed, es : SegmentThickness
        The segment thickness of each phase.
    notes : tuple of str
    """

    percent: dict[int, float]
    ed: SegmentThickness
    es: SegmentThickness
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (NaN as None)."""
        return {
            "segments": {
                str(s): {
                    "name": AHA_SEGMENT_NAMES[s],
                    "thickening_percent": _finite_or_none(self.percent[s]),
                    "ed_mean_mm": _finite_or_none(self.ed.mean_mm[s]),
                    "es_mean_mm": _finite_or_none(self.es.mean_mm[s]),
                }
                for s in _SEGMENTS
            },
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------------------------- validation


def _as_labels(labels: ArrayLike, ndim: int, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != ndim:
        layout = "(rows, cols)" if ndim == 2 else "(slices, rows, cols)"
        raise ValueError(f"{name} must be a {ndim}D label map {layout}, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric label map, got dtype {array.dtype}")
    if array.dtype.kind in "biu" and array.size and 0 <= array.min() and array.max() <= max(LABEL_VALUES):
        return array.astype(np.uint8, copy=False)
    values = np.unique(array)
    unexpected = [v.item() for v in values if not (np.isfinite(v) and v in LABEL_VALUES)]
    if unexpected:
        shown = ", ".join(str(v) for v in unexpected[:6]) + (", ..." if len(unexpected) > 6 else "")
        raise ValueError(
            f"{name} holds unexpected label values {shown}: expected the ACDC labels 0 background, "
            "1 RV blood pool, 2 LV myocardium, 3 LV blood pool"
        )
    return array.astype(np.uint8)


def _spacing(spacing: Sequence[float], n: int, name: str) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != n:
        raise ValueError(f"{name} needs {n} values, got {len(values)}: {values}")
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"{name} must be positive and finite (mm), got {values}")
    return values


def _check_rays(n_rays: int, step_px: float) -> None:
    if int(n_rays) != n_rays or n_rays < 12:
        raise ValueError(f"n_rays must be an integer of at least 12 (two per 60 deg segment), got {n_rays}")
    if not (0 < step_px <= 1):
        raise ValueError(f"step_px must be in (0, 1] pixel, got {step_px}")


# ------------------------------------------------------------------------------------------ rays of a slice


def neighbour_agreed(thickness_mm: ArrayLike) -> np.ndarray:
    """Per ray, the thickness that at least one neighbouring ray also reaches.

    The second largest of the finite values among the ray and its two
    neighbours (circularly); their median when all three are finite. NaN where
    the ray itself is NaN or both neighbours are. One outlying ray therefore
    never sets a maximum.

    Examples
    --------
    >>> neighbour_agreed([8.0, 8.0, 30.0, 8.0, 9.0, 9.0]).tolist()
    [8.0, 8.0, 8.0, 9.0, 9.0, 9.0]
    """
    values = np.asarray(thickness_mm, dtype=np.float64)
    stack = np.stack([np.roll(values, 1), values, np.roll(values, -1)])
    ranked = -np.sort(-np.where(np.isfinite(stack), stack, -np.inf), axis=0)
    second = ranked[1]
    return np.where(np.isfinite(values) & np.isfinite(second), second, np.nan)


def _cast_rays(
    labels: np.ndarray,
    centre_rc: tuple[float, float],
    spacing_rc: tuple[float, float],
    angles: np.ndarray,
    step_mm: float,
) -> np.ndarray:
    """Labels sampled along each ray every ``step_mm`` from the centre; :data:`_OUTSIDE` beyond the image."""
    rows, cols = labels.shape
    sr, sc = spacing_rc
    rr, cc = np.nonzero((labels == _MYO) | (labels == _BLOOD))
    # far enough to leave the LV's bounding box (grown by two pixels) in every direction
    reach_r = max(abs(rr.min() - 2 - centre_rc[0]), abs(rr.max() + 2 - centre_rc[0])) * sr
    reach_c = max(abs(cc.min() - 2 - centre_rc[1]), abs(cc.max() + 2 - centre_rc[1])) * sc
    t = np.arange(0.0, math.hypot(reach_r, reach_c) + 2 * step_mm, step_mm)
    r = np.floor(centre_rc[0] + np.sin(angles)[:, None] * (t / sr) + 0.5).astype(np.intp)
    c = np.floor(centre_rc[1] + np.cos(angles)[:, None] * (t / sc) + 0.5).astype(np.intp)
    inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    samples = np.full(r.shape, _OUTSIDE, dtype=np.uint8)
    samples[inside] = labels[r[inside], c[inside]]
    return samples


def _running_median(values: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Median of the finite values in each row of ``values[window]``; NaN where fewer than three."""
    rows = np.sort(values[window], axis=1)  # NaN sort last
    count = np.isfinite(rows).sum(axis=1)
    low = np.take_along_axis(rows, np.maximum(count - 1, 0)[:, None] // 2, axis=1)[:, 0]
    high = np.take_along_axis(rows, (count // 2)[:, None], axis=1)[:, 0]
    return np.where(count >= 3, 0.5 * (low + high), np.nan)


def _centreline_cosines(angles: np.ndarray, mid_mm: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``cos(alpha)`` per ray, alpha between the ray and the normal of the wall's centreline.

    ``tan(alpha) = (dr/dphi) / r`` for the centreline ``r(phi)`` (distance of
    the crossing midpoints from the centre), median-filtered and then fitted
    by a least-squares slope over the ray and :data:`_CENTRELINE_HALF_WINDOW`
    rays either side; 1 (no correction) where fewer than three are measured.
    """
    n = angles.size
    offsets = np.arange(-_CENTRELINE_HALF_WINDOW, _CENTRELINE_HALF_WINDOW + 1)
    window = (np.arange(n)[:, None] + offsets[None, :]) % n
    radius = _running_median(np.where(ok, mid_mm, np.nan), window)
    values = radius[window]
    weight = np.isfinite(values).astype(np.float64)
    values = np.where(weight > 0, values, 0.0)
    count = weight.sum(axis=1)
    safe = np.maximum(count, 1.0)
    x = offsets[None, :] * (2.0 * math.pi / n) * weight
    x_mean = x.sum(axis=1) / safe
    v_mean = (values * weight).sum(axis=1) / safe
    sxx = (((x - x_mean[:, None]) * weight) ** 2).sum(axis=1)
    sxv = ((x - x_mean[:, None]) * (values - v_mean[:, None]) * weight).sum(axis=1)
    slope = np.where(sxx > 0, sxv / np.where(sxx > 0, sxx, 1.0), 0.0)
    usable = (count >= 3) & np.isfinite(radius) & (radius > 0)
    tan_alpha = np.where(usable, slope / np.where(usable, radius, 1.0), 0.0)
    return 1.0 / np.sqrt(1.0 + tan_alpha**2)


def slice_thickness(
    labels_2d: ArrayLike,
    spacing_rc: Sequence[float],
    n_rays: int = DEFAULT_N_RAYS,
    *,
    step_px: float = DEFAULT_STEP_PX,
) -> SliceThickness:
    """Myocardial wall thickness along ``n_rays`` rays from the LV blood-pool centroid of one slice.

    Parameters
    ----------
    labels_2d : array_like
        ``(rows, cols)`` ACDC label map (0-3).
    spacing_rc : sequence of float
        Pixel spacing ``(row, col)`` in mm.
    n_rays : int
        Rays, evenly spaced in angle (in mm) starting along +col; at least 12.
    step_px : float
        Sampling step along the rays, as a fraction of the smaller pixel spacing.

    Returns
    -------
    SliceThickness
        Angles, thickness per ray (NaN where the ring is open or the wall
        cannot be measured, see :class:`RayStatus`), centre and borders.

    Raises
    ------
    ValueError
        No LV blood pool in the slice, values other than 0-3, a wrong shape,
        spacing or ray count.

    Examples
    --------
    A cavity of radius 8 mm in a wall 8 mm thick, in 0.5 x 0.4 mm pixels:

    >>> import numpy as np
    >>> rr, cc = np.mgrid[:81, :101]
    >>> radius = np.hypot((rr - 40) * 0.5, (cc - 50) * 0.4)
    >>> labels = np.where(radius < 8, 3, np.where(radius < 16, 2, 0))
    >>> result = slice_thickness(labels, (0.5, 0.4), n_rays=36)
    >>> round(float(np.mean(result.thickness_mm)), 1), result.n_measured
    (8.0, 36)
    """
    labels = _as_labels(labels_2d, 2, "labels_2d")
    sr, sc = _spacing(spacing_rc, 2, "spacing_rc")
    _check_rays(n_rays, step_px)
    blood_r, blood_c = np.nonzero(labels == _BLOOD)
    if blood_r.size == 0:
        raise ValueError("the slice has no LV blood pool (label 3): wall thickness is measured from its centroid")
    centre = (float(blood_r.mean()), float(blood_c.mean()))
    angles = np.arange(int(n_rays)) * (2.0 * math.pi / int(n_rays))
    step_mm = step_px * min(sr, sc)
    samples = _cast_rays(labels, centre, (sr, sc), angles, step_mm)

    n, m = samples.shape
    index = np.arange(m)
    in_lv = (samples == _MYO) | (samples == _BLOOD)
    exit_ = np.argmax(~in_lv, axis=1)  # first sample outside the LV (exists: rays reach beyond its bounding box)
    blood = (samples == _BLOOD) & (index[None, :] < exit_[:, None])
    endo = np.where(blood, index[None, :], -1).max(axis=1)  # last blood-pool sample before leaving the LV
    crossing = (exit_ - endo - 1) * step_mm

    status = np.full(n, RayStatus.OK, dtype=np.int8)
    status[samples[np.arange(n), exit_] == _OUTSIDE] = RayStatus.AT_IMAGE_EDGE
    status[crossing <= 0] = RayStatus.OPEN
    status[endo < 0] = RayStatus.NO_CAVITY
    open_ = status == RayStatus.OPEN
    beside_open = (np.roll(open_, 1) | np.roll(open_, -1)) & (status == RayStatus.OK)
    status[beside_open] = RayStatus.NEXT_TO_OPEN

    ok = status == RayStatus.OK
    t_endo = (endo + 0.5) * step_mm
    t_epi = (exit_ - 0.5) * step_mm
    cosines = _centreline_cosines(angles, 0.5 * (t_endo + t_epi), ok)
    along = ok & (cosines < math.cos(math.radians(MAX_OBLIQUITY_DEG)))
    status[along] = RayStatus.ALONG_WALL
    ok &= ~along

    crossing_mm = np.where(ok, crossing, np.nan)
    unit_rc = np.stack([np.sin(angles) / sr, np.cos(angles) / sc], axis=1)  # pixels per mm along each ray
    endo_rc = np.asarray(centre) + unit_rc * np.where(ok, t_endo, np.nan)[:, None]
    epi_rc = np.asarray(centre) + unit_rc * np.where(ok, t_epi, np.nan)[:, None]
    return SliceThickness(
        angles_rad=_read_only(angles),
        thickness_mm=_read_only(crossing_mm * cosines),
        crossing_mm=_read_only(crossing_mm),
        status=_read_only(status),
        centre_rc=centre,
        endocardium_rc=_read_only(endo_rc),
        epicardium_rc=_read_only(epi_rc),
        spacing_rc=(sr, sc),
    )


# ----------------------------------------------------------------------------------------- RV insertions


def _covering_arc(angles: np.ndarray) -> tuple[float, float]:
    """``(start, width)`` in radians of the shortest arc, counted with increasing angle, holding all ``angles``."""
    ordered = np.sort(np.mod(angles, 2.0 * math.pi))
    gaps = np.diff(np.append(ordered, ordered[0] + 2.0 * math.pi))
    largest = int(np.argmax(gaps))
    start = float(ordered[(largest + 1) % ordered.size])
    return start, float(2.0 * math.pi - gaps[largest])


def rv_insertion_angles(
    labels_2d: ArrayLike, spacing_rc: Sequence[float], centre_rc: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """The two ends of the septum seen from the LV centre: the RV insertion points, as image angles.

    The RV blood-pool pixels that touch the LV myocardium (8-connected) are
    taken from the largest RV component that touches it; the shortest arc of
    angles, seen from ``centre_rc``, that holds them all is the septum.

    Parameters
    ----------
    labels_2d : array_like
        ``(rows, cols)`` ACDC label map.
    spacing_rc : sequence of float
        Pixel spacing ``(row, col)`` in mm (angles are measured in mm).
    centre_rc : tuple of float, optional
        ``(row, col)`` pixel position of the LV centre; the blood-pool centroid
        by default.

    Returns
    -------
    tuple of float or None
        ``(start, end)`` in radians (``atan2(drow_mm, dcol_mm)``, in
        ``[0, 2 pi)``) such that the septum runs from ``start`` to ``end`` with
        increasing angle; None when the RV touches no myocardium. Which end is
        anterior depends on the orientation of the stack (see the module notes).

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.mgrid[:60, :60]
    >>> r = np.hypot(rr - 30, cc - 30)
    >>> labels = np.where(r < 8, 3, np.where(r < 12, 2, 0))
    >>> labels[(r >= 12) & (r < 18) & (cc < 30 - 6)] = 1  # an RV crescent on the low-column side
    >>> start, end = rv_insertion_angles(labels, (1.0, 1.0))
    >>> bool(90 < np.degrees(start) < 180 < np.degrees(end) < 270)
    True
    """
    labels = _as_labels(labels_2d, 2, "labels_2d")
    sr, sc = _spacing(spacing_rc, 2, "spacing_rc")
    myo = labels == _MYO
    rv = labels == _RV
    if not myo.any() or not rv.any():
        return None
    if centre_rc is None:
        blood_r, blood_c = np.nonzero(labels == _BLOOD)
        if blood_r.size == 0:
            return None
        centre_rc = (float(blood_r.mean()), float(blood_c.mean()))
    eight = np.ones((3, 3), dtype=bool)
    touching = rv & ndimage.binary_dilation(myo, structure=eight)
    components, count = ndimage.label(rv, structure=eight)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    touching_ids = np.unique(components[touching])
    touching_ids = touching_ids[touching_ids > 0]
    if touching_ids.size == 0:
        return None
    keep = touching_ids[int(np.argmax(sizes[touching_ids]))]
    r, c = np.nonzero(touching & (components == keep))
    if r.size < 2:
        return None
    start, width = _covering_arc(np.arctan2((r - centre_rc[0]) * sr, (c - centre_rc[1]) * sc))
    return start, float(np.mod(start + width, 2.0 * math.pi))


# ------------------------------------------------------------------------------------- long axis and levels


def _base_first(labels: np.ndarray) -> tuple[bool, str]:
    """Whether slice 0 is basal, and the rule that decided it (see the module notes)."""
    present = np.flatnonzero((labels > 0).any(axis=(1, 2)))
    if present.size < 2:
        return True, "a single slice holds the heart: slice 0 taken as basal"
    positions = present.astype(np.float64)
    for name, value in (("LV blood-pool", _BLOOD), ("RV blood-pool", _RV)):
        area = (labels[present] == value).sum(axis=(1, 2)).astype(np.float64)
        if area.max() == 0:
            continue
        change = np.polyfit(positions, area, 1)[0] * (positions[-1] - positions[0])
        if abs(change) >= _AREA_CHANGE_FRACTION * area.max():
            first = bool(change < 0)
            return first, (
                f"slice 0 is {'basal' if first else 'apical'}: the {name} area "
                f"{'decreases' if first else 'increases'} with the slice index (larger towards the base)"
            )
    return (
        True,
        "base and apex could not be told apart (LV and RV areas constant along the stack): slice 0 taken as basal",
    )


def _slice_levels(labels: np.ndarray, base_first: bool) -> tuple[Level | None, ...]:
    has_blood = (labels == _BLOOD).any(axis=(1, 2))
    has_myo = (labels == _MYO).any(axis=(1, 2))
    cavity = np.flatnonzero(has_blood & has_myo)
    ordered = cavity if base_first else cavity[::-1]
    levels: list[Level | None] = [None] * labels.shape[0]
    thirds = (Level.BASAL, Level.MID, Level.APICAL)
    for rank, k in enumerate(ordered):
        levels[int(k)] = thirds[3 * rank // ordered.size]
    apical_end = int(ordered[-1])
    for k in np.flatnonzero(has_myo & ~has_blood):
        if (k > apical_end) if base_first else (k < apical_end):
            levels[int(k)] = Level.APEX
    return tuple(levels)


def aha_segment(aha_angle_deg: ArrayLike, level: Level | str) -> np.ndarray:
    """AHA segment number(s) of AHA angle(s) on a level.

    The AHA angle is 90 deg anterior, 180 septal (the 2|3 border), 270
    inferior, 0 lateral, increasing counter-clockwise as seen from the apex
    (the angles of the bull's-eye plot).

    Examples
    --------
    >>> aha_segment([90, 150, 210, 270, 330, 30], "basal").tolist()
    [1, 2, 3, 4, 5, 6]
    >>> aha_segment([90, 180, 270, 0], "apical").tolist()
    [13, 14, 15, 16]
    """
    level = Level(level)
    angle = np.mod(np.asarray(aha_angle_deg, dtype=np.float64), 360.0)
    if level is Level.APICAL:
        return 13 + (np.floor(np.mod(angle - 45.0, 360.0) / 90.0).astype(np.int64) % 4)
    if level is Level.APEX:
        raise ValueError("the apical cap (segment 17) has no angular segments")
    first = 1 if level is Level.BASAL else 7
    return first + (np.floor(np.mod(angle - 60.0, 360.0) / 60.0).astype(np.int64) % 6)


# ------------------------------------------------------------------------------------------------ segments


def _aha_rotation(affine: ArrayLike | None, base_first: bool) -> tuple[int, str, str]:
    """+1 or -1 (does the AHA angle grow with the image angle?), what decided it, and a note."""
    display = (
        "the images are taken as the standard short-axis view seen from the apex when shown with row 0 at the "
        "top and column 0 at the left (any in-plane rotation), as scanners display them and as ACDC stores them"
    )
    if affine is None:
        return -1, "display", f"no affine given: {display}"
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape not in ((4, 4), (3, 3)):
        raise ValueError(
            f"affine must be a 4x4 (or 3x3) matrix mapping (col, row, slice) to patient mm, got {matrix.shape}"
        )
    axes = matrix[:3, :3]
    det = float(np.linalg.det(axes))
    if not math.isfinite(det) or abs(det) < 1e-12:
        raise ValueError("affine is singular or not finite: its orientation is undefined")
    directions = np.abs(axes / np.linalg.norm(axes, axis=0))
    if np.all(np.sort(directions, axis=0)[1] < 1e-6):  # one non-zero entry per axis: a scaling, no orientation
        return -1, "display", f"the affine is axis-aligned (voxel sizes only, as in the ACDC files): {display}"
    right_handed = det > 0
    rotation = 1 if right_handed == base_first else -1
    return (
        rotation,
        "affine",
        (
            f"orientation from the affine: the (col, row, slice) grid is {'right' if right_handed else 'left'}-handed "
            f"and slice 0 is {'basal' if base_first else 'apical'}, so the images are seen from the "
            f"{'base' if rotation > 0 else 'apex'} when shown with row 0 at the top"
        ),
    )


def _fallback_septum(
    labels: np.ndarray, slices: Sequence[SliceThickness | None], spacing_rc: tuple[float, float]
) -> tuple[float, str]:
    """Septal direction when no slice has RV insertion points: towards the RV centroid, else the ACDC layout."""
    best: tuple[int, int, float] | None = None
    for k, result in enumerate(slices):
        if result is None:
            continue
        rv_r, rv_c = np.nonzero(labels[k] == _RV)
        if rv_r.size and (best is None or rv_r.size > best[0]):
            angle = math.atan2(
                (rv_r.mean() - result.centre_rc[0]) * spacing_rc[0], (rv_c.mean() - result.centre_rc[1]) * spacing_rc[1]
            )
            best = (int(rv_r.size), k, angle)
    if best is not None:
        return best[2], (
            f"FALLBACK: the RV blood pool touches the myocardium on no slice: the septum is centred towards the "
            f"RV centroid of slice {best[1]} and assumed 120 deg wide"
        )
    return _ACDC_SEPTUM_RAD, (
        "FALLBACK: no RV blood pool on any measured slice: the septum is assumed towards higher row and lower "
        "column indices (the ACDC layout); the segments follow the image axes, not the anatomy"
    )


def _ray_summary(k: int, level: Level | None, result: SliceThickness) -> str | None:
    missing = result.status != RayStatus.OK
    if not missing.any():
        return None
    counts = np.bincount(result.status[missing].astype(np.intp), minlength=len(RayStatus))
    reasons = ", ".join(
        f"{RayStatus(code).name.lower().replace('_', ' ')} {int(n)}" for code, n in enumerate(counts) if n
    )
    where = f"slice {k}" + (f" ({level.value})" if level is not None else "")
    return f"{where}: {int(missing.sum())} of {result.status.size} rays not measured ({reasons})"


def _pooled(parts: list[np.ndarray], reduce: str) -> float:
    values = np.concatenate(parts) if parts else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(values.mean() if reduce == "mean" else values.max())


def aha_segments(
    labels_3d: ArrayLike,
    spacing: Sequence[float],
    n_rays: int = DEFAULT_N_RAYS,
    *,
    origin: SegmentOrigin | str = SegmentOrigin.ANTERIOR_INSERTION,
    affine: ArrayLike | None = None,
    step_px: float = DEFAULT_STEP_PX,
) -> SegmentThickness:
    """Wall thickness of the 16 AHA segments (17-segment model without the apical cap) of one frame.

    Parameters
    ----------
    labels_3d : array_like
        ``(slices, rows, cols)`` ACDC label map of one frame.
    spacing : sequence of float
        Voxel spacing ``(slice, row, col)`` in mm.
    n_rays : int
        Rays per slice (:func:`slice_thickness`).
    origin : SegmentOrigin or str
        Where the segments start: the anterior RV insertion point at the 1|2
        border (default) or the bisector of the insertion points at the 2|3
        border.
    affine : array_like, optional
        ``(4, 4)`` matrix mapping ``(col, row, slice)`` voxel indices to
        patient coordinates (:attr:`opencmr.io.study.Geometry.affine`), used
        only to tell which way round anterior and inferior are (the sign of
        its determinant). Without it, or when it is axis-aligned (ACDC), the
        display convention is used (see the module notes).
    step_px : float
        Sampling step along the rays, in pixels of the smaller spacing.

    Returns
    -------
    SegmentThickness
        Mean and maximum thickness per segment, the slice levels, the
        insertion points used, flags and notes.

    Raises
    ------
    ValueError
        No slice with both LV blood pool and myocardium, label values other
        than 0-3, a wrong shape, spacing or affine.

    Examples
    --------
    Six slices of a ring (cavity radius 20 mm, wall 8 mm, 1 mm pixels) with
    an RV against its low-column side:

    >>> import numpy as np
    >>> rr, cc = np.mgrid[:80, :90]
    >>> r = np.hypot(rr - 40, cc - 50)
    >>> plane = np.where(r < 20, 3, np.where(r < 28, 2, 0))
    >>> plane[(r >= 28) & (np.hypot(rr - 40, cc - 30) < 20)] = 1
    >>> result = aha_segments(np.stack([plane] * 6), (8.0, 1.0, 1.0))
    >>> [level.value for level in result.levels]
    ['basal', 'basal', 'mid', 'mid', 'apical', 'apical']
    >>> round(result.mean_mm[8]), round(result.mean_mm[14]), result.fallback
    (8, 8, False)
    """
    labels = _as_labels(labels_3d, 3, "labels_3d")
    spacing_3 = _spacing(spacing, 3, "spacing")
    spacing_rc = (spacing_3[1], spacing_3[2])
    _check_rays(n_rays, step_px)
    origin = SegmentOrigin(origin)
    cavity = (labels == _BLOOD).any(axis=(1, 2)) & (labels == _MYO).any(axis=(1, 2))
    if not cavity.any():
        raise ValueError(
            "no slice has both LV blood pool (label 3) and LV myocardium (label 2): the LV is empty, nothing to measure"
        )
    base_first, base_note = _base_first(labels)
    rotation, orientation_from, hand_note = _aha_rotation(affine, base_first)
    levels = _slice_levels(labels, base_first)
    notes = [base_note, hand_note]
    n = labels.shape[0]
    slices = tuple(
        slice_thickness(labels[k], spacing_rc, n_rays, step_px=step_px) if cavity[k] else None for k in range(n)
    )
    cavity_radius = np.sqrt((labels == _BLOOD).sum(axis=(1, 2)) * spacing_rc[0] * spacing_rc[1] / math.pi)
    small_cavity = tuple(int(k) for k in np.flatnonzero(cavity & (cavity_radius < MIN_CAVITY_RADIUS_MM)))
    if small_cavity:
        notes.append(
            f"slice(s) {', '.join(map(str, small_cavity))}: LV cavity radius below {MIN_CAVITY_RADIUS_MM:g} mm, "
            "the slice cuts the apical wall tangentially: left out of the segment values and the maximum"
        )
    arcs = [
        rv_insertion_angles(labels[k], spacing_rc, result.centre_rc) if result is not None else None
        for k, result in enumerate(slices)
    ]
    own = [k for k, arc in enumerate(arcs) if arc is not None]
    fallback = not own
    if fallback:
        septum, note = _fallback_septum(labels, slices, spacing_rc)
        notes.append(note)

    two_pi = 2.0 * math.pi
    insertions: list[tuple[float, float] | None] = []
    sources: list[int | None] = []
    ray_segments: list[np.ndarray | None] = []
    aha_angles: list[np.ndarray | None] = []
    borrowed: list[tuple[int, int]] = []
    for k, result in enumerate(slices):
        if result is None:
            insertions.append(None)
            sources.append(None)
            ray_segments.append(None)
            aha_angles.append(None)
            continue
        if fallback:
            source = None
            centre = septum
            anterior, inferior = centre - rotation * math.pi / 3.0, centre + rotation * math.pi / 3.0
        else:
            # nearest slice with insertion points; a tie goes to the basal side
            source = k if arcs[k] is not None else min(own, key=lambda j: (abs(j - k), j if base_first else -j))
            if source != k:
                borrowed.append((k, source))
            start, end = arcs[source]  # type: ignore[misc]
            centre = start + 0.5 * np.mod(end - start, two_pi)
            anterior, inferior = (start, end) if rotation > 0 else (end, start)
        if origin is SegmentOrigin.ANTERIOR_INSERTION and not fallback:
            reference, reference_deg = anterior, 120.0
        else:
            reference, reference_deg = centre, 180.0
        psi = np.mod(reference_deg + rotation * np.degrees(result.angles_rad - reference), 360.0)
        level = levels[k]
        segments = (
            aha_segment(psi, level) if level in (Level.BASAL, Level.MID, Level.APICAL) else np.zeros(psi.size, np.int64)
        )
        insertions.append((float(np.mod(anterior, two_pi)), float(np.mod(inferior, two_pi))))
        sources.append(source)
        ray_segments.append(_read_only(segments))
        aha_angles.append(_read_only(psi))
    if borrowed:
        notes.append(
            "no RV insertion on slice(s) "
            + ", ".join(f"{k} (used slice {j})" for k, j in borrowed)
            + ": insertion points taken from the nearest slice that has them"
        )
    notes.extend(s for k, r in enumerate(slices) if r is not None and (s := _ray_summary(k, levels[k], r)))

    thickness_parts: dict[int, list[np.ndarray]] = {s: [] for s in _SEGMENTS}
    agreed_parts: dict[int, list[np.ndarray]] = {s: [] for s in _SEGMENTS}
    for k, (result, segments) in enumerate(zip(slices, ray_segments)):
        if result is None or segments is None or k in small_cavity:
            continue
        agreed = result.neighbour_agreed_mm
        for s in np.unique(segments[segments > 0]):
            mask = segments == s
            thickness_parts[int(s)].append(result.thickness_mm[mask])
            agreed_parts[int(s)].append(agreed[mask])
    mean_mm = {s: _pooled(thickness_parts[s], "mean") for s in _SEGMENTS}
    max_mm = {s: _pooled(agreed_parts[s], "max") for s in _SEGMENTS}
    ray_counts = {s: int(sum(np.isfinite(p).sum() for p in thickness_parts[s])) for s in _SEGMENTS}
    empty = [s for s in _SEGMENTS if ray_counts[s] == 0]
    if empty:
        notes.append(f"segment(s) {', '.join(map(str, empty))} have no measured ray")
    return SegmentThickness(
        mean_mm=mean_mm,
        max_mm=max_mm,
        ray_counts=ray_counts,
        levels=levels,
        base_first=base_first,
        aha_rotation=rotation,
        orientation_from=orientation_from,
        origin=origin,
        slices=slices,
        ray_segments=tuple(ray_segments),
        aha_angles_deg=tuple(aha_angles),
        insertion_angles_rad=tuple(insertions),
        insertion_source=tuple(sources),
        small_cavity_slices=small_cavity,
        fallback=fallback,
        notes=tuple(notes),
    )


def max_wall_thickness(
    labels_3d: ArrayLike,
    spacing: Sequence[float],
    n_rays: int = DEFAULT_N_RAYS,
    *,
    affine: ArrayLike | None = None,
    step_px: float = DEFAULT_STEP_PX,
) -> MaxWallThickness:
    """Largest LV wall thickness (mm) of a frame, robust to one noisy ray, against the 15 mm HCM criterion.

    The largest :func:`neighbour_agreed` ray thickness over every slice with
    LV blood pool and myocardium (except nearly closed apical cavities, see
    :data:`MIN_CAVITY_RADIUS_MM`); ``meets_threshold`` is ``>=``
    :data:`HYPERTROPHY_THRESHOLD_MM` (ESC 2014, for end-diastolic images).
    Already computed by :func:`aha_segments`:
    :meth:`SegmentThickness.max_wall_thickness` gives the same without
    measuring again.

    Parameters
    ----------
    labels_3d, spacing, n_rays, affine, step_px
        As for :func:`aha_segments` (``affine`` only affects the segment reported).

    Raises
    ------
    ValueError
        As for :func:`aha_segments`.
    """
    return aha_segments(labels_3d, spacing, n_rays, affine=affine, step_px=step_px).max_wall_thickness()


def segment_thickening(
    ed_labels: ArrayLike,
    es_labels: ArrayLike,
    spacing: Sequence[float],
    n_rays: int = DEFAULT_N_RAYS,
    *,
    origin: SegmentOrigin | str = SegmentOrigin.ANTERIOR_INSERTION,
    affine: ArrayLike | None = None,
    step_px: float = DEFAULT_STEP_PX,
) -> SegmentThickening:
    """Systolic wall thickening per AHA segment, ``(ES - ED) / ED x 100 %`` of the segment means.

    Each phase is segmented on its own (levels and insertion points), since
    the base descends towards the apex in systole.

    Parameters
    ----------
    ed_labels, es_labels : array_like
        ``(slices, rows, cols)`` label maps of end-diastole and end-systole,
        on the same grid.
    spacing, n_rays, origin, affine, step_px
        As for :func:`aha_segments`.

    Raises
    ------
    ValueError
        The two label maps differ in shape, or as for :func:`aha_segments`.
    """
    ed_shape, es_shape = np.shape(ed_labels), np.shape(es_labels)
    if ed_shape != es_shape:
        raise ValueError(f"ED and ES label maps must share one grid, got shapes {ed_shape} and {es_shape}")
    options = {"origin": origin, "affine": affine, "step_px": step_px}
    ed = aha_segments(ed_labels, spacing, n_rays, **options)  # type: ignore[arg-type]
    es = aha_segments(es_labels, spacing, n_rays, **options)  # type: ignore[arg-type]
    percent = {}
    for s in _SEGMENTS:
        before, after = ed.mean_mm[s], es.mean_mm[s]
        ok = math.isfinite(before) and math.isfinite(after) and before > 0
        percent[s] = (after - before) / before * 100.0 if ok else math.nan
    notes = []
    if ed.base_first != es.base_first:
        notes.append("base and apex were decided differently at ED and at ES: check the slice order")
    for name, result in (("ED", ed), ("ES", es)):
        if result.fallback:
            notes.append(f"{name}: segments placed by the fallback rule (no RV insertion found)")
    return SegmentThickening(percent=percent, ed=ed, es=es, notes=tuple(notes))
