"""Per-voxel uncertainty of a segmentation, and scores per structure, slice, frame and study.

:func:`opencmr.segment.segment_study` with ``return_uncertainty=True`` gives
two maps per frame on the study's grid (:class:`UncertaintyMaps`):

* **entropy**, the predictive entropy of the softmax probabilities averaged
  over the test-time views, divided by log(number of classes) so that it lies
  in [0, 1]: 0 where one class has all the probability, 1 where the four
  classes are equally likely. 0.5 is an even split between two classes.
* **disagreement** between the test-time views (flips): the fraction of views
  whose argmax differs from the consensus label (the argmax of the mean),
  the vote-count form of the test-time augmentation uncertainty of Wang et al.
  (2019). Always 0 without test-time augmentation.

Both are computed on the model's grid (disagreement) or from its resampled
probabilities (entropy) and resampled linearly to the study's grid, as the
labels are; they describe the network's output before post-processing, so a
blob the post-processing removed can still show as uncertain.

:func:`uncertainty_scores` summarises the entropy where it matters: over each
structure's predicted voxels dilated in-plane by one pixel, so that the
boundary, where errors happen, is included on both sides. A well-segmented
study has low entropy inside its structures and a thin ring of higher entropy
along their edges; a high score means wide uncertain borders or uncertain
structures (artefacts, poor image quality, out-of-distribution images).

References
----------
G. Wang, W. Li, M. Aertsen, J. Deprest, S. Ourselin, T. Vercauteren,
"Aleatoric uncertainty estimation with test-time augmentation for medical
image segmentation with convolutional neural networks", Neurocomputing 338,
2019, doi:10.1016/j.neucom.2019.01.103.

R. Mehta et al., "QU-BraTS: MICCAI BraTS 2020 challenge on quantifying
uncertainty in brain tumor segmentation", MELBA 2022 (entropy of the mean
softmax as the voxel-wise uncertainty, scored with uncertainty thresholds).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from opencmr.io._atomic import atomic_output
from opencmr.io.nifti import _nifti_image
from opencmr.io.study import Geometry, LabelMap
from opencmr.labels import STRUCTURES

__all__ = [
    "UNCERTAIN_ENTROPY",
    "UncertaintyMaps",
    "UncertaintyScores",
    "boundary_region",
    "uncertainty_scores",
    "write_uncertainty_nifti",
]

#: Default normalised entropy above which a voxel counts as uncertain. 0.3 is
#: the entropy of a two-class split of about 85/15 (the runner-up class has at
#: least 14.6 % of the probability when only two classes compete); an even
#: two-class split is 0.5.
UNCERTAIN_ENTROPY = 0.3


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class UncertaintyMaps:
    """Per-voxel uncertainty of a segmentation, on the study's grid.

    Attributes
    ----------
    entropy : numpy.ndarray
        float32 ``(frames, slices, rows, cols)`` in [0, 1]: entropy of the
        mean softmax over the test-time views, divided by log(classes).
    disagreement : numpy.ndarray
        float32, same shape, in [0, 1]: fraction of test-time views whose
        argmax differs from the consensus (linearly resampled, so fractional
        values between the multiples of ``1 / n_views`` occur at edges).
    geometry : Geometry
        The study's grid.
    frame_numbers : tuple of int
        Acquisition frame of each volume (as the :class:`LabelMap` returned with it).
    n_views : int
        Number of test-time views (4 flips, or 1 without test-time augmentation).
    overlap : numpy.ndarray, optional
        float64 ``(frames, 3, 3)``: for each frame and structure (in
        :data:`opencmr.labels.STRUCTURES` order: RV, MYO, LV) the sum of the
        structure's probability inside its final label, the sum of its
        probability, and the label's voxel count -- what the soft Dice between
        the probabilities and the labels (:attr:`UncertaintyScores.expected_dice`)
        is made of. None when the maps were made without it.
    """

    entropy: np.ndarray
    disagreement: np.ndarray
    geometry: Geometry
    frame_numbers: tuple[int, ...]
    n_views: int = 1
    overlap: np.ndarray | None = None

    def __post_init__(self) -> None:
        frames = tuple(int(f) for f in self.frame_numbers)
        for name in ("entropy", "disagreement"):
            data = np.asarray(getattr(self, name), dtype=np.float32)
            if data.ndim != 4 or data.shape[1:] != self.geometry.shape or data.shape[0] != len(frames):
                raise ValueError(
                    f"{name} must be (frames, slices, rows, cols) = ({len(frames)}, {', '.join(map(str, self.geometry.shape))}), "
                    f"got {data.shape}"
                )
            object.__setattr__(self, name, _read_only(data))
        if self.n_views < 1:
            raise ValueError(f"n_views must be at least 1, got {self.n_views}")
        if self.overlap is not None:
            overlap = np.asarray(self.overlap, dtype=np.float64)
            if overlap.shape != (len(frames), len(STRUCTURES), 3):
                raise ValueError(f"overlap must be ({len(frames)}, {len(STRUCTURES)}, 3), got {overlap.shape}")
            object.__setattr__(self, "overlap", _read_only(overlap))
        object.__setattr__(self, "frame_numbers", frames)

    def frame(self, frame_number: int) -> np.ndarray:
        """The ``(slices, rows, cols)`` entropy map of one acquisition frame."""
        try:
            return self.entropy[self.frame_numbers.index(frame_number)]
        except ValueError:
            raise KeyError(f"frame {frame_number} has no uncertainty map (frames: {self.frame_numbers})") from None


@dataclass(frozen=True, eq=False)
class UncertaintyScores:
    """Mean normalised entropy over the heart and over each structure's boundary region.

    A structure's region is its predicted voxels dilated in-plane by one pixel
    (3 x 3); the heart region is the union of the three. Means are over voxels
    (a slice with more of the structure weighs more in the frame and study
    scores). Where a region is empty (a structure absent from a slice, frame or
    study) the score is NaN, ``None`` in :meth:`to_dict`.

    Attributes
    ----------
    frame_numbers : tuple of int
    threshold : float
        Normalised entropy above which a voxel counts as uncertain.
    n_views : int
        Test-time views behind the maps.
    study, disagreement, uncertain_fraction : float
        Mean entropy, mean view disagreement and fraction of voxels above
        ``threshold`` over the heart region of the whole study.
    frame : numpy.ndarray
        ``(frames,)`` mean entropy over the heart region of each frame.
    slice : numpy.ndarray
        ``(frames, slices)`` mean entropy over the heart region of each slice.
    structures : mapping of str to float
        ``{"lv", "myo", "rv"}``: mean entropy over the structure's region in the study.
    structure_uncertain_fraction : mapping of str to float
        Fraction of the structure's region above ``threshold``.
    structure_frame, structure_slice : mapping of str to numpy.ndarray
        The structure's mean entropy per frame ``(frames,)`` and per slice ``(frames, slices)``.
    expected_dice : mapping of str to float
        ``{"lv", "myo", "rv"}``: the soft Dice between the structure's
        probability and its final label over the study,
        ``2 sum(p * label) / (sum(p) + sum(label))`` -- the Dice the
        segmentation would have if the network's probabilities were
        calibrated (the label drawn voxel by voxel from them). Networks are
        overconfident, so it overestimates the true Dice, but it falls with
        image quality and is a ranking of studies by likely error
        (Jungo and Reyes, MICCAI 2019; Roy et al., NeuroImage 2019). Empty when
        the maps carry no overlap sums.
    expected_dice_mean : float
        Mean of ``expected_dice`` (NaN when empty or a structure is absent).
    """

    frame_numbers: tuple[int, ...]
    threshold: float
    n_views: int
    study: float
    disagreement: float
    uncertain_fraction: float
    frame: np.ndarray
    slice: np.ndarray
    structures: Mapping[str, float]
    structure_uncertain_fraction: Mapping[str, float]
    structure_frame: Mapping[str, np.ndarray]
    structure_slice: Mapping[str, np.ndarray]
    expected_dice: Mapping[str, float] = field(default_factory=dict)

    @property
    def expected_dice_mean(self) -> float:
        values = list(self.expected_dice.values())
        return float(np.mean(values)) if values else math.nan

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (NaN as ``None``), for ``qc.json``."""
        return {
            "measure": "normalised predictive entropy (0 certain, 1 uniform over classes)",
            "threshold": self.threshold,
            "n_views": self.n_views,
            "frame_numbers": list(self.frame_numbers),
            "study": {
                "entropy": _json(self.study),
                "disagreement": _json(self.disagreement),
                "uncertain_fraction": _json(self.uncertain_fraction),
            },
            "frames": _json(self.frame),
            "slices": _json(self.slice),
            "structures": {
                name: {
                    "entropy": _json(self.structures[name]),
                    "uncertain_fraction": _json(self.structure_uncertain_fraction[name]),
                    "frames": _json(self.structure_frame[name]),
                    "slices": _json(self.structure_slice[name]),
                }
                for name in self.structures
            },
            "expected_dice": {
                "measure": "soft Dice between the mean test-time probabilities and the final labels (overestimates Dice)",
                "mean": _json(self.expected_dice_mean),
                "structures": {name: _json(value) for name, value in self.expected_dice.items()},
            }
            if self.expected_dice
            else None,
        }


