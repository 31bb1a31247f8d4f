"""Image perturbations at graded severities, for testing segmentation and QC robustness.

Each perturbation is a small deterministic transform of a :class:`~opencmr.io.study.CineStudy`
(``perturb_*`` functions below, identity at a zero parameter) plus, where it is random,
a sampler that draws its random part (noise realisation, bias-field coefficients,
rotation sign, which end of the stack is cut) from a :class:`numpy.random.Generator`.
:func:`perturb` picks the parameter from the severity level and runs both.

The returned study's labels stay valid ground truth for the perturbed image:
intensity perturbations leave them untouched, geometric ones (rotation, flips,
partial coverage) move them with the image, nearest neighbour. The image stays
finite float32, the labels integer.

Severity parameters (:data:`PERTURBATIONS`, ``levels`` of each entry):

==================  ===================================================  ======  ========  ======
name                parameter                                            mild    moderate  severe
==================  ===================================================  ======  ========  ======
noise               Gaussian sigma / 99th-percentile intensity           0.02    0.05      0.10
rician_noise        Rician sigma (two channels) / 99th percentile        0.02    0.05      0.10
bias_field          max multiplicative deviation of a smooth field        0.10    0.25      0.50
gamma               gamma exponent on min-max normalised intensity       1.25    1.6       2.2
intensity_scale     ``image * a + b`` (raw scanner values), (a, b)       (0.5,0) (10,100)  (1000,300)
blur                in-plane Gaussian sigma, mm                          1.0     2.0       3.5
low_resolution      in-plane downsampling factor (then back to grid)     1.5     2.0       3.0
thick_slices        slices averaged (moving window along the stack)      2       3         5
rotation            in-plane rotation, degrees (sign random)             10      25        45
flip                array axes flipped                                   cols    rows      both
partial_coverage    fraction of slices dropped from one end (random)     0.1     0.2       0.35
ghosting            ghost amplitude (two copies shifted +-rows/4)        0.1     0.25      0.4
==================  ===================================================  ======  ========  ======
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage

from opencmr.io.study import CineStudy, Geometry, LabelMap

__all__ = [
    "LEVELS",
    "PERTURBATIONS",
    "Level",
    "Perturbation",
    "perturb",
    "perturb_bias_field",
    "perturb_blur",
    "perturb_flip",
    "perturb_gamma",
    "perturb_ghosting",
    "perturb_intensity",
    "perturb_low_resolution",
    "perturb_noise",
    "perturb_partial_coverage",
    "perturb_rotation",
    "perturb_thick_slices",
    "sample_bias_field",
]


class Level(str, Enum):
    """Severity of a perturbation."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


LEVELS: tuple[str, ...] = tuple(level.value for level in Level)


# ---------------------------------------------------------------------------------------------- helpers


def _replace(
    study: CineStudy,
    image: np.ndarray,
    labels: np.ndarray | None = None,
    geometry: Geometry | None = None,
    note: str | None = None,
) -> CineStudy:
    """A new study with ``image`` (and optionally moved labels / a new grid); everything else kept."""
    geometry = geometry or study.geometry
    label_map = study.labels
    if label_map is not None and (labels is not None or geometry is not study.geometry):
        data = label_map.data if labels is None else labels
        label_map = LabelMap(np.ascontiguousarray(data).astype(np.uint8), geometry, label_map.frame_numbers)
    metadata = study.metadata
    if note:
        metadata = dataclasses.replace(metadata, notes=(*metadata.notes, note))
    image = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return dataclasses.replace(study, image=image, geometry=geometry, labels=label_map, metadata=metadata)


def _p99(image: np.ndarray) -> float:
    value = float(np.percentile(image, 99))
    return value if value > 0 else float(np.max(np.abs(image))) or 1.0


def _labels(study: CineStudy) -> np.ndarray | None:
    return None if study.labels is None else np.asarray(study.labels.data)


# ---------------------------------------------------------------------------------------------- intensity


def perturb_noise(
    study: CineStudy, sigma_fraction: float, rng: np.random.Generator, *, rician: bool = False
) -> CineStudy:
    """Add Gaussian noise (or Rician: magnitude of two noisy channels) of sigma ``sigma_fraction * p99``."""
    image = np.asarray(study.image, dtype=np.float64)
    sigma = sigma_fraction * _p99(image)
    real = image + rng.normal(0.0, sigma, image.shape) if sigma > 0 else image
    if rician:
        imaginary = rng.normal(0.0, sigma, image.shape) if sigma > 0 else 0.0
        out = np.sqrt(real**2 + imaginary**2)
    else:
        out = real
    return _replace(study, out, note=f"{'rician' if rician else 'gaussian'} noise sigma {sigma_fraction:g} x p99")


