"""Overlap and surface-distance metrics of binary masks, in millimetres.

Masks are boolean arrays, for cine MRI ``(slices, rows, cols)``, and
``spacing`` is the voxel spacing in mm along the same axes. Distances are
computed in 3D with that spacing (never per slice, never in voxels), as in
the ACDC challenge (Bernard et al. 2018): with 10 mm slices, a contour one
slice too far is a 10 mm error.

Surface distances follow ``medpy.metric.binary``: the surface of a mask is
the mask minus its binary erosion with a connectivity-1 structuring element
(face neighbours; voxels outside the array count as background), and the
distance of each surface voxel of one mask to the surface of the other is
read from :func:`scipy.ndimage.distance_transform_edt` with ``sampling=spacing``.

* Hausdorff distance: the larger of the two directed maxima (``medpy hd``);
* HD95: the 95th percentile of both directed distance sets stacked together
  (``medpy hd95``), not the larger of two directed 95th percentiles;
* ASSD: the mean of the two directed mean distances (``medpy assd``).

Empty masks
-----------
The conventions are explicit and :func:`mask_status` tells which applies:

==============================  ===============  ============================
case (:class:`MaskStatus`)      Dice             HD, HD95, ASSD
==============================  ===============  ============================
both masks empty (BOTH_EMPTY)   1.0              0.0 mm
only one empty (PRED_/GT_EMPTY) 0.0              NaN (undefined)
==============================  ===============  ============================

Both-empty values are the constants :data:`BOTH_EMPTY_DICE` and
:data:`BOTH_EMPTY_DISTANCE_MM` and can be changed per call (``both_empty=``),
for example to NaN to leave such cases out of averages. medpy itself returns
a Dice of 0 for two empty masks and refuses surface distances of an empty
mask; MONAI returns NaN for an empty ground truth. NaN distances are never
replaced by a made-up penalty here: report how many there are (Maier-Hein et
al. 2024).

References
----------
O. Bernard et al., "Deep learning techniques for automatic MRI cardiac
multi-structures segmentation and diagnosis: is the problem solved?", IEEE TMI
37(11), 2018, doi:10.1109/TMI.2018.2837502.
O. Maier, medpy, ``medpy/metric/binary.py`` (``dc``, ``hd``, ``hd95``,
``assd``), https://github.com/loli/medpy.
L. Maier-Hein et al., "Metrics reloaded: recommendations for image analysis
validation", Nature Methods 21, 2024, doi:10.1038/s41592-023-02151-z.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from scipy import ndimage

__all__ = [
    "BOTH_EMPTY_DICE",
    "BOTH_EMPTY_DISTANCE_MM",
    "MaskStatus",
    "assd",
    "dice",
    "distance_metrics",
    "hausdorff",
    "hd95",
    "mask_status",
    "surface_distances",
]

#: Dice of two empty masks (perfect agreement that the structure is absent).
BOTH_EMPTY_DICE: float = 1.0

#: HD, HD95 and ASSD of two empty masks, in mm.
BOTH_EMPTY_DISTANCE_MM: float = 0.0


class MaskStatus(StrEnum):
    """Which of the two masks are empty, i.e. which convention a metric followed."""

    OK = "ok"
    """Both masks have voxels: every metric is computed."""
    BOTH_EMPTY = "both_empty"
    """Neither mask has voxels: Dice and distances take the both-empty values."""
    PRED_EMPTY = "pred_empty"
    """Only the prediction is empty: Dice 0, distances NaN."""
    GT_EMPTY = "gt_empty"
    """Only the ground truth is empty: Dice 0, distances NaN."""


def _masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    for name, mask in (("pred", pred), ("gt", gt)):
        if mask.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean mask, got dtype {mask.dtype} (select a label: labels == value)")
    if pred.shape != gt.shape:
        raise ValueError(f"masks differ in shape: pred {pred.shape}, gt {gt.shape}")
    if pred.ndim == 0:
        raise ValueError("masks must have at least one dimension")
    return pred, gt


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise ValueError(f"need one spacing per mask axis ({ndim}), got {len(values)}: {values}")
    if not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"voxel spacing must be positive and finite, got {values}")
    return values


def mask_status(pred: np.ndarray, gt: np.ndarray) -> MaskStatus:
    """Classify a pair of masks by emptiness.

    Examples
    --------
    >>> import numpy as np
    >>> mask_status(np.zeros(3, bool), np.ones(3, bool))
    <MaskStatus.PRED_EMPTY: 'pred_empty'>
    """
    pred, gt = _masks(pred, gt)
    pred_empty, gt_empty = not pred.any(), not gt.any()
    if pred_empty and gt_empty:
        return MaskStatus.BOTH_EMPTY
    if pred_empty:
        return MaskStatus.PRED_EMPTY
    if gt_empty:
        return MaskStatus.GT_EMPTY
    return MaskStatus.OK


def dice(pred: np.ndarray, gt: np.ndarray, *, both_empty: float = BOTH_EMPTY_DICE) -> float:
    """Dice coefficient ``2 |P ∩ G| / (|P| + |G|)``.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        Boolean masks of the same shape.
    both_empty : float
        Value returned when both masks are empty (default
        :data:`BOTH_EMPTY_DICE`). One empty mask gives 0.

    Examples
    --------
    >>> import numpy as np
    >>> dice(np.array([1, 1, 1, 1, 0], bool), np.array([0, 1, 1, 1, 1], bool))
    0.75
    """
    pred, gt = _masks(pred, gt)
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    if total == 0:
        return float(both_empty)
    return 2.0 * int(np.count_nonzero(pred & gt)) / total


def _crop(pred: np.ndarray, gt: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of both masks.

    Outside it both masks are background, which is what erosion assumes
    beyond the array edge, and every surface voxel lies inside it, so erosion
    and the distance transform give exactly the values of the whole array, at
    a fraction of the cost for a heart in a 256 x 256 field of view.
    """
    box = []
    for axis in range(pred.ndim):
        others = tuple(a for a in range(pred.ndim) if a != axis)
        present = np.flatnonzero(np.any(pred, axis=others) | np.any(gt, axis=others))
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances (mm) between the surfaces of two non-empty masks.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        Boolean masks of the same shape, e.g. ``(slices, rows, cols)``.
    spacing : sequence of float
        Voxel spacing in mm along the same axes.

    Returns
    -------
    pred_to_gt : numpy.ndarray
        For each surface voxel of ``pred``, the distance to the nearest surface
        voxel of ``gt``.
    gt_to_pred : numpy.ndarray
        The same from ``gt`` to ``pred``.

    Raises
    ------
    ValueError
        A mask is empty (its surface distances are undefined; see
        :func:`mask_status`), or the shapes or spacing do not fit.

    Examples
    --------
    >>> import numpy as np
    >>> pred, gt = np.zeros((3, 1, 1), bool), np.zeros((3, 1, 1), bool)
    >>> pred[0] = gt[2] = True
    >>> surface_distances(pred, gt, spacing=(10.0, 1.5, 1.5))
    (array([20.]), array([20.]))
    """
    pred, gt = _masks(pred, gt)
    sampling = _spacing(spacing, pred.ndim)
    status = mask_status(pred, gt)
    if status is not MaskStatus.OK:
        raise ValueError(f"surface distances are undefined when a mask is empty ({status.value})")
    box = _crop(pred, gt)
    pred, gt = pred[box], gt[box]
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    pred_surface = pred & ~ndimage.binary_erosion(pred, structure=structure)
    gt_surface = gt & ~ndimage.binary_erosion(gt, structure=structure)
    to_gt = ndimage.distance_transform_edt(~gt_surface, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)
    return np.asarray(to_gt[pred_surface], dtype=float), np.asarray(to_pred[gt_surface], dtype=float)


def distance_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    *,
    both_empty: float = BOTH_EMPTY_DISTANCE_MM,
) -> tuple[float, float, float]:
    """Hausdorff distance, HD95 and ASSD (mm) from one surface-distance computation.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        Boolean masks of the same shape.
    spacing : sequence of float
        Voxel spacing in mm along the mask axes.
    both_empty : float
        Value of all three when both masks are empty (default
        :data:`BOTH_EMPTY_DISTANCE_MM`). One empty mask gives NaN.

    Returns
    -------
    tuple of float
        ``(hausdorff, hd95, assd)``.
    """
    pred, gt = _masks(pred, gt)
    _spacing(spacing, pred.ndim)
    status = mask_status(pred, gt)
    if status is MaskStatus.BOTH_EMPTY:
        return (float(both_empty),) * 3
    if status is not MaskStatus.OK:
        return (float("nan"),) * 3
    pred_to_gt, gt_to_pred = surface_distances(pred, gt, spacing)
    hd = max(float(pred_to_gt.max()), float(gt_to_pred.max()))
    hd_95 = float(np.percentile(np.concatenate([pred_to_gt, gt_to_pred]), 95))
    mean = (float(pred_to_gt.mean()) + float(gt_to_pred.mean())) / 2.0
    return hd, hd_95, mean


def hausdorff(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *, both_empty: float = BOTH_EMPTY_DISTANCE_MM
) -> float:
    """Symmetric Hausdorff distance in mm: the larger of the two directed maxima.

    See :func:`distance_metrics` for the parameters and empty masks.

    Examples
    --------
    >>> import numpy as np
    >>> pred, gt = np.zeros((4, 5, 5), bool), np.zeros((4, 5, 5), bool)
    >>> pred[1:3], gt[2:4] = True, True  # slabs one slice apart
    >>> hausdorff(pred, gt, spacing=(10.0, 1.5, 1.5))
    10.0
    """
    return distance_metrics(pred, gt, spacing, both_empty=both_empty)[0]


def hd95(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *, both_empty: float = BOTH_EMPTY_DISTANCE_MM
) -> float:
    """95th percentile (mm) of both directed surface-distance sets stacked together.

    See :func:`distance_metrics` for the parameters and empty masks.
    """
    return distance_metrics(pred, gt, spacing, both_empty=both_empty)[1]


def assd(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *, both_empty: float = BOTH_EMPTY_DISTANCE_MM
) -> float:
    """Average symmetric surface distance in mm: the mean of the two directed means.

    See :func:`distance_metrics` for the parameters and empty masks.
    """
    return distance_metrics(pred, gt, spacing, both_empty=both_empty)[2]
