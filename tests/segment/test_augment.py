from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from opencmr.segment.augment import AugmentationConfig, augment_batch, intensity_augment, spatial_augment
from tests.conftest import blob_labels

#: every augmentation always on, so each draw matters
ALWAYS = AugmentationConfig(
    p_rotation=1.0, p_scale=1.0, p_flip=0.5, p_elastic=1.0, p_bias_field=1.0, p_gamma=1.0, p_contrast=1.0,
    p_scale_intensity=1.0, p_blur=1.0, p_low_resolution=1.0, p_noise=1.0, p_renormalise=0.5,
)


def batch(n: int = 6, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Blob label maps (shifted per sample) and noisy images made from them."""
    labels = np.stack([blob_labels((size, size, 1), shift=k - n // 2)[:, :, 0] for k in range(n)]).astype(np.int64)
    rng = np.random.default_rng(0)
    images = (labels / 3.0 * 0.8 + 0.1 + 0.05 * rng.standard_normal(labels.shape)).clip(0, 1)
    return torch.tensor(images, dtype=torch.float32)[:, None], torch.tensor(labels)


def run(seed: int, config: AugmentationConfig = ALWAYS) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = batch()
    return augment_batch(images, labels, config, torch.Generator().manual_seed(seed))


def test_shapes_dtypes_and_ranges() -> None:
    images, labels = batch()
    for config in (ALWAYS, AugmentationConfig()):
        out_images, out_labels = augment_batch(images, labels, config, torch.Generator().manual_seed(1))
        assert out_images.shape == images.shape and out_images.dtype == torch.float32
        assert out_labels.shape == labels.shape and out_labels.dtype == torch.int64
        assert float(out_images.min()) >= 0.0 and float(out_images.max()) <= 1.0
        assert set(out_labels.unique().tolist()) <= set(labels.unique().tolist())
        assert out_labels.bool().any()
    # a raw image far outside [0, 1] is clipped back into it
    hot = intensity_augment(images * 5 - 2, AugmentationConfig(p_renormalise=0.0), torch.Generator().manual_seed(2))
    assert float(hot.min()) >= 0.0 and float(hot.max()) <= 1.0


def test_same_seed_same_output_other_seed_other_output() -> None:
    a_images, a_labels = run(3)
    b_images, b_labels = run(3)
    torch.testing.assert_close(a_images, b_images, rtol=0, atol=0)
    torch.testing.assert_close(a_labels, b_labels, rtol=0, atol=0)
    c_images, c_labels = run(4)
    assert not torch.equal(a_images, c_images)
    assert not torch.equal(a_labels, c_labels)


def test_nothing_changes_when_every_probability_is_zero() -> None:
    off = AugmentationConfig(**{f.name: 0.0 for f in dataclasses.fields(AugmentationConfig) if f.name.startswith("p_")})
    images, labels = batch()
    out_images, out_labels = augment_batch(images, labels, off, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out_images, images, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_labels, labels, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spatial_augment_keeps_image_and_labels_aligned(seed: int) -> None:
    _, labels = batch()
    images = labels[:, None].float()  # the image is the label map itself
    out_images, out_labels = spatial_augment(images, labels, ALWAYS, torch.Generator().manual_seed(seed))
    assert not torch.equal(out_labels, labels)  # something did move
    mismatch = (out_images[:, 0].round().long() != out_labels).float().mean()
    foreground = (out_labels > 0).float().mean()
    assert mismatch < 0.2 * foreground  # only boundary pixels, where linear and nearest interpolation differ
    # the check has teeth: labels of another sample (different transform and shift) do not align
    other = (out_images[:, 0].round().long() != out_labels.roll(1, dims=0)).float().mean()
    assert other > 4 * mismatch
