"""Configuration of a segmentation model: how to preprocess for it and how it is built.

A :class:`SegmentationConfig` is saved inside every model file, so a model
file alone says how images must be prepared for it (the lesson of nnU-Net's
plans file: preprocessing belongs to the model, not to the caller).

References
----------
F. Isensee et al., "nnU-Net: a self-configuring method for deep
learning-based biomedical image segmentation", Nature Methods 18, 2021,
doi:10.1038/s41592-020-01008-z.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["SegmentationConfig"]


@dataclass(frozen=True)
class SegmentationConfig:
    """Preprocessing and architecture of a 2D short-axis U-Net.

    Parameters
    ----------
    spacing_mm : tuple of float
        In-plane ``(row, col)`` spacing every slice is resampled to before
        the network sees it.
    lower_percentile, upper_percentile : float
        Intensity percentiles of the whole study mapped to 0 and 1
        (:func:`opencmr.preprocess.normalize_intensity`).
    patch_size : tuple of int
        Training crop ``(rows, cols)`` at ``spacing_mm``; inference runs on
        the whole field of view, then on a crop around the heart.
    channels, strides, num_res_units, norm, dropout
        MONAI :class:`~monai.networks.nets.UNet` arguments.
    num_classes : int
        Output classes including background (ACDC convention: 0 background,
        1 RV blood pool, 2 LV myocardium, 3 LV blood pool).
    heart_margin_mm : float
        Margin added around the heart found on the localising pass before
        cropping the remaining frames.
    context_slices : int
        Neighbouring slices on each side given to the network as extra input
        channels (2.5D; 0 is a plain 2D network). Slices beyond the stack
        repeat the edge slice (:func:`opencmr.segment.preprocess.stack_context`).
    """

    spacing_mm: tuple[float, float] = (1.5, 1.5)
    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    patch_size: tuple[int, int] = (144, 144)
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 2
    norm: str = "instance"
    dropout: float = 0.0
    num_classes: int = 4
    heart_margin_mm: float = 30.0
    context_slices: int = 0

    def __post_init__(self) -> None:
        if len(self.spacing_mm) != 2 or min(self.spacing_mm) <= 0:
            raise ValueError(f"spacing_mm must be two positive numbers, got {self.spacing_mm}")
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides must have one entry fewer than channels")
        if int(self.context_slices) < 0:
            raise ValueError(f"context_slices must be 0 or more, got {self.context_slices}")
        if any(p % self.divisor for p in self.patch_size):
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of {self.divisor}")
        object.__setattr__(self, "spacing_mm", tuple(float(v) for v in self.spacing_mm))
        object.__setattr__(self, "patch_size", tuple(int(v) for v in self.patch_size))
        object.__setattr__(self, "channels", tuple(int(v) for v in self.channels))
        object.__setattr__(self, "strides", tuple(int(v) for v in self.strides))

    @property
    def in_channels(self) -> int:
        """Input channels of the network: the slice and its ``context_slices`` neighbours on each side."""
        return 1 + 2 * int(self.context_slices)

    @property
    def divisor(self) -> int:
        """Input sizes must be multiples of this (product of the strides)."""
        out = 1
        for s in self.strides:
            out *= int(s)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer model file)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown segmentation settings {sorted(unknown)}: the model file needs a newer opencmr")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
