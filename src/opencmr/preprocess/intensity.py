"""Robust intensity normalisation, one implementation for every model path.

Scanner images arrive with raw values (hundreds to thousands, 12--16 bit),
vendor-specific scaling and a few very bright voxels (flow artefacts, fat);
the shared ACDC data is already scaled to [0, 1]. Mapping the
``lower``--``upper`` percentiles of each study to 0--1 and clipping makes the
model's input independent of linear intensity changes ``a * x + b`` (``a >
0``), which a test checks.

References
----------
L. G. Nyul, J. K. Udupa, X. Zhang, "New variants of a method of MRI scale
standardization", IEEE TMI 19(2), 2000, doi:10.1109/42.836373.
F. Isensee et al., "nnU-Net", Nature Methods 18, 2021 (percentile clipping
of non-CT images), doi:10.1038/s41592-020-01008-z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opencmr.io.study import CineStudy, LabelMap

__all__ = ["IntensityNormalization", "normalize_intensity"]


@dataclass(frozen=True)
class IntensityNormalization:
    """Percentile clipping and rescaling to [0, 1].

    Parameters
    ----------
    lower_percentile, upper_percentile : float
        Percentiles of the study's intensities mapped to 0 and 1.
    per_frame : bool
        Compute the percentiles per frame instead of over the whole cine
        (the default keeps the brightness of all frames consistent).
    """

    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    per_frame: bool = False

    def __post_init__(self) -> None:
        _check_percentiles(self.lower_percentile, self.upper_percentile)

    def __call__(self, image: np.ndarray | CineStudy) -> np.ndarray:
        """Normalise an image array (any shape) or a study's ``(frames, slices, rows, cols)`` image."""
        return normalize_intensity(image, self.lower_percentile, self.upper_percentile, per_frame=self.per_frame)


def _check_percentiles(lower: float, upper: float) -> None:
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"need 0 <= lower < upper <= 100, got {lower} and {upper}")


def normalize_intensity(
    image: np.ndarray | CineStudy,
    lower_percentile: float = 0.5,
    upper_percentile: float = 99.5,
    *,
    per_frame: bool = False,
) -> np.ndarray:
    """Map the ``lower``/``upper`` percentiles to 0/1 and clip (float32 result).

    Parameters
    ----------
    image : numpy.ndarray or CineStudy
        Intensities; label maps are refused.
    lower_percentile, upper_percentile : float
        Percentiles (0--100) that become 0 and 1.
    per_frame : bool
        For a 4D ``(frames, ...)`` array or a study, normalise each frame on its own.

    Returns
    -------
    numpy.ndarray
        float32 array of the input's shape, in [0, 1]. A constant image gives zeros.

    Raises
    ------
    TypeError
        If given a :class:`~opencmr.io.study.LabelMap` (labels are never intensity-transformed).
    ValueError
        If the image contains NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1000, dtype=float).reshape(10, 100)
    >>> y = normalize_intensity(3.0 * x + 200.0)
    >>> bool(np.allclose(y, normalize_intensity(x), atol=1e-6))
    True
    >>> float(y.min()), float(y.max())
    (0.0, 1.0)
    """
    if isinstance(image, LabelMap):
        raise TypeError("label maps cannot be intensity-normalised")
    _check_percentiles(lower_percentile, upper_percentile)
    array = image.image if isinstance(image, CineStudy) else np.asarray(image)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"expected a real-valued intensity array, got dtype {array.dtype}")
    if per_frame:
        if array.ndim < 2:
            raise ValueError("per_frame needs an array with a leading frame axis")
        return np.stack([normalize_intensity(frame, lower_percentile, upper_percentile) for frame in array])
    data = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(data)):
        raise ValueError("image contains NaN or infinite values")
    if data.size == 0:
        return data.copy()
    low, high = np.percentile(data, [lower_percentile, upper_percentile])
    if high <= low:
        return np.zeros_like(data, dtype=np.float32)
    out = (data - np.float32(low)) / np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
