from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.preprocess.resample import in_plane_grid, resample_to_grid
from opencmr.segment.preprocess import pad_to_multiple, prepare_study, resample_slices, stack_context, to_source_grid
from tests.conftest import blob_labels, oblique_affine
from tests.segment.conftest import TINY


def random_study(spacing: tuple[float, float] = (1.4, 1.25)) -> CineStudy:
    rng = np.random.default_rng(7)
    geometry = Geometry(oblique_affine((spacing[1], spacing[0], 8.0)), (3, 40, 48))
    return CineStudy(rng.random((2, 3, 40, 48)).astype(np.float32), geometry)


def one_hot(labels: np.ndarray, classes: int = 4) -> np.ndarray:
    return (labels[None] == np.arange(classes)[:, None, None, None]).astype(np.float32)


@pytest.mark.parametrize("spacing", [(2.0, 2.0), (1.0, 0.9), (1.7, 2.3)])
def test_resample_slices_agrees_with_scipy_resampling(spacing: tuple[float, float]) -> None:
    study = random_study()
    target = in_plane_grid(study.geometry, spacing)
    ours = resample_slices(torch.tensor(study.image), study.geometry, target).numpy()
    reference = resample_to_grid(study, target).image
    assert ours.shape == reference.shape == (2, *target.shape)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_resample_slices_refuses_grids_with_other_slices() -> None:
    study = random_study()
    target = in_plane_grid(study.geometry, (2.0, 2.0))
    affine = np.array(target.affine)
    affine[:3, 3] += 3.0 * np.asarray(target.directions)[:, 2]  # slices moved 3 mm along their normal
    with pytest.raises(ValueError, match="different slices"):
        resample_slices(torch.tensor(study.image), study.geometry, Geometry(affine, target.shape))


def test_prepare_study_is_invariant_to_raw_intensity_scaling(study: CineStudy) -> None:
    prepared = prepare_study(study, TINY)
    rescaled = prepare_study(dataclasses.replace(study, image=study.image.astype(np.float64) * 1000 + 300), TINY)
    np.testing.assert_allclose(rescaled.image, prepared.image, atol=1e-5)
    assert prepared.image.dtype == np.float32
    assert 0.0 <= prepared.image.min() and prepared.image.max() <= 1.0 and prepared.image.max() > 0.9


def test_prepare_study_puts_image_and_labels_on_the_model_grid(study: CineStudy) -> None:
    prepared = prepare_study(study, TINY)
    assert prepared.source is study.geometry
    assert prepared.geometry.same_grid(in_plane_grid(study.geometry, TINY.spacing_mm))
    assert prepared.geometry.spacing[1:] == pytest.approx(TINY.spacing_mm)
    assert prepared.image.shape == (study.n_frames, *prepared.geometry.shape)
    assert prepared.label_frames == study.labels.frame_numbers
    assert prepared.labels.shape == (len(prepared.label_frames), *prepared.geometry.shape)
    expected = resample_to_grid(study.labels, prepared.geometry).data
    np.testing.assert_array_equal(prepared.labels, expected)
    assert set(np.unique(prepared.labels).tolist()) == {0, 1, 2, 3}
    unlabelled = prepare_study(dataclasses.replace(study, labels=None), TINY)
    assert unlabelled.labels is None and unlabelled.label_frames == ()
    np.testing.assert_array_equal(unlabelled.image, prepared.image)


def label_volume(geometry: Geometry) -> np.ndarray:
    s, r, c = geometry.shape
    return np.transpose(blob_labels((c, r, s)), (2, 1, 0))


def test_probabilities_go_back_to_the_source_grid_exactly() -> None:
    # 2 mm source, 1 mm model grid: every source pixel keeps a weight of at least 9/16 on itself
    source = Geometry(oblique_affine((2.0, 2.0, 8.0)), (3, 30, 36))
    labels = label_volume(source)
    model_grid = in_plane_grid(source, (1.0, 1.0))
    on_model = resample_slices(torch.from_numpy(one_hot(labels)), source, model_grid).numpy()
    assert on_model.shape == (4, *model_grid.shape)
    back = to_source_grid(on_model, model_grid, source)
    assert back.dtype == np.uint8 and back.shape == source.shape
    np.testing.assert_array_equal(back, labels)


def test_probabilities_round_trip_on_a_scanner_like_grid() -> None:
    source = Geometry(oblique_affine((1.3, 1.45, 10.0)), (3, 40, 48))
    labels = label_volume(source)
    model_grid = in_plane_grid(source, (1.0, 1.0))
    on_model = resample_slices(torch.from_numpy(one_hot(labels)), source, model_grid).numpy()
    back = to_source_grid(on_model, model_grid, source)
    assert back.shape == source.shape
    assert np.mean(back == labels) >= 0.99
    # the LabelMap built from it has exactly the source grid
    assert LabelMap(back[None], source, (0,)).geometry.same_grid(source, atol=0)


def test_pad_to_multiple_pads_centred() -> None:
    image = torch.arange(2 * 30 * 37, dtype=torch.float32).reshape(2, 1, 30, 37) + 1
    padded, pads = pad_to_multiple(image, 8)
    assert padded.shape == (2, 1, 32, 40) and pads == (1, 1, 1, 2)
    torch.testing.assert_close(padded[..., 1:31, 1:38], image)
    assert padded.sum() == image.sum()

    padded, pads = pad_to_multiple(image, 8, minimum=(48, 16))
    assert padded.shape == (2, 1, 48, 40) and pads == (9, 9, 1, 2)
    torch.testing.assert_close(padded[..., 9:39, 1:38], image)

    same, pads = pad_to_multiple(image[..., :16, :32], 16)
    assert pads == (0, 0, 0, 0)
    torch.testing.assert_close(same, image[..., :16, :32])


def test_stack_context_puts_each_slice_between_its_neighbours_repeating_the_edges() -> None:
    volume = torch.arange(4, dtype=torch.float32)[:, None, None].expand(4, 2, 3)
    stacked = stack_context(volume, 1)
    assert stacked.shape == (4, 3, 2, 3)
    np.testing.assert_array_equal(stacked[:, :, 0, 0].numpy(), [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]])
    two = stack_context(volume, 2)[:, :, 1, 2].numpy()
    np.testing.assert_array_equal(two[0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(stack_context(volume[:1], 1)[0, :, 0, 0].numpy(), [0, 0, 0])  # one slice
    np.testing.assert_array_equal(stack_context(volume, 0).numpy(), volume[:, None].numpy())
