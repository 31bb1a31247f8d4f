"""Perturbations: shapes and labels stay consistent, severity grows, seeds replay, zero is identity."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from opencmr.io.study import CineStudy
from opencmr.labels import LABEL_VALUES
from opencmr.phantom import PhantomConfig, make_phantom
from opencmr.qc.perturb import (
    LEVELS,
    PERTURBATIONS,
    perturb,
    perturb_flip,
    perturb_intensity,
    perturb_partial_coverage,
    perturb_rotation,
)

# intensity perturbations (image changes, labels identical)
INTENSITY = sorted(name for name, p in PERTURBATIONS.items() if not p.geometric)


@functools.cache
def _study() -> CineStudy:
    return make_phantom(PhantomConfig(n_frames=2, n_slices=6, matrix=(64, 56), seed=1)).study


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_registry_has_every_perturbation_at_every_level() -> None:
    expected = {
        "noise", "rician_noise", "bias_field", "gamma", "intensity_scale", "blur", "low_resolution",
        "thick_slices", "rotation", "flip", "partial_coverage", "ghosting",
    }  # fmt: skip
    assert set(PERTURBATIONS) == expected
    assert LEVELS == ("mild", "moderate", "severe")
    for entry in PERTURBATIONS.values():
        assert [level.value for level in entry.levels] == list(LEVELS)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
@pytest.mark.parametrize("level", LEVELS)
def test_shapes_consistent_and_labels_valid(name: str, level: str) -> None:
    study = _study()
    out = perturb(study, name, level, _rng())
    assert out is not study
    assert out.image.dtype == np.float32 and np.all(np.isfinite(out.image))
    assert out.labels is not None
    assert out.image.shape[1:] == out.geometry.shape == out.labels.data.shape[1:]
    assert out.image.shape[0] == study.image.shape[0] and out.image.shape[2:] == study.image.shape[2:]
    assert out.labels.geometry.same_grid(out.geometry)
    assert np.issubdtype(out.labels.data.dtype, np.integer)
    assert set(np.unique(out.labels.data).tolist()) <= LABEL_VALUES
    assert out.labels.frame_numbers == study.labels.frame_numbers
    # the input is untouched
    assert np.array_equal(study.image, _study().image)


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_perturbations_keep_labels(name: str) -> None:
    study = _study()
    out = perturb(study, name, "moderate", _rng())
    assert np.array_equal(out.labels.data, study.labels.data)
    assert not np.allclose(out.image, study.image)


@pytest.mark.parametrize("name", sorted(set(PERTURBATIONS) - {"partial_coverage", "flip"}))
def test_change_grows_with_severity(name: str) -> None:
    study = _study()
    image = np.asarray(study.image, np.float64)
    change = [float(np.mean(np.abs(perturb(study, name, level, _rng()).image - image))) for level in LEVELS]
    assert change[0] > 0
    assert change[0] < change[1] < change[2], change


def test_partial_coverage_drops_more_slices_with_severity() -> None:
    counts = [perturb(_study(), "partial_coverage", level, _rng()).n_slices for level in LEVELS]
    assert _study().n_slices > counts[0] >= counts[1] >= counts[2] >= 1
    assert counts[0] > counts[2]


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_seeded_reproducibility(name: str) -> None:
    a = perturb(_study(), name, "severe", np.random.default_rng(3))
    b = perturb(_study(), name, "severe", np.random.default_rng(3))
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.labels.data, b.labels.data)
    assert np.allclose(a.geometry.affine, b.geometry.affine)


def test_noise_differs_between_seeds() -> None:
    a = perturb(_study(), "noise", "mild", np.random.default_rng(1))
    b = perturb(_study(), "noise", "mild", np.random.default_rng(2))
    assert not np.array_equal(a.image, b.image)


def test_zero_rotation_and_empty_flip_are_identity() -> None:
    study = _study()
    for out in (perturb_rotation(study, 0.0), perturb_rotation(study, 360.0), perturb_flip(study, ())):
        assert np.array_equal(out.image, study.image)
        assert np.array_equal(out.labels.data, study.labels.data)


def test_flip_moves_labels_with_image() -> None:
    study = _study()
    out = perturb_flip(study, ("rows", "cols"))
    assert np.array_equal(out.image, study.image[:, :, ::-1, ::-1])
    assert np.array_equal(out.labels.data, study.labels.data[:, :, ::-1, ::-1])
    twice = perturb_flip(out, ("rows", "cols"))
    assert np.array_equal(twice.image, study.image)


def test_rotation_moves_labels_with_image() -> None:
    study = _study()
    out = perturb_rotation(study, 90.0)
    # a square-ish grid rotated by 90 degrees: the label's centroid turns about the centre
    lv = study.labels.data == 3
    moved = out.labels.data == 3
    assert abs(int(moved.sum()) - int(lv.sum())) < 0.1 * lv.sum()
    assert not np.array_equal(moved, lv)
    # labels rotated back (nearest neighbour) overlap the original well
    back = perturb_rotation(out, -90.0).labels.data == 3
    dice = 2 * (back & lv).sum() / (back.sum() + lv.sum())
    assert dice > 0.9


def test_partial_coverage_removes_slices_from_image_and_labels() -> None:
    study = _study()
    for end in ("base", "apex"):
        out = perturb_partial_coverage(study, 2, end)
        assert out.n_slices == study.n_slices - 2
        assert out.labels.data.shape[1] == out.n_slices
        # base is slice 0 in the phantom: dropping it keeps slices 2.., dropping the apex keeps ..-2
        kept = slice(2, None) if end == "base" else slice(None, -2)
        assert np.array_equal(out.image, study.image[:, kept])
        assert np.array_equal(out.labels.data, study.labels.data[:, kept])
        # remaining slices keep their patient-space position
        first = study.geometry.affine @ np.array([0, 0, kept.start or 0, 1.0])
        assert np.allclose(out.geometry.affine @ np.array([0, 0, 0, 1.0]), first)


def test_intensity_scale_offset_leaves_labels_and_is_affine() -> None:
    study = _study()
    out = perturb_intensity(study, 10.0, 100.0)
    assert np.array_equal(out.labels.data, study.labels.data)
    assert np.allclose(out.image, study.image * 10.0 + 100.0, rtol=1e-5)


def test_unknown_names_and_levels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(_study(), "sharpen", "mild", _rng())
    with pytest.raises(ValueError, match="unknown level"):
        perturb(_study(), "noise", "extreme", _rng())
