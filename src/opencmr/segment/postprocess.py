"""Anatomical post-processing of a label volume: one connected heart, no holes.

The LV blood pool, the LV myocardium and the RV blood pool are each one
connected object in a short-axis stack, so only the largest 3D connected
component of each is kept (isolated false positives far from the heart are
the commonest failure of a slice-wise network; Bernard et al. 2018 report it
for most ACDC entries). Holes inside a blood pool (papillary muscles
labelled background) are filled per slice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from opencmr.labels import Label

__all__ = ["fill_holes", "keep_largest_component", "largest_component", "postprocess_labels"]

_FULL = ndimage.generate_binary_structure(3, 3)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 3D connected component (26-connectivity) of a boolean mask (all False when it is empty)."""
    components, n = ndimage.label(mask, structure=_FULL)
    if n <= 1:
        return components > 0
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def keep_largest_component(labels: np.ndarray, values: tuple[int, ...] = (1, 2, 3)) -> np.ndarray:
    """Keep, for each label value, only its largest 3D connected component (26-connectivity).

    >>> import numpy as np
    >>> v = np.zeros((1, 5, 5), np.uint8); v[0, 0, 0] = 3; v[0, 2:5, 2:5] = 3
    >>> int(keep_largest_component(v).sum() // 3)
    9
    """
    out = np.array(labels, copy=True)
    for value in values:
        mask = out == value
        if mask.any():
            out[mask & ~largest_component(mask)] = 0
    return out


def fill_holes(labels: np.ndarray, values: tuple[int, ...] = (int(Label.LV_BLOOD_POOL), int(Label.RV_BLOOD_POOL))) -> np.ndarray:
    """Fill background holes inside each of ``values``, slice by slice (``labels``: ``(slices, rows, cols)``)."""
    out = np.array(labels, copy=True)
    for s in range(out.shape[0]):
        for value in values:
            mask = out[s] == value
            if mask.any():
                filled = ndimage.binary_fill_holes(mask)
                out[s][filled & (out[s] == 0)] = value
    return out


def postprocess_labels(labels: np.ndarray) -> np.ndarray:
    """Largest component per structure, then filled blood pools (one frame, ``(slices, rows, cols)``)."""
    return fill_holes(keep_largest_component(labels))
