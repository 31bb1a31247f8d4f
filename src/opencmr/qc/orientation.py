"""Orientation safety: is the in-plane orientation of a study the one the network expects?

The network is trained on ACDC-like short-axis slices, augmented with flips
but never with transposes or 90-degree rotations. A study whose rows and
columns are swapped (a transposed or rotated export) is a frequent silent
failure. :func:`check_orientation` runs the network on the ED (else first)
frame in each of the eight in-plane variants of the dihedral group D4
(identity, the three flips, the transpose and the transpose with each flip)
and scores each variant by

* the **anatomy** of its prediction: the cosine between the RV-to-LV centroid
  direction in the variant's frame and the ACDC direction
  (:data:`CANONICAL_RV_TO_LV`: LV to the right of the RV, slightly below);
* the **confidence** of its prediction: mean max-softmax over the predicted
  heart, and the predicted LV volume (plausibility: a heart must be found).

Flips are part of training, so only the choice between the untransposed and
the transposed halves of D4 decides: the flips of a half share the
orientation of the RV-LV axis and differ only in its sign. The decision is
``"corrected"`` when the best transposed variant beats the best untransposed
one by at least :data:`TRANSPOSE_MARGIN`, ``"ambiguous"`` when the margin is
between :data:`AMBIGUOUS_MARGIN` and that, or no RV or LV is found, or the
winning variant is markedly less confident, and ``"ok"`` otherwise.

Confidence alone does not separate the halves for the bundled model: on the
phantom its mean max-softmax over the heart is 0.975-0.978 in all eight
variants, in the original orientation and transposed alike (the network
segments a transposed heart just as confidently). The anatomy of the
prediction does: RV-to-LV directions on ACDC ground truth (patients 001, 011,
021: (row, col) = (-0.49, 0.87), (-0.19, 0.98), (-0.03, 1.00)) and phantoms
(seeds 1-3: (-0.20, 0.98), (-0.46, 0.89), (-0.45, 0.89)) all lie within 30
degrees of the column axis. On the network's predictions the best
untransposed variant scores 0.96-0.99 and the best transposed one 0.50-0.71
(transpose margins -0.27, -0.49, -0.63 for ACDC 001, 011, 021 and -0.50 for
phantom 1; exactly the opposite when the study is transposed), so
:data:`TRANSPOSE_MARGIN` sits below the smallest gap, 0.27.

References
----------
D. Laptev, N. Savinov, J. M. Buhmann, M. Pollefeys, "TI-pooling:
transformation-invariant pooling for feature learning in convolutional neural
networks", CVPR 2016, doi:10.1109/CVPR.2016.38.
G. Wang et al., "Aleatoric uncertainty estimation with test-time augmentation
for medical image segmentation with convolutional neural networks",
Neurocomputing 338, 2019, doi:10.1016/j.neucom.2019.01.103.
F. Isensee et al., "nnU-Net: a self-configuring method for deep
learning-based biomedical image segmentation", Nature Methods 18, 2021,
doi:10.1038/s41592-020-01008-z (mirroring test-time augmentation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from opencmr.io.study import CineStudy, Geometry
from opencmr.qc.checks import Check, Status
from opencmr.qc.orientation_mode import orientation_mode
from opencmr.segment.inference import Segmenter, predict_probabilities
from opencmr.segment.preprocess import class_argmax, prepare_study

__all__ = [
    "AMBIGUOUS_MARGIN",
    "CANONICAL_RV_TO_LV",
    "CHECK_SLICES",
    "CONFIDENCE_DROP",
    "TRANSPOSE_MARGIN",
    "VARIANTS",
    "OrientationCheck",
    "Variant",
    "apply_variant",
    "check_orientation",
    "invert_variant",
    "reorient_study",
    "segment_as_checked",
    "segment_oriented",
]

#: Unit RV-to-LV centroid direction ``(row, col)`` in ACDC's convention: the
#: mean of ACDC patients 001, 011, 021 and phantoms 1-3 (about 17 degrees above
#: the column axis: LV to the right of the RV, slightly higher).
CANONICAL_RV_TO_LV: tuple[float, float] = (-0.30, 0.954)

#: Transposed minus untransposed anatomy score at or above which the study is
#: taken as transposed. The smallest gap seen (ACDC patient001, whose RV-LV axis
#: is 29 degrees off the column axis) is 0.27; a normal study scores below -0.25.
TRANSPOSE_MARGIN: float = 0.2

#: Margins between this and :data:`TRANSPOSE_MARGIN` give ``"ambiguous"``: the
#: RV-LV axis is close to the diagonal and the two halves cannot be told apart.
AMBIGUOUS_MARGIN: float = 0.0

#: A winning transposed variant whose mean max-softmax over the heart is lower
#: than the identity's by more than this is not trusted (``"ambiguous"``).
CONFIDENCE_DROP: float = 0.05


@dataclass(frozen=True)
class Variant:
    """One in-plane element of the dihedral group: transpose first (when set), then flip ``flips`` axes."""

    name: str
    transpose: bool
    flips: tuple[int, ...]


#: The eight in-plane variants; index 0 is the identity.
VARIANTS: tuple[Variant, ...] = (
    Variant("identity", False, ()),
    Variant("flip rows", False, (-2,)),
    Variant("flip columns", False, (-1,)),
    Variant("flip both", False, (-2, -1)),
    Variant("transpose", True, ()),
    Variant("transpose, flip rows", True, (-2,)),
    Variant("transpose, flip columns", True, (-1,)),
    Variant("transpose, flip both", True, (-2, -1)),
)


def apply_variant(array: np.ndarray, variant: Variant) -> np.ndarray:
    """``array`` ``(..., rows, cols)`` in ``variant``'s orientation (an exact permutation of its pixels)."""
    out = np.swapaxes(array, -1, -2) if variant.transpose else array
    return np.flip(out, variant.flips) if variant.flips else out


