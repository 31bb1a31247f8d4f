"""Resampling that knows what it resamples: images linearly, label maps by nearest neighbour.

One implementation serves both: the target grid's voxel indices are mapped
through the two affines to source indices, and the source is interpolated
there, with the order chosen by the type -- a :class:`~opencmr.io.study.LabelMap`
is always resampled with order 0, so no label value is ever averaged into
another (TorchIO's ``LabelMap``/``ScalarImage`` distinction).

References
----------
F. Perez-Garcia, R. Sparks, S. Ourselin, "TorchIO: a Python library for
efficient loading, preprocessing, augmentation and patch-based sampling of
medical images in deep learning", Comput. Methods Programs Biomed. 208
(2021), doi:10.1016/j.cmpb.2021.106236.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np
from scipy import ndimage

from opencmr.io.study import CineStudy, Geometry, LabelMap

__all__ = ["in_plane_grid", "resample_in_plane", "resample_to_grid"]

Resampleable = TypeVar("Resampleable", CineStudy, LabelMap)


def in_plane_grid(geometry: Geometry, spacing_mm: tuple[float, float]) -> Geometry:
    """The grid covering the same field of view with in-plane spacing ``(row, col)`` mm.

    Slices are unchanged. The outer corner of the field of view stays in
    place (voxel centres move by half the change of spacing), and the number
    of rows/columns is the field of view divided by the new spacing, rounded.
    """
    row_mm, col_mm = (float(v) for v in spacing_mm)
    if not (np.isfinite(row_mm) and np.isfinite(col_mm)) or row_mm <= 0 or col_mm <= 0:
        raise ValueError(f"target spacing must be positive, got {spacing_mm}")
    _, old_row, old_col = geometry.spacing
    n_slices, n_rows, n_cols = geometry.shape
    affine = np.array(geometry.affine)
    old_axes = affine[:3, :2].copy()
    affine[:3, 0] *= col_mm / old_col
    affine[:3, 1] *= row_mm / old_row
    affine[:3, 3] += 0.5 * ((affine[:3, 0] - old_axes[:, 0]) + (affine[:3, 1] - old_axes[:, 1]))
    shape = (n_slices, max(1, round(n_rows * old_row / row_mm)), max(1, round(n_cols * old_col / col_mm)))
    return Geometry(affine, shape, geometry.slice_thickness_mm)


def resample_to_grid(data: Resampleable, target: Geometry) -> Resampleable:
    """Resample a study (linear) or a label map (nearest neighbour) onto ``target``.

    Parameters
    ----------
    data : CineStudy or LabelMap
    target : Geometry
        Grid to sample on; points outside the source take the value of the
        nearest edge voxel.

    Returns
    -------
    CineStudy or LabelMap
        Same type as ``data``, on ``target``. A study's labels, if any, are
        resampled with it (nearest neighbour).
    """
    if isinstance(data, LabelMap):
        volumes = _resample_volumes(data.data, data.geometry, target, order=0)
        return LabelMap(volumes.astype(np.uint8), target, data.frame_numbers)
    if isinstance(data, CineStudy):
        image = _resample_volumes(data.image, data.geometry, target, order=1)
        labels = None if data.labels is None else resample_to_grid(data.labels, target)
        return dataclasses.replace(data, image=image, geometry=target, labels=labels)
    raise TypeError(f"expected a CineStudy or LabelMap, got {type(data).__name__}")


def resample_in_plane(data: Resampleable, spacing_mm: tuple[float, float]) -> Resampleable:
    """Resample to in-plane spacing ``(row, col)`` mm, keeping the slices.

    Examples
    --------
    >>> import numpy as np
    >>> from opencmr.io.study import Geometry, LabelMap
    >>> labels = LabelMap(np.ones((1, 2, 10, 10), np.uint8), Geometry(np.diag([2.0, 2.0, 8.0, 1.0]), (2, 10, 10)), (0,))
    >>> resample_in_plane(labels, (1.0, 1.0)).data.shape
    (1, 2, 20, 20)
    """
    geometry = data.geometry
    return resample_to_grid(data, in_plane_grid(geometry, spacing_mm))


def _resample_volumes(volumes: np.ndarray, source: Geometry, target: Geometry, order: int) -> np.ndarray:
    """Resample each ``(slice, row, col)`` volume of ``volumes`` from ``source`` to ``target``."""
    # index (c, r, s) of target -> world -> index (c, r, s) of source; then into array axis order (s, r, c)
    to_source = np.linalg.inv(np.asarray(source.affine)) @ np.asarray(target.affine)
    flip = np.zeros((4, 4))
    flip[0, 2] = flip[1, 1] = flip[2, 0] = flip[3, 3] = 1.0  # (c, r, s) <-> (s, r, c)
    matrix = flip @ to_source @ flip
    out = np.empty((volumes.shape[0], *target.shape), dtype=np.float32 if order > 0 else volumes.dtype)
    for i, volume in enumerate(volumes):
        ndimage.affine_transform(
            volume.astype(np.float32) if order > 0 else volume,
            matrix[:3, :3],
            offset=matrix[:3, 3],
            output_shape=target.shape,
            output=out[i],
            order=order,
            mode="nearest",
            prefilter=False,
        )
    return out
