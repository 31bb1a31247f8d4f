from __future__ import annotations

import numpy as np
import pytest

from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.preprocess.intensity import IntensityNormalization, normalize_intensity


def raw_like(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.gamma(2.0, 300.0, size=(3, 4, 32, 32))
    image[0, 0, 0, :4] = 40000.0  # a few very bright voxels (flow artefact)
    return image


def test_invariant_to_linear_intensity_changes() -> None:
    image = raw_like()
    reference = normalize_intensity(image / image.max())  # like the shared ACDC data, scaled to [0, 1]
    for scale, offset in [(1.0, 0.0), (0.01, 5.0), (7.3, -120.0)]:
        np.testing.assert_allclose(normalize_intensity(scale * image + offset), reference, atol=2e-5)


def test_output_range_and_outliers_clipped() -> None:
    out = normalize_intensity(raw_like())
    assert out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.mean(out == 1.0) <= 0.01  # only the top 0.5 % saturate


def test_constant_image_gives_zeros() -> None:
    np.testing.assert_array_equal(normalize_intensity(np.full((4, 4), 7.0)), 0.0)


def test_per_frame_normalises_each_frame() -> None:
    image = raw_like()
    image[1] *= 10
    out = IntensityNormalization(per_frame=True)(image)
    for frame in out:
        assert frame.max() == 1.0


def test_study_and_label_map_inputs() -> None:
    geo = Geometry(np.diag([1.5, 1.5, 8.0, 1.0]), (4, 32, 32))
    study = CineStudy(raw_like(), geo)
    np.testing.assert_array_equal(normalize_intensity(study), normalize_intensity(raw_like()))
    labels = LabelMap(np.zeros((1, 4, 32, 32), np.uint8), geo, (0,))
    with pytest.raises(TypeError, match="label maps cannot be intensity-normalised"):
        normalize_intensity(labels)  # type: ignore[arg-type]


def test_rejects_nan_and_bad_percentiles() -> None:
    with pytest.raises(ValueError, match="NaN"):
        normalize_intensity(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="lower < upper"):
        IntensityNormalization(lower_percentile=90, upper_percentile=10)