def invert_variant(array: np.ndarray, variant: Variant) -> np.ndarray:
    """Undo :func:`apply_variant`: flip back, then transpose back."""
    out = np.flip(array, variant.flips) if variant.flips else array
    return np.swapaxes(out, -1, -2) if variant.transpose else out


def _variant_geometry(geometry: Geometry, variant: Variant) -> Geometry:
    """The grid of the reoriented array: every voxel keeps its position in patient space."""
    affine = np.array(geometry.affine)
    n_slices, rows, cols = geometry.shape
    if variant.transpose:
        affine[:, [0, 1]] = affine[:, [1, 0]]
        rows, cols = cols, rows
    for axis in variant.flips:  # -1: columns (affine column 0), -2: rows (affine column 1)
        column, size = (0, cols) if axis == -1 else (1, rows)
        affine[:3, 3] += (size - 1) * affine[:3, column]
        affine[:3, column] *= -1
    return Geometry(affine, (n_slices, rows, cols), geometry.slice_thickness_mm)


def reorient_study(study: CineStudy, variant: Variant) -> CineStudy:
    """``study`` with its pixels in ``variant``'s orientation and the affine changed to match (labels dropped)."""
    image = np.ascontiguousarray(apply_variant(study.image, variant))
    return dataclasses.replace(study, image=image, geometry=_variant_geometry(study.geometry, variant), labels=None)


CHECK_SLICES = 4
"""Middle slices of the checked frame that :func:`check_orientation` scores."""


