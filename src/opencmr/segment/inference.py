"""Segmenting a whole cine study: every slice of every frame, back on the study's own grid.

Inference runs in two passes, as cascaded cardiac pipelines do: the network
first sees the full field of view of one frame (ED when known) to find the
heart, then every frame is segmented in a crop around it (with a margin), which
is several times cheaper than the full field of view for a 30-frame cine.
Softmax probabilities are averaged over test-time flips, placed back in the
full field of view, resampled linearly to the study's grid and turned into
labels, so the output has exactly the input's shape and affine. Finally each
frame is post-processed (:mod:`opencmr.segment.postprocess`). On request,
per-voxel uncertainty maps are computed in the same frame loop
(:mod:`opencmr.qc.uncertainty`).

References
----------
W. Bai et al., "Automated cardiovascular magnetic resonance image analysis
with fully convolutional networks", JCMR 20, 2018, doi:10.1186/s12968-018-0471-x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, overload

import numpy as np
import torch

from opencmr.io.study import CineStudy, LabelMap
from opencmr.labels import STRUCTURES
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.model import load_model
from opencmr.segment.postprocess import largest_component, postprocess_labels
from opencmr.segment.preprocess import (
    class_argmax,
    pad_to_multiple,
    prepare_study,
    resample_slices,
    stack_context,
    to_source_grid,
)

if TYPE_CHECKING:
    from opencmr.qc.orientation import Variant
    from opencmr.qc.uncertainty import UncertaintyMaps

__all__ = [
    "FLIPS", "Segmenter", "heart_box", "predict_probabilities", "predict_with_disagreement", "segment_reoriented",
    "segment_study",
]

#: Test-time flips: none, rows, columns, both.
FLIPS: tuple[tuple[int, ...], ...] = ((), (-2,), (-1,), (-2, -1))

#: In-plane orientation safety of :func:`segment_study`.
OrientationMode = Literal["off", "check", "correct"]

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
    return _predict(slices, forward, divisor, flips, batch_size, context, disagreement=False)[0]


def predict_with_disagreement(
    slices: torch.Tensor,
    forward: Forward,
    divisor: int,
    flips: Sequence[tuple[int, ...]] = FLIPS,
    batch_size: int = 32,
    context: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`predict_probabilities` and the disagreement ``(N, H, W)`` between the test-time views.

    The disagreement of a pixel is the fraction of views (flips) whose argmax
    differs from the consensus, the argmax of the averaged probabilities: 0
    when every view agrees, 1 when none picks the consensus class; always 0
    with a single view. This is the vote-count form of the test-time
    augmentation uncertainty of Wang et al. (2019), who measure the spread of
    the labels predicted under augmentation. Views are accumulated as vote
    counts batch by batch, so no view's probabilities outlive its forward pass.

    References
    ----------
    G. Wang, W. Li, M. Aertsen, J. Deprest, S. Ourselin, T. Vercauteren,
    "Aleatoric uncertainty estimation with test-time augmentation for medical
    image segmentation with convolutional neural networks", Neurocomputing
    338, 2019, doi:10.1016/j.neucom.2019.01.103.
    """
    probs, disagreement = _predict(slices, forward, divisor, flips, batch_size, context, disagreement=True)
    assert disagreement is not None
    return probs, disagreement


