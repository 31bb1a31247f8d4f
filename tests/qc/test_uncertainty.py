from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from opencmr.errors import OutputError
from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.phantom import PhantomConfig, make_phantom
from opencmr.qc.uncertainty import (
    UncertaintyMaps,
    boundary_region,
    uncertainty_scores,
    write_uncertainty_nifti,
)
from opencmr.segment.inference import predict_probabilities, predict_with_disagreement, segment_study
from opencmr.segment.model import load_model
from tests.segment.conftest import small_phantom, tiny_model


@pytest.fixture(scope="module")
def tiny_study() -> CineStudy:
    return small_phantom(n_frames=3).study


@pytest.mark.parametrize("tta", [True, False])
def test_labels_are_the_same_with_uncertainty_and_maps_lie_on_the_study_grid(tiny_study: CineStudy, tta: bool) -> None:
    model = tiny_model()
    plain = segment_study(tiny_study, model, tta=tta, frames=[0, 2])
    labels, maps = segment_study(tiny_study, model, tta=tta, frames=[0, 2], return_uncertainty=True)
    np.testing.assert_array_equal(labels.data, plain.data)
    assert isinstance(maps, UncertaintyMaps) and maps.frame_numbers == (0, 2) == labels.frame_numbers
    assert maps.n_views == (4 if tta else 1)
    np.testing.assert_array_equal(maps.geometry.affine, tiny_study.geometry.affine)
    for data in (maps.entropy, maps.disagreement):
        assert data.shape == (2, *tiny_study.geometry.shape) and data.dtype == np.float32
        assert np.all((data >= 0) & (data <= 1))
        assert not data.flags.writeable
    assert maps.entropy.max() > 0.1  # an untrained network is far from certain
    if not tta:
        assert not maps.disagreement.any()  # one view cannot disagree with itself


def test_disagreement_counts_the_views_that_differ_from_the_consensus() -> None:
    def by_column(batch: torch.Tensor) -> torch.Tensor:
        # class 1 on the left half, class 0 on the right, whatever the input: not equivariant to a column flip
        cols = torch.arange(batch.shape[-1], dtype=torch.float32)
        left = (cols < batch.shape[-1] / 2).float().expand(batch.shape[0], 1, batch.shape[-2], -1)
        return 5.0 * torch.cat([1 - left, left, torch.zeros_like(left), torch.zeros_like(left)], 1)

    slices = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    flips = ((), (-2,), (-1,))  # the row flip agrees with the unflipped view, the column flip does not
    probs, disagreement = predict_with_disagreement(slices, by_column, 4, flips)
    torch.testing.assert_close(probs, predict_probabilities(slices, by_column, 4, flips), rtol=0, atol=0)
    assert disagreement.shape == (3, 16, 16)
    torch.testing.assert_close(disagreement, torch.full((3, 16, 16), 1 / 3))
    _, single = predict_with_disagreement(slices, by_column, 4, ((),))
    assert not single.any()


def _square_labels(shape: tuple[int, int, int] = (2, 12, 12)) -> LabelMap:
    data = np.zeros((2, *shape), np.uint8)
    data[:, 0, 4:8, 4:8] = 3  # a 4 x 4 LV in slice 0 of both frames, nothing else
    return LabelMap(data, Geometry(np.diag([1.5, 1.5, 8.0, 1.0]), shape), (0, 5))


def test_scores_average_the_entropy_over_the_dilated_structure() -> None:
    labels = _square_labels()
    entropy = np.zeros(labels.data.shape, np.float32)
    entropy[0] = 0.1
    entropy[1] = 0.4
    entropy[1, 0, 3, 3:9] = 1.0  # 6 of the 36 voxels of frame 5's dilated LV (6 x 6)
    entropy[:, 1] = 0.9  # an empty slice does not count
    maps = UncertaintyMaps(entropy, np.zeros_like(entropy), labels.geometry, labels.frame_numbers, n_views=4)
    scores = uncertainty_scores(labels, maps, threshold=0.3)
    assert boundary_region(labels.data, 3)[0, 0].sum() == 36
    frame5 = (30 * 0.4 + 6 * 1.0) / 36
    np.testing.assert_allclose(scores.structure_frame["lv"], [0.1, frame5], rtol=1e-6)
    np.testing.assert_allclose(scores.structures["lv"], (0.1 + frame5) / 2, rtol=1e-6)
    np.testing.assert_allclose(scores.structure_slice["lv"][:, 0], [0.1, frame5], rtol=1e-6)
    assert np.isnan(scores.structure_slice["lv"][:, 1]).all()
    assert scores.structure_uncertain_fraction["lv"] == pytest.approx(36 / 72)
    assert np.isnan(scores.structures["rv"]) and np.isnan(scores.structure_uncertain_fraction["myo"])
    assert scores.study == pytest.approx(scores.structures["lv"])  # the heart is the LV alone here
    assert scores.disagreement == 0.0
    out = json.loads(json.dumps(scores.to_dict(), allow_nan=False))
    assert out["structures"]["rv"]["entropy"] is None
    assert out["structures"]["lv"]["slices"][1] == [pytest.approx(frame5, abs=1e-6), None]
    assert out["frame_numbers"] == [0, 5] and out["n_views"] == 4 and out["threshold"] == 0.3