def _json(value: float | np.ndarray) -> object:
    if isinstance(value, np.ndarray):
        return [_json(v) for v in value]
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def boundary_region(labels: np.ndarray, value: int) -> np.ndarray:
    """Voxels of ``value`` in ``labels`` ``(..., rows, cols)`` dilated in-plane by one pixel (3 x 3).

    Examples
    --------
    >>> labels = np.zeros((2, 5, 5), np.uint8)
    >>> labels[0, 2, 2] = 3
    >>> boundary_region(labels, 3).sum(axis=(1, 2)).tolist()  # a 3 x 3 square, not spilling into slice 1
    [9, 0]
    """
    footprint = np.zeros((3,) * labels.ndim, bool)
    footprint[(1,) * (labels.ndim - 2)] = True  # in-plane only: slices are 5-10 mm apart
    return ndimage.binary_dilation(labels == value, structure=footprint)


def uncertainty_scores(
    labels: LabelMap, maps: UncertaintyMaps, threshold: float = UNCERTAIN_ENTROPY
) -> UncertaintyScores:
    """Summarise the entropy map over the heart and each structure's boundary region.

    Parameters
    ----------
    labels : LabelMap
        The segmentation the maps came with (same grid and frames).
    maps : UncertaintyMaps
    threshold : float
        Normalised entropy above which a voxel counts as uncertain (default
        :data:`UNCERTAIN_ENTROPY`).

    Returns
    -------
    UncertaintyScores

    Raises
    ------
    ValueError
        The labels and maps are on different grids or frames.
    """
    if labels.frame_numbers != maps.frame_numbers:
        raise ValueError(f"labels have frames {labels.frame_numbers}, maps {maps.frame_numbers}")
    if labels.data.shape != maps.entropy.shape or not labels.geometry.same_grid(maps.geometry):
        raise ValueError("labels and uncertainty maps are on different grids")
    entropy = maps.entropy.astype(np.float64)
    uncertain = entropy > threshold
    heart = np.zeros(labels.data.shape, bool)
    structures, fractions, per_frame, per_slice = {}, {}, {}, {}
    for label in STRUCTURES:
        region = boundary_region(labels.data, int(label))
        heart |= region
        sums, counts = (entropy * region).sum((2, 3)), region.sum((2, 3))
        name = label.abbreviation
        per_slice[name] = _read_only(_ratio(sums, counts))
        per_frame[name] = _read_only(_ratio(sums.sum(1), counts.sum(1)))
        structures[name] = float(_ratio(sums.sum(), counts.sum()))
        fractions[name] = float(_ratio((uncertain & region).sum(), counts.sum()))
    sums, counts = (entropy * heart).sum((2, 3)), heart.sum((2, 3))
    order = ("lv", "myo", "rv")
    expected = {}
    if maps.overlap is not None:
        totals = maps.overlap.sum(axis=0)  # over frames: (structure, 3)
        for k, label in enumerate(STRUCTURES):
            inside, mass, count = totals[k]
            expected[label.abbreviation] = float(_ratio(2 * inside, mass + count))
        expected = {k: expected[k] for k in order}
    return UncertaintyScores(
        frame_numbers=labels.frame_numbers,
        threshold=float(threshold),
        n_views=maps.n_views,
        study=float(_ratio(sums.sum(), counts.sum())),
        disagreement=float(_ratio((maps.disagreement * heart).sum(dtype=np.float64), counts.sum())),
        uncertain_fraction=float(_ratio((uncertain & heart).sum(), counts.sum())),
        frame=_read_only(_ratio(sums.sum(1), counts.sum(1))),
        slice=_read_only(_ratio(sums, counts)),
        structures={k: structures[k] for k in order},
        structure_uncertain_fraction={k: fractions[k] for k in order},
        structure_frame={k: per_frame[k] for k in order},
        structure_slice={k: per_slice[k] for k in order},
        expected_dice=expected,
    )


def write_uncertainty_nifti(maps: UncertaintyMaps, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write the entropy map as a float32 4D NIfTI ``(x, y, slice, frame)`` on the study's affine.

    Always 4D (a single frame gives ``(x, y, slice, 1)``), written atomically
    (:func:`opencmr.io._atomic.atomic_output`): a failure leaves no partial file.

    Raises
    ------
    OutputError
        ``path`` exists (and ``overwrite`` is False) or cannot be written.
    """
    if not isinstance(maps, UncertaintyMaps):
        raise TypeError(f"expected UncertaintyMaps, got {type(maps).__name__}")
    data = np.ascontiguousarray(np.transpose(maps.entropy, (3, 2, 1, 0)), dtype=np.float32)
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        nib.save(_nifti_image(data, maps.geometry.affine), str(tmp))
    return target