def _predict(
    slices: torch.Tensor,
    forward: Forward,
    divisor: int,
    flips: Sequence[tuple[int, ...]],
    batch_size: int,
    context: int,
    disagreement: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Averaged probabilities, and (when asked) the fraction of views that disagree with their argmax."""
    inputs = stack_context(slices, context) if context else slices[:, None]
    padded, (top, bottom, left, right) = pad_to_multiple(inputs, divisor, (2 * divisor, 2 * divisor))
    views = flips or ((),)
    chunks, disagree_chunks = [], []
    for start in range(0, padded.shape[0], batch_size):
        x = padded[start : start + batch_size]
        total = None
        votes = None
        for dims in views:
            xi = torch.flip(x, dims) if dims else x
            p = torch.softmax(forward(xi), dim=1)
            p = torch.flip(p, dims) if dims else p
            total = p if total is None else total + p
            if disagreement:
                vote = torch.zeros_like(p, dtype=torch.int16).scatter_(1, class_argmax(p, 1).unsqueeze(1), 1)
                votes = vote if votes is None else votes + vote
        mean = total / len(views)
        chunks.append(mean)
        if disagreement:
            agree = votes.gather(1, class_argmax(mean, 1).unsqueeze(1))[:, 0]
            disagree_chunks.append(1.0 - agree.float() / len(views))
    probs = torch.cat(chunks)[..., top : padded.shape[-2] - bottom, left : padded.shape[-1] - right]
    if not disagreement:
        return probs, None
    spread = torch.cat(disagree_chunks)[..., top : padded.shape[-2] - bottom, left : padded.shape[-1] - right]
    return probs, spread


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


@overload
def segment_study(
    study: CineStudy,
    model: Segmenter | None = ...,
    *,
    frames: Sequence[int] | None = ...,
    tta: bool = ...,
    postprocess: bool = ...,
    batch_size: int = ...,
    progress: FrameProgress | None = ...,
    return_uncertainty: Literal[False] = ...,
    orientation: OrientationMode = ...,
) -> LabelMap: ...


@overload
def segment_study(
    study: CineStudy,
    model: Segmenter | None = ...,
    *,
    frames: Sequence[int] | None = ...,
    tta: bool = ...,
    postprocess: bool = ...,
    batch_size: int = ...,
    progress: FrameProgress | None = ...,
    return_uncertainty: Literal[True],
    orientation: OrientationMode = ...,
) -> tuple[LabelMap, UncertaintyMaps]: ...


def segment_study(
    study: CineStudy,
    model: Segmenter | None = None,
    *,
    frames: Sequence[int] | None = None,
    tta: bool = True,
    postprocess: bool = True,
    batch_size: int = 32,
    progress: FrameProgress | None = None,
    return_uncertainty: bool = False,
    orientation: OrientationMode = "off",
) -> LabelMap | tuple[LabelMap, UncertaintyMaps]:
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
    return_uncertainty : bool
        Also return per-voxel uncertainty maps (predictive entropy and
        disagreement between the test-time views,
        :class:`~opencmr.qc.uncertainty.UncertaintyMaps`). The labels are the
        same either way. Costs one more linear resampling per frame and two
        float32 maps on the study's grid (8 bytes a voxel, eight times the labels).
    orientation : {"off", "check", "correct"}
        In-plane orientation safety (:func:`opencmr.qc.orientation.check_orientation`,
        eight extra forward passes of one frame). ``"off"``: none. ``"check"``:
        raise :class:`~opencmr.errors.InputError` when the rows and columns
        look transposed (or rotated by 90 degrees) relative to the training
        data. ``"correct"``: segment such a study in the orientation the
        network expects and map labels (and uncertainty maps) back to the
        input grid, an exact permutation of voxels. Flipped studies are left
        alone (training covered flips), and so are ambiguous ones.

    Returns
    -------
    LabelMap
        uint8 labels (0 background, 1 RV, 2 MYO, 3 LV) on the study's grid, one volume per frame.
    UncertaintyMaps
        Only with ``return_uncertainty``: the maps of the same frames on the same grid.
    """
    from opencmr.qc.orientation_mode import orientation_mode  # qc builds on segment: imported when used

    orientation_mode(orientation)
    model = model or load_model()
    if orientation != "off":
        return _segment_oriented(
            study,
            model,
            orientation,
            frames=frames,
            tta=tta,
            postprocess=postprocess,
            batch_size=batch_size,
            progress=progress,
            return_uncertainty=return_uncertainty,
        )
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
    rows_cut, cols_cut = heart_box(class_argmax(probs, 1).numpy(), config, (rows, cols))

    out = np.zeros((n_frames, *study.geometry.shape), np.uint8)
    if return_uncertainty:
        entropy = np.zeros((n_frames, *study.geometry.shape), np.float32)
        disagreement = np.zeros((n_frames, *study.geometry.shape), np.float32)
        overlap = np.zeros((n_frames, len(STRUCTURES), 3), np.float64)
    for f in range(n_frames):
        crop = image[f][:, rows_cut, cols_cut]
        if return_uncertainty:
            p_crop, d_crop = predict_with_disagreement(crop, forward, config.divisor, flips, batch_size, config.context_slices)
        else:
            p_crop = predict_probabilities(crop, forward, config.divisor, flips, batch_size, config.context_slices)
        full = torch.zeros((n_slices, config.num_classes, rows, cols))
        full[:, 0] = 1.0
        full[:, :, rows_cut, cols_cut] = p_crop
        if return_uncertainty:
            # outside the crop the background is certain and the views agree: both maps are 0 there
            spread = torch.zeros((n_slices, 1, rows, cols))
            spread[:, 0, rows_cut, cols_cut] = d_crop
            # one resampling of probabilities and disagreement together (channels are resampled independently)
            grid = resample_slices(torch.cat([full, spread], 1).permute(1, 0, 2, 3), prepared.geometry, study.geometry)
            labels = class_argmax(grid[: config.num_classes], 0).to(torch.uint8).numpy()
            entropy[f] = _normalised_entropy(grid[: config.num_classes]).numpy()
            disagreement[f] = grid[config.num_classes].clamp_(0.0, 1.0).numpy()
        else:
            labels = to_source_grid(full.permute(1, 0, 2, 3), prepared.geometry, study.geometry)
        out[f] = postprocess_labels(labels) if postprocess else labels
        if return_uncertainty:
            overlap[f] = _soft_overlap(grid, out[f])
        if progress is not None:
            progress(f + 1, n_frames)
    label_map = LabelMap(out, study.geometry, frame_numbers)
    if not return_uncertainty:
        return label_map
    from opencmr.qc.uncertainty import UncertaintyMaps  # qc builds on segment, not the other way round

    return label_map, UncertaintyMaps(entropy, disagreement, study.geometry, frame_numbers, n_views=len(flips), overlap=overlap)


def _soft_overlap(probabilities: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """Per structure: sum of its probability inside its label, sum of its probability, label voxel count.

    The ingredients of the soft Dice between the probabilities and the final
    labels (:attr:`opencmr.qc.uncertainty.UncertaintyMaps.overlap`).
    """
    out = np.zeros((len(STRUCTURES), 3), np.float64)
    for k, label in enumerate(STRUCTURES):
        p = probabilities[int(label)].numpy()
        mask = labels == int(label)
        out[k] = (float(p[mask].sum(dtype=np.float64)), float(p.sum(dtype=np.float64)), float(mask.sum()))
    return out


def _segment_oriented(
    study: CineStudy, model: Segmenter, orientation: OrientationMode, **options: object
) -> LabelMap | tuple[LabelMap, UncertaintyMaps]:
    """:func:`segment_study` after an orientation check: raise, or segment reoriented and map back."""
    from opencmr.qc.orientation import segment_oriented

    result, _ = segment_oriented(study, model, orientation, **options)
    return result  # type: ignore[return-value]


def segment_reoriented(
    study: CineStudy, model: Segmenter, variant: Variant, **options: object
) -> LabelMap | tuple[LabelMap, UncertaintyMaps]:
    """Segment ``study`` turned into the in-plane ``variant`` and map the results back to the study's grid.

    ``options`` are :func:`segment_study`'s. The mapping back is an exact
    permutation of voxels (:func:`opencmr.qc.orientation.invert_variant`), so
    labels and uncertainty maps land on the input's own grid.
    """
    from opencmr.qc.orientation import invert_variant, reorient_study

    result = segment_study(reorient_study(study, variant), model, orientation="off", **options)  # type: ignore[call-overload]
    labels, maps = result if isinstance(result, tuple) else (result, None)
    back = LabelMap(np.ascontiguousarray(invert_variant(labels.data, variant)), study.geometry, labels.frame_numbers)
    if maps is None:
        return back
    maps = dataclasses.replace(
        maps,
        entropy=np.ascontiguousarray(invert_variant(maps.entropy, variant)),
        disagreement=np.ascontiguousarray(invert_variant(maps.disagreement, variant)),
        geometry=study.geometry,
    )
    return back, maps


def _normalised_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy over the classes of ``(classes, ...)`` probabilities, divided by log(classes): in [0, 1]."""
    p = probabilities.clamp(min=0.0)
    p = p / p.sum(0, keepdim=True).clamp(min=1e-12)
    h = -torch.xlogy(p, p).sum(0) / float(np.log(probabilities.shape[0]))
    return h.clamp_(0.0, 1.0)