@dataclass(frozen=True)
class OrientationCheck:
    """Result of :func:`check_orientation`.

    Attributes
    ----------
    variants : tuple of str
        Names of the eight variants (:data:`VARIANTS`), in order.
    anatomy : tuple of float
        Cosine between each variant's predicted RV-to-LV direction and
        :data:`CANONICAL_RV_TO_LV` (NaN where no RV or LV is predicted).
    confidence : tuple of float
        Mean max-softmax over each variant's predicted heart (NaN without heart).
    lv_ml : tuple of float
        Predicted LV volume of each variant on the checked slices of the frame.
    best : int
        Index of the best-scoring variant (by anatomy).
    margin : float
        Anatomy score of the best variant minus the identity's.
    transpose_margin : float
        Best transposed minus best untransposed anatomy score: the decision statistic.
    decision : str
        ``"ok"``, ``"corrected"`` (segment in variant ``best``) or ``"ambiguous"``.
    reason : str
        One sentence for the user.
    frame : int
        The frame checked.
    """

    variants: tuple[str, ...]
    anatomy: tuple[float, ...]
    confidence: tuple[float, ...]
    lv_ml: tuple[float, ...]
    best: int
    margin: float
    transpose_margin: float
    decision: str
    reason: str
    frame: int

    @property
    def best_variant(self) -> Variant:
        return VARIANTS[self.best]

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "best_variant": self.best_variant.name}

    def to_check(self) -> Check:
        """The outcome as a QC check (``orientation``): pass when as expected, review when corrected or ambiguous."""
        if self.decision == "ok":
            return Check("orientation", Status.PASS, "in-plane orientation as the model expects", frame=self.frame,
                         value=self.transpose_margin)
        if self.decision == "corrected":
            reason = (f"{self.reason} It was segmented as {self.best_variant.name} and the labels mapped back: "
                      "check the image orientation in the source")
        else:
            reason = self.reason
        return Check("orientation", Status.REVIEW, reason, frame=self.frame, value=self.transpose_margin)


def _scores(probs: torch.Tensor, voxel_ml: float) -> tuple[float, float, float]:
    """Anatomy cosine, mean confidence over the heart and LV volume of probabilities ``(slices, classes, H, W)``."""
    labels = class_argmax(probs, 1).numpy()
    heart = labels > 0
    confidence = float(probs.max(1).values.numpy()[heart].mean()) if heart.any() else float("nan")
    lv, rv = np.argwhere(labels == 3)[:, 1:], np.argwhere(labels == 1)[:, 1:]
    if len(lv) == 0 or len(rv) == 0:
        return float("nan"), confidence, len(lv) * voxel_ml
    direction = lv.mean(0) - rv.mean(0)
    norm = float(np.linalg.norm(direction))
    anatomy = float(direction @ np.asarray(CANONICAL_RV_TO_LV) / norm) if norm > 0 else float("nan")
    return anatomy, confidence, len(lv) * voxel_ml