def test_scores_and_maps_refuse_mismatched_inputs() -> None:
    labels = _square_labels()
    zeros = np.zeros(labels.data.shape, np.float32)
    with pytest.raises(ValueError, match="frames"):
        uncertainty_scores(labels, UncertaintyMaps(zeros, zeros, labels.geometry, (0, 1)))
    with pytest.raises(ValueError, match="entropy must be"):
        UncertaintyMaps(zeros[:1], zeros, labels.geometry, (0, 5))


def test_entropy_nifti_round_trips(tmp_path: Path) -> None:
    labels = _square_labels()
    entropy = np.random.default_rng(0).random(labels.data.shape, dtype=np.float32)
    maps = UncertaintyMaps(entropy, np.zeros_like(entropy), labels.geometry, labels.frame_numbers)
    path = write_uncertainty_nifti(maps, tmp_path / "entropy.nii.gz")
    img = nib.load(str(path))
    assert img.shape == (12, 12, 2, 2) and img.get_data_dtype() == np.float32  # (x, y, slice, frame)
    np.testing.assert_allclose(img.affine, labels.geometry.affine)
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(3, 2, 1, 0), entropy)
    with pytest.raises(OutputError, match="already exists"):
        write_uncertainty_nifti(maps, path)
    one = UncertaintyMaps(entropy[:1], entropy[:1], labels.geometry, (0,))
    assert nib.load(str(write_uncertainty_nifti(one, path, overwrite=True))).shape == (12, 12, 2, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entropy.nii.gz"]  # no temporary file left


# -- the bundled model on a phantom: 2 frames of 6 slices, about a second per run


@pytest.fixture(scope="module")
def bundled() -> tuple[object, CineStudy, LabelMap, UncertaintyMaps]:
    model = load_model()
    study = make_phantom(PhantomConfig(n_frames=2, n_slices=6, seed=1)).study
    labels, maps = segment_study(study, model, return_uncertainty=True)
    return model, study, labels, maps


def test_bundled_model_is_uncertain_at_boundaries_not_inside_or_far_away(bundled) -> None:
    _, _, labels, maps = bundled
    in_plane = np.ones((1, 1, 3, 3), bool)
    edges = np.zeros(labels.data.shape, bool)
    for value in (1, 2, 3):
        mask = labels.data == value
        edges |= mask & ~ndimage.binary_erosion(mask, in_plane)
    lv_core = ndimage.binary_erosion(labels.data == 3, in_plane, iterations=3)
    far = ~ndimage.binary_dilation(labels.data > 0, in_plane, iterations=15)
    assert lv_core.sum() > 100 and far.sum() > 1000
    boundary, core, background = (float(maps.entropy[m].mean()) for m in (edges, lv_core, far))
    assert boundary > 0.1
    assert boundary > 20 * core and boundary > 20 * background
    assert 0 < maps.disagreement[edges].mean() and maps.disagreement[far].max() < 0.5
    scores = uncertainty_scores(labels, maps)
    assert scores.structures["myo"] > scores.structures["lv"]  # the thin myocardium is mostly boundary


def test_heavy_noise_raises_the_study_score(bundled) -> None:
    model, study, labels, maps = bundled
    clean = uncertainty_scores(labels, maps)
    noise = np.random.default_rng(0).standard_normal(study.image.shape).astype(np.float32)
    noisy = dataclasses.replace(study, image=study.image + 0.4 * float(study.image.max()) * noise, labels=None)
    degraded = uncertainty_scores(*segment_study(noisy, model, return_uncertainty=True))
    assert degraded.study > clean.study + 0.05
    assert degraded.uncertain_fraction > clean.uncertain_fraction
    assert degraded.disagreement > clean.disagreement
