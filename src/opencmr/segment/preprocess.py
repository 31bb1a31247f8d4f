"""Preparing a study for the network, and the way back to the study's grid.

The same two steps serve training and inference, so the network always sees
what it was trained on: intensities normalised over the whole study
(percentiles, :func:`opencmr.preprocess.normalize_intensity`), then every
slice resampled in-plane to the model's spacing
(:func:`opencmr.preprocess.in_plane_grid`). Probabilities go back with
:func:`to_source_grid` (linear interpolation of each class, then argmax), so
the output has exactly the input's shape and affine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.preprocess.intensity import normalize_intensity
from opencmr.preprocess.resample import in_plane_grid, resample_to_grid
from opencmr.segment.config import SegmentationConfig

__all__ = ["PreparedStudy", "class_argmax", "context_indices", "pad_to_multiple", "prepare_study", "resample_slices", "stack_context", "to_source_grid"]


@dataclass(frozen=True)
class PreparedStudy:
    """A study on the model's grid.

    Attributes
    ----------
    image : numpy.ndarray
        float32 ``(frames, slices, rows, cols)`` in [0, 1] at the model's spacing.
    geometry : Geometry
        The model-spacing grid (same slices and field of view as the source).
    source : Geometry
        The study's own grid, for :func:`to_source_grid`.
    labels : numpy.ndarray or None
        uint8 ``(labelled frames, slices, rows, cols)`` on ``geometry`` when the study has labels.
    label_frames : tuple of int
        Frame numbers of ``labels``.
    """

    image: np.ndarray
    geometry: Geometry
    source: Geometry
    labels: np.ndarray | None
    label_frames: tuple[int, ...]


def prepare_study(study: CineStudy, config: SegmentationConfig, frames: Sequence[int] | None = None) -> PreparedStudy:
    """Normalise intensities over the study and resample every slice to ``config.spacing_mm``.

    Parameters
    ----------
    study : CineStudy
    config : SegmentationConfig
    frames : sequence of int, optional
        Frame numbers to prepare (default: all). Intensities are always
        normalised over the whole study, so a frame is prepared the same way
        whichever other frames are asked for.

    Returns
    -------
    PreparedStudy
        Images interpolated linearly, labels of the prepared frames (when the
        study has them) by nearest neighbour.
    """
    normalised = normalize_intensity(study.image, config.lower_percentile, config.upper_percentile)
    if frames is not None:
        normalised = normalised[[study.frame_index(f) for f in frames]]
    target = in_plane_grid(study.geometry, config.spacing_mm)
    image = resample_slices(torch.from_numpy(normalised), study.geometry, target, "bilinear").numpy()
    labels = None
    label_frames: tuple[int, ...] = ()
    if study.labels is not None:
        label_frames = tuple(f for f in study.labels.frame_numbers if frames is None or f in frames)
        if label_frames:
            subset = LabelMap(np.stack([study.labels.frame(f) for f in label_frames]), study.geometry, label_frames)
            labels = resample_to_grid(subset, target).data
    return PreparedStudy(image, target, study.geometry, labels, label_frames)


def _in_plane_matrix(source: Geometry, target: Geometry) -> np.ndarray:
    """``(2, 3)`` map from target ``(col, row, 1)`` indices to source ``(col, row)`` indices."""
    m = np.linalg.inv(np.asarray(source.affine)) @ np.asarray(target.affine)
    if source.shape[0] != target.shape[0] or not np.allclose(m[2], [0, 0, 1, 0], atol=1e-4) or not np.allclose(
        m[:2, 2], 0, atol=1e-4
    ):
        raise ValueError("grids differ by more than an in-plane change (different slices)")
    return m[:2][:, [0, 1, 3]]


def resample_slices(volumes: torch.Tensor, source: Geometry, target: Geometry, mode: str = "bilinear") -> torch.Tensor:
    """Resample ``(..., slices, rows, cols)`` from ``source`` to ``target``, two grids with the same slices.

    Linear (``"bilinear"``) or ``"nearest"`` interpolation; points beyond the
    source take the nearest edge value (as :func:`opencmr.preprocess.resample_to_grid`).
    """
    lead = volumes.shape[:-2]
    rows, cols = target.shape[1:]
    m = torch.as_tensor(_in_plane_matrix(source, target), dtype=torch.float32)
    cc, rr = torch.meshgrid(torch.arange(cols, dtype=torch.float32), torch.arange(rows, dtype=torch.float32), indexing="xy")
    src_c = m[0, 0] * cc + m[0, 1] * rr + m[0, 2]
    src_r = m[1, 0] * cc + m[1, 1] * rr + m[1, 2]
    in_rows, in_cols = source.shape[1:]
    # normalised coordinates for align_corners=True: index 0 -> -1, n-1 -> +1
    gx = 2 * src_c / max(in_cols - 1, 1) - 1
    gy = 2 * src_r / max(in_rows - 1, 1) - 1
    flat = volumes.reshape(-1, 1, in_rows, in_cols).float()
    grid = torch.stack([gx, gy], dim=-1)[None].expand(flat.shape[0], rows, cols, 2)
    out = F.grid_sample(flat, grid, mode=mode, padding_mode="border", align_corners=True)
    return out.reshape(*lead, rows, cols)


def context_indices(n_slices: int, context: int) -> np.ndarray:
    """Indices ``(n_slices, 1 + 2 * context)`` of each slice's neighbours, in stack order, edge slices repeated."""
    offsets = np.arange(-context, context + 1)
    return np.clip(np.arange(n_slices)[:, None] + offsets[None], 0, n_slices - 1)