def check_orientation(study: CineStudy, model: Segmenter, frame: int | None = None) -> OrientationCheck:
    """Score the eight in-plane orientations of one frame of ``study`` and decide whether it is transposed.

    Parameters
    ----------
    study : CineStudy
    model : SegmentationModel or OnnxSegmentationModel
    frame : int, optional
        Frame to check (default: ED when known, else the first frame).

    Returns
    -------
    OrientationCheck
        The decision: ``"corrected"`` means the study looks transposed or
        rotated by 90 degrees and segmenting it in variant ``best`` is advised.

    Notes
    -----
    The model grid is isotropic (square pixels), so a transposed slice is
    still a valid input. Only the :data:`CHECK_SLICES` middle slices are
    scored (the mid-ventricle, where the RV and LV are both large and their
    axis is clearest): eight single-view forward passes of a few full-field
    slices, about a third of a second for the bundled model on this project's
    2-core machine.
    """
    config = model.config
    forward = model.forward_fn()
    if frame is None:
        ed = study.metadata.ed_frame
        frame = ed if ed in study.frame_numbers else study.frame_numbers[0]
    prepared = prepare_study(dataclasses.replace(study, labels=None), config, frames=[frame])
    slices = prepared.image[0]
    if slices.shape[0] > CHECK_SLICES:
        start = (slices.shape[0] - CHECK_SLICES) // 2
        slices = slices[start : start + CHECK_SLICES]
    voxel_ml = float(np.prod(config.spacing_mm)) * prepared.geometry.slice_spacing_mm / 1000.0
    anatomy, confidence, lv_ml = [], [], []
    with torch.inference_mode():
        for variant in VARIANTS:
            x = torch.from_numpy(np.ascontiguousarray(apply_variant(slices, variant)))
            probs = predict_probabilities(x, forward, config.divisor, ((),), context=config.context_slices)
            a, c, v = _scores(probs, voxel_ml)
            anatomy.append(a)
            confidence.append(c)
            lv_ml.append(v)
    scores = np.nan_to_num(np.asarray(anatomy), nan=-np.inf)
    best = int(np.argmax(scores))
    plain, transposed = float(scores[:4].max()), float(scores[4:].max())
    finite = bool(np.isfinite(scores[best]) and np.isfinite(scores[0]))
    margin = float(scores[best] - scores[0]) if finite else float("nan")
    transpose_margin = transposed - plain if np.isfinite(plain) and np.isfinite(transposed) else float("nan")
    if not np.isfinite(transpose_margin):
        decision, reason = "ambiguous", "orientation cannot be checked: the network finds no RV or no LV"
        transpose_margin = float("nan")
        margin = float("nan")
    elif transpose_margin >= TRANSPOSE_MARGIN:
        t_best = 4 + int(np.argmax(scores[4:]))
        if confidence[t_best] < confidence[0] - CONFIDENCE_DROP:
            decision = "ambiguous"
            reason = (
                f"the in-plane axes may be transposed ({VARIANTS[t_best].name} fits the expected anatomy better by "
                f"{transpose_margin:.2f}) but the network is less confident in that orientation"
            )
        else:
            decision = "corrected"
            reason = (
                f"the in-plane axes look transposed or rotated by 90 degrees: the RV-LV axis fits the expected "
                f"anatomy in the '{VARIANTS[best].name}' orientation (score {scores[best]:.2f}) much better than "
                f"as stored ({plain:.2f}); swap rows and columns of the image, or segment with orientation='correct'"
            )
    elif transpose_margin > AMBIGUOUS_MARGIN:
        decision = "ambiguous"
        reason = f"the RV-LV axis is close to diagonal: stored and transposed orientations fit about equally ({plain:.2f} vs {transposed:.2f})"
    else:
        decision, reason = (
            "ok",
            f"in-plane orientation as expected (RV-LV axis score {plain:.2f}, transposed {transposed:.2f})",
        )
    return OrientationCheck(
        tuple(v.name for v in VARIANTS),
        tuple(anatomy),
        tuple(confidence),
        tuple(lv_ml),
        best,
        margin,
        transpose_margin,
        decision,
        reason,
        int(frame),
    )


def segment_oriented(
    study: CineStudy, model: Segmenter, mode: str = "correct", **options: object
) -> tuple[object, OrientationCheck | None]:
    """Segment ``study`` with the orientation safety ``mode``; return the result and the check (None when ``"off"``).

    ``mode`` is ``"off"`` (no check), ``"check"`` (raise
    :class:`~opencmr.errors.InputError` when the study looks transposed) or
    ``"correct"`` (segment it in the orientation the network expects and map
    the result back). ``options`` are :func:`opencmr.segment.inference.segment_study`'s;
    the result is what it returns (labels, or labels and uncertainty maps).
    """
    from opencmr.errors import InputError
    from opencmr.segment.inference import segment_study

    if orientation_mode(mode) == "off":
        return segment_study(study, model, **options), None  # type: ignore[call-overload]
    check = check_orientation(study, model)
    if check.decision == "corrected" and mode == "check":
        raise InputError(study.metadata.source or "study", check.reason)
    return segment_as_checked(study, model, check, **options), check


def segment_as_checked(study: CineStudy, model: Segmenter, check: OrientationCheck | None, **options: object) -> object:
    """Segment ``study`` the way an earlier :func:`check_orientation` decided (more frames, other options).

    Reoriented when the check ``"corrected"`` the study, else as it is (also
    when ``check`` is None: no check was made). ``options`` and the result are
    :func:`opencmr.segment.inference.segment_study`'s.
    """
    from opencmr.segment.inference import segment_reoriented, segment_study

    if check is None or check.decision != "corrected":
        return segment_study(study, model, **options)  # type: ignore[call-overload]
    return segment_reoriented(study, model, check.best_variant, **options)
