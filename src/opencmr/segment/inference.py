"""Segmenting a whole cine study: every slice of every frame, back on the study's own grid.

Inference runs in two passes, as cascaded cardiac pipelines do: the network
first sees the full field of view of one frame (ED when known) to find the
heart, then every frame is segmented in a crop around it (with a margin), which
is several times cheaper than the full field of view for a 30-frame cine.
Softmax probabilities are averaged over test-time flips, placed back in the
full field of view, resampled linearly to the study's grid and turned into
labels, so the output has exactly the input's shape and affine. Finally each
frame is post-processed (:mod:`opencmr.segment.postprocess`).

References
----------
W. Bai et al., "Automated cardiovascular magnetic resonance image analysis
with fully convolutional networks", JCMR 20, 2018, doi:10.1186/s12968-018-0471-x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from opencmr.io.study import CineStudy, LabelMap
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.model import load_model
from opencmr.segment.postprocess import largest_component, postprocess_labels
from opencmr.segment.preprocess import pad_to_multiple, prepare_study, stack_context, to_source_grid

__all__ = ["segment_study", "heart_box", "predict_probabilities", "FLIPS", "Segmenter"]

#: Test-time flips: none, rows, columns, both.
FLIPS: tuple[tuple[int, ...], ...] = ((), (-2,), (-1,), (-2, -1))

#: ``progress(done, total)`` in frames.
FrameProgress = Callable[[int, int], None]

#: ``forward(batch (N, channels, H, W) float32) -> logits (N, classes, H, W)``
Forward = Callable[[torch.Tensor], torch.Tensor]


class Segmenter(Protocol):
    """What inference needs of a model: its configuration and a forward function (PyTorch or ONNX Runtime)."""

    config: SegmentationConfig

    def forward_fn(self) -> Forward: ...  # pragma: no cover


def predict_probabilities(
    slices: torch.Tensor,
    forward: Forward,
    divisor: int,
    flips: Sequence[tuple[int, ...]] = FLIPS,
    batch_size: int = 32,
    context: int = 0,
) -> torch.Tensor:
    """Softmax probabilities ``(N, classes, H, W)`` of the slices ``(N, H, W)`` of one stack, averaged over ``flips``.

    Slices are zero-padded to a multiple of ``divisor`` and cropped back. With
    ``context`` > 0 each slice is given with its neighbours (:func:`stack_context`),
    so ``slices`` must be a whole stack in order.
    """
    inputs = stack_context(slices, context) if context else slices[:, None]
    padded, (top, bottom, left, right) = pad_to_multiple(inputs, divisor, (2 * divisor, 2 * divisor))
    chunks = []
    for start in range(0, padded.shape[0], batch_size):
        x = padded[start : start + batch_size]
        total = None
        for dims in flips or ((),):
            xi = torch.flip(x, dims) if dims else x
            p = torch.softmax(forward(xi), dim=1)
            p = torch.flip(p, dims) if dims else p
            total = p if total is None else total + p
        chunks.append(total / max(len(flips), 1))
    probs = torch.cat(chunks)
    return probs[..., top : probs.shape[-2] - bottom, left : probs.shape[-1] - right]


def heart_box(labels: np.ndarray, config: SegmentationConfig, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Crop ``(rows, cols)`` around the largest foreground component of ``labels`` ``(slices, rows, cols)``.

    The box gets ``config.heart_margin_mm`` on each side, is at least
    ``config.patch_size`` and a multiple of the network's divisor, and stays
    inside ``shape`` where it can. With no foreground, the whole field of view.
    """
    heart = largest_component(labels > 0)
    if not heart.any():
        return slice(0, shape[0]), slice(0, shape[1])
    rows_cols = np.argwhere(heart)[:, 1:]
    out = []
    for axis in range(2):
        margin = int(np.ceil(config.heart_margin_mm / config.spacing_mm[axis]))
        lo, hi = int(rows_cols[:, axis].min()) - margin, int(rows_cols[:, axis].max()) + 1 + margin
        size = max(hi - lo, config.patch_size[axis])
        size = -(-size // config.divisor) * config.divisor
        if size >= shape[axis]:
            out.append(slice(0, shape[axis]))
            continue
        centre = (lo + hi) // 2
        start = min(max(centre - size // 2, 0), shape[axis] - size)
        out.append(slice(start, start + size))
    return out[0], out[1]


def segment_study(
    study: CineStudy,
    model: Segmenter | None = None,
    *,
    frames: Sequence[int] | None = None,
    tta: bool = True,
    postprocess: bool = True,
    batch_size: int = 32,
    progress: FrameProgress | None = None,
) -> LabelMap:
    """Segment every slice of the chosen frames (default: all) of ``study``.

    Parameters
    ----------
    study : CineStudy
        Any cine the readers return; raw scanner intensities are fine
        (normalisation is part of the model's preprocessing).
    model : SegmentationModel or OnnxSegmentationModel, optional
        Default: the bundled release model (PyTorch).
    frames : sequence of int, optional
        Frame numbers to segment (default: every frame); the output lists them in ascending order.
    tta : bool
        Average over the four flips (:data:`FLIPS`).
    postprocess : bool
        Largest connected component per structure and filled blood pools.
    batch_size : int
        Slices per forward pass.
    progress : callable, optional
        ``progress(done, total)`` after each frame.

    Returns
    -------
    LabelMap
        uint8 labels (0 background, 1 RV, 2 MYO, 3 LV) on the study's grid, one volume per frame.
    """
    model = model or load_model()
    config = model.config
    forward = model.forward_fn()
    frame_numbers = tuple(study.frame_numbers) if frames is None else tuple(sorted({int(f) for f in frames}))
    missing = sorted(set(frame_numbers) - set(study.frame_numbers))
    if missing:
        raise ValueError(f"frames {missing} are not in the study (frames {list(study.frame_numbers)})")
    prepared = prepare_study(dataclasses.replace(study, labels=None), config, frames=frame_numbers)
    flips = FLIPS if tta else ((),)
    image = torch.from_numpy(prepared.image)
    n_frames, n_slices, rows, cols = image.shape

    # localise on ED (else the study's first frame) whatever frames were asked for, so results do not depend on them
    ed = study.metadata.ed_frame
    reference = ed if ed in study.frame_numbers else study.frame_numbers[0]
    if reference in frame_numbers:
        reference_image = image[frame_numbers.index(reference)]
    else:
        reference_image = torch.from_numpy(prepare_study(dataclasses.replace(study, labels=None), config, frames=[reference]).image[0])
    probs = predict_probabilities(reference_image, forward, config.divisor, ((),), batch_size, config.context_slices)
    rows_cut, cols_cut = heart_box(probs.argmax(1).numpy(), config, (rows, cols))

    out = np.zeros((n_frames, *study.geometry.shape), np.uint8)
    for f in range(n_frames):
        crop = image[f][:, rows_cut, cols_cut]
        p_crop = predict_probabilities(crop, forward, config.divisor, flips, batch_size, config.context_slices)
        full = torch.zeros((n_slices, config.num_classes, rows, cols))
        full[:, 0] = 1.0
        full[:, :, rows_cut, cols_cut] = p_crop
        labels = to_source_grid(full.permute(1, 0, 2, 3), prepared.geometry, study.geometry)
        out[f] = postprocess_labels(labels) if postprocess else labels
        if progress is not None:
            progress(f + 1, n_frames)
    return LabelMap(out, study.geometry, frame_numbers)