def stack_context(volume: torch.Tensor, context: int) -> torch.Tensor:
    """Slices ``(S, H, W)`` as 2.5D inputs ``(S, 1 + 2 * context, H, W)``: each slice between its neighbours.

    Channel ``context`` is the slice itself, channels before it the slices
    below it in the stack, channels after it those above; beyond the first or
    last slice the edge slice is repeated (:func:`context_indices`).
    """
    return volume[torch.from_numpy(context_indices(volume.shape[0], context))]


def pad_to_multiple(image: torch.Tensor, multiple: int, minimum: tuple[int, int] = (0, 0)) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Zero-pad the last two axes to a multiple of ``multiple`` (at least ``minimum``), centred.

    Returns the padded tensor and the ``(top, bottom, left, right)`` padding.
    """
    rows, cols = image.shape[-2:]
    want_r = max(-(-rows // multiple) * multiple, minimum[0])
    want_c = max(-(-cols // multiple) * multiple, minimum[1])
    top, left = (want_r - rows) // 2, (want_c - cols) // 2
    pads = (top, want_r - rows - top, left, want_c - cols - left)
    return F.pad(image, (pads[2], pads[3], pads[0], pads[1])), pads


def class_argmax(probabilities: torch.Tensor, dim: int) -> torch.Tensor:
    """``probabilities.argmax(dim)``, computed with the class axis moved last and made contiguous.

    PyTorch's CPU argmax along a strided axis (the class axis of
    ``(classes, slices, rows, cols)`` or ``(slices, classes, rows, cols)``)
    is about ten times slower than along the innermost one: for a 30-frame
    cine it took longer than the network. The result is the same (the first
    maximum on ties).
    """
    return probabilities.movedim(dim, -1).contiguous().argmax(-1)


def to_source_grid(probabilities: np.ndarray | torch.Tensor, model_grid: Geometry, source: Geometry) -> np.ndarray:
    """Resample class probabilities ``(classes, slices, rows, cols)`` to ``source`` and take the argmax.

    Each class map is interpolated linearly (not the label map by nearest
    neighbour), so boundaries land between model-grid pixels as they should.
    """
    probs = torch.as_tensor(probabilities, dtype=torch.float32)
    return class_argmax(resample_slices(probs, model_grid, source), 0).to(torch.uint8).numpy()