def sample_bias_field(shape: tuple[int, int, int], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field on ``(slices, rows, cols)`` with values in ``[1/(1+a), 1+a]``.

    ``exp`` of a random second-order polynomial in normalised coordinates, scaled so
    that the largest log-deviation is ``log(1 + amplitude)``.
    """
    z, y, x = (np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in shape)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    terms = [xx, yy, zz, xx * yy, xx * zz, yy * zz, xx**2, yy**2, zz**2]
    coefficients = rng.normal(size=len(terms))
    log_field = sum(c * t for c, t in zip(coefficients, terms, strict=True))
    peak = float(np.max(np.abs(log_field)))
    if amplitude <= 0 or peak == 0:
        return np.ones(shape)
    return np.exp(log_field / peak * np.log1p(amplitude))


def perturb_bias_field(study: CineStudy, field: np.ndarray) -> CineStudy:
    """Multiply every frame by ``field`` ``(slices, rows, cols)`` (see :func:`sample_bias_field`)."""
    return _replace(study, np.asarray(study.image) * field[None], note="bias field")


def perturb_gamma(study: CineStudy, gamma: float) -> CineStudy:
    """``lo + (hi - lo) * ((image - lo) / (hi - lo)) ** gamma`` with the image's min and max."""
    image = np.asarray(study.image, dtype=np.float64)
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return _replace(study, image)
    out = lo + (hi - lo) * ((image - lo) / (hi - lo)) ** gamma
    return _replace(study, out, note=f"gamma {gamma:g}")


def perturb_intensity(study: CineStudy, scale: float, offset: float) -> CineStudy:
    """``image * scale + offset`` (raw scanner units); labels unchanged."""
    return _replace(
        study, np.asarray(study.image, np.float64) * scale + offset, note=f"intensity x{scale:g} + {offset:g}"
    )


def perturb_ghosting(study: CineStudy, amplitude: float, *, axis: int = 2, shift: int | None = None) -> CineStudy:
    """Add two copies of the image shifted by ``+-shift`` (default a quarter of the axis) along the
    phase-encode ``axis`` (2 rows, 3 cols of the ``(frames, slices, rows, cols)`` array), each at
    ``amplitude / 2``, wrapping round like aliased motion ghosts."""
    image = np.asarray(study.image, np.float64)
    shift = image.shape[axis] // 4 if shift is None else shift
    ghost = 0.5 * amplitude * (np.roll(image, shift, axis=axis) + np.roll(image, -shift, axis=axis))
    return _replace(study, image + ghost, note=f"ghosting {amplitude:g}")


# ---------------------------------------------------------------------------------------------- resolution


def perturb_blur(study: CineStudy, sigma_mm: float) -> CineStudy:
    """In-plane Gaussian blur of standard deviation ``sigma_mm``."""
    row_mm, col_mm = study.geometry.pixel_spacing_mm
    sigma = (0.0, 0.0, sigma_mm / row_mm, sigma_mm / col_mm)
    return _replace(
        study, ndimage.gaussian_filter(np.asarray(study.image, np.float64), sigma), note=f"blur {sigma_mm:g} mm"
    )


def _resize_in_plane(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Linear resampling of the last two axes to ``shape``, corners aligned."""
    rows = np.linspace(0.0, image.shape[-2] - 1.0, shape[0])
    cols = np.linspace(0.0, image.shape[-1] - 1.0, shape[1])
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    flat = image.reshape(-1, *image.shape[-2:])
    out = np.stack([ndimage.map_coordinates(plane, [rr, cc], order=1, mode="nearest") for plane in flat])
    return out.reshape(*image.shape[:-2], *shape)


def perturb_low_resolution(study: CineStudy, factor: float) -> CineStudy:
    """Downsample in-plane by ``factor`` (anti-aliased) and interpolate back to the original grid."""
    image = np.asarray(study.image, np.float64)
    if factor <= 1.0:
        return _replace(study, image)
    rows, cols = image.shape[-2:]
    small_shape = (max(2, round(rows / factor)), max(2, round(cols / factor)))
    smoothed = ndimage.gaussian_filter(image, (0, 0, (factor - 1) / 2, (factor - 1) / 2))
    out = _resize_in_plane(_resize_in_plane(smoothed, small_shape), (rows, cols))
    return _replace(study, out, note=f"in-plane resolution / {factor:g}")


def perturb_thick_slices(study: CineStudy, n_slices: int) -> CineStudy:
    """Average each slice with its neighbours (moving window of ``n_slices`` along the stack)."""
    image = np.asarray(study.image, np.float64)
    if n_slices <= 1:
        return _replace(study, image)
    out = ndimage.uniform_filter1d(image, size=int(n_slices), axis=1, mode="nearest")
    return _replace(study, out, note=f"{n_slices} slices averaged")


# ---------------------------------------------------------------------------------------------- geometric


def perturb_rotation(study: CineStudy, degrees: float) -> CineStudy:
    """Rotate every slice in-plane by ``degrees`` about the image centre (labels nearest neighbour).

    The grid (affine) is kept: the anatomy moves within it. Outside the original
    field of view the image takes its minimum and the labels background.
    """
    image = np.asarray(study.image, np.float64)
    labels = _labels(study)
    if degrees % 360 == 0:
        return _replace(study, image, labels)
    rotated = ndimage.rotate(
        image, degrees, axes=(3, 2), reshape=False, order=1, mode="constant", cval=float(image.min())
    )
    moved = None
    if labels is not None:
        moved = ndimage.rotate(labels, degrees, axes=(3, 2), reshape=False, order=0, mode="constant", cval=0)
    return _replace(study, rotated, moved, note=f"rotated {degrees:g} degrees")


def perturb_flip(study: CineStudy, axes: tuple[str, ...]) -> CineStudy:
    """Flip the array along ``axes`` (``"rows"``, ``"cols"``), labels too; the affine is kept
    (as a wrong orientation header would)."""
    index = {"rows": 2, "cols": 3}
    unknown = set(axes) - set(index)
    if unknown:
        raise ValueError(f"unknown flip axes {sorted(unknown)}: use 'rows' and/or 'cols'")
    dims = tuple(index[a] for a in axes)
    image = np.asarray(study.image)
    labels = _labels(study)
    if not dims:
        return _replace(study, image, labels)
    return _replace(
        study,
        np.flip(image, dims),
        None if labels is None else np.flip(labels, dims),
        note=f"flipped {'+'.join(axes)}",
    )


def basal_first(study: CineStudy) -> bool:
    """Whether slice 0 is basal: from the labels when there are some, else the ACDC order (True)."""
    if study.labels is None:
        return True
    from opencmr.qc.checks import basal_end_first

    first = (
        study.metadata.ed_frame
        if study.metadata.ed_frame in study.labels.frame_numbers
        else study.labels.frame_numbers[0]
    )
    return basal_end_first(study.labels.frame(first))


def perturb_partial_coverage(study: CineStudy, n_drop: int, end: str) -> CineStudy:
    """Drop ``n_drop`` slices from the ``"base"`` or ``"apex"`` end of the stack (image and labels).

    The affine's origin moves with the first kept slice, so the remaining slices
    keep their positions in patient space. At least one slice is kept.
    """
    if end not in ("base", "apex"):
        raise ValueError(f"end must be 'base' or 'apex', got {end!r}")
    n_slices = study.n_slices
    n_drop = int(min(max(n_drop, 0), n_slices - 1))
    if n_drop == 0:
        return _replace(study, np.asarray(study.image), _labels(study))
    from_start = (end == "base") == basal_first(study)
    keep = slice(n_drop, n_slices) if from_start else slice(0, n_slices - n_drop)
    affine = np.array(study.geometry.affine)
    affine[:3, 3] += keep.start * affine[:3, 2]
    geometry = Geometry(affine, (n_slices - n_drop, *study.geometry.shape[1:]), study.geometry.slice_thickness_mm)
    labels = _labels(study)
    return _replace(
        study,
        np.asarray(study.image)[:, keep],
        None if labels is None else labels[:, keep],
        geometry,
        note=f"{n_drop} {end} slices dropped",
    )


# ---------------------------------------------------------------------------------------------- registry

Apply = Callable[[CineStudy, Any, np.random.Generator], CineStudy]


@dataclass(frozen=True)
class Perturbation:
    """One named perturbation: what its level sets, the value at each level and how to apply it."""

    name: str
    parameter: str
    levels: Mapping[Level, Any]
    apply: Apply
    geometric: bool = False


def _rotation(study: CineStudy, degrees: float, rng: np.random.Generator) -> CineStudy:
    return perturb_rotation(study, degrees * (1 if rng.random() < 0.5 else -1))


def _partial(study: CineStudy, fraction: float, rng: np.random.Generator) -> CineStudy:
    end = "base" if rng.random() < 0.5 else "apex"
    return perturb_partial_coverage(study, max(1, round(fraction * study.n_slices)), end)


def _bias(study: CineStudy, amplitude: float, rng: np.random.Generator) -> CineStudy:
    return perturb_bias_field(study, sample_bias_field(study.geometry.shape, amplitude, rng))


def _levels(mild: Any, moderate: Any, severe: Any) -> Mapping[Level, Any]:
    return MappingProxyType({Level.MILD: mild, Level.MODERATE: moderate, Level.SEVERE: severe})


_ALL = (
    Perturbation(
        "noise", "Gaussian sigma / p99 intensity", _levels(0.02, 0.05, 0.10), lambda s, v, r: perturb_noise(s, v, r)
    ),
    Perturbation(
        "rician_noise",
        "Rician sigma / p99 intensity",
        _levels(0.02, 0.05, 0.10),
        lambda s, v, r: perturb_noise(s, v, r, rician=True),
    ),
    Perturbation("bias_field", "max multiplicative deviation", _levels(0.10, 0.25, 0.50), _bias),
    Perturbation("gamma", "gamma exponent", _levels(1.25, 1.6, 2.2), lambda s, v, r: perturb_gamma(s, v)),
    Perturbation(
        "intensity_scale",
        "(scale, offset)",
        _levels((0.5, 0.0), (10.0, 100.0), (1000.0, 300.0)),
        lambda s, v, r: perturb_intensity(s, *v),
    ),
    Perturbation("blur", "in-plane Gaussian sigma, mm", _levels(1.0, 2.0, 3.5), lambda s, v, r: perturb_blur(s, v)),
    Perturbation(
        "low_resolution",
        "in-plane downsampling factor",
        _levels(1.5, 2.0, 3.0),
        lambda s, v, r: perturb_low_resolution(s, v),
    ),
    Perturbation("thick_slices", "slices averaged", _levels(2, 3, 5), lambda s, v, r: perturb_thick_slices(s, v)),
    Perturbation("rotation", "degrees (random sign)", _levels(10.0, 25.0, 45.0), _rotation, geometric=True),
    Perturbation(
        "flip",
        "axes flipped",
        _levels(("cols",), ("rows",), ("rows", "cols")),
        lambda s, v, r: perturb_flip(s, v),
        geometric=True,
    ),
    Perturbation(
        "partial_coverage",
        "fraction of slices dropped (random end)",
        _levels(0.10, 0.20, 0.35),
        _partial,
        geometric=True,
    ),
    Perturbation("ghosting", "ghost amplitude", _levels(0.10, 0.25, 0.40), lambda s, v, r: perturb_ghosting(s, v)),
)

PERTURBATIONS: Mapping[str, Perturbation] = MappingProxyType({p.name: p for p in _ALL})
"""Every perturbation by name."""


def perturb(study: CineStudy, name: str, level: str | Level, rng: np.random.Generator | None = None) -> CineStudy:
    """Apply perturbation ``name`` at severity ``level`` (``"mild"``, ``"moderate"``, ``"severe"``).

    Parameters
    ----------
    study : CineStudy
        Any study; its labels (if any) are carried along as ground truth.
    name : str
        A key of :data:`PERTURBATIONS`.
    level : str or Level
        Severity; the parameter at each level is in the module docstring.
    rng : numpy.random.Generator, optional
        Source of the random parts (a fresh ``default_rng(0)`` if omitted).

    Examples
    --------
    >>> from opencmr.phantom import PhantomConfig, make_phantom
    >>> study = make_phantom(PhantomConfig(n_frames=2, n_slices=6, matrix=(64, 56), seed=1)).study
    >>> perturb(study, "partial_coverage", "severe", np.random.default_rng(0)).n_slices
    4
    """
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; choose from {sorted(PERTURBATIONS)}")
    try:
        level = Level(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; choose from {list(LEVELS)}") from None
    entry = PERTURBATIONS[name]
    return entry.apply(study, entry.levels[level], rng if rng is not None else np.random.default_rng(0))
