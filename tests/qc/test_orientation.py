from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from opencmr.errors import InputError
from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.phantom import PhantomConfig, make_phantom
from opencmr.qc.orientation import VARIANTS, apply_variant, check_orientation, invert_variant, reorient_study
from opencmr.segment.inference import segment_study
from opencmr.segment.model import load_model


def transposed(study: CineStudy) -> CineStudy:
    """Rows and columns swapped, with the affine's first two columns swapped: same anatomy in patient space."""
    affine = np.array(study.geometry.affine)
    affine[:, [0, 1]] = affine[:, [1, 0]]
    n_slices, rows, cols = study.geometry.shape
    geometry = Geometry(affine, (n_slices, cols, rows), study.geometry.slice_thickness_mm)
    assert study.labels is not None
    labels = LabelMap(np.swapaxes(study.labels.data, -1, -2).copy(), geometry, study.labels.frame_numbers)
    return dataclasses.replace(study, image=np.swapaxes(study.image, -1, -2).copy(), geometry=geometry, labels=labels)


def flipped(study: CineStudy, axis: int) -> CineStudy:
    assert study.labels is not None
    image = np.flip(study.image, axis).copy()
    return dataclasses.replace(
        study, image=image, labels=dataclasses.replace(study.labels, data=np.flip(study.labels.data, axis).copy())
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        np.mean([2 * ((a == k) & (b == k)).sum() / max((a == k).sum() + (b == k).sum(), 1) for k in (1, 2, 3)])
    )


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_model()


@pytest.fixture(scope="module")
def study() -> CineStudy:
    return make_phantom(PhantomConfig(n_frames=2, n_slices=6, seed=1)).study


def test_variants_are_exact_permutations_and_keep_patient_space(study: CineStudy) -> None:
    x = np.arange(2 * 3 * 5 * 7).reshape(2, 3, 5, 7)
    for variant in VARIANTS:
        np.testing.assert_array_equal(invert_variant(apply_variant(x, variant), variant), x)
        moved = reorient_study(study, variant)
        # voxel (slice 2, row 10, col 30) of the study is where apply_variant puts it, at the same position in mm
        index = np.zeros(study.geometry.shape, bool)
        index[2, 10, 30] = True
        s, r, c = np.argwhere(apply_variant(index, variant))[0]
        before = study.geometry.affine @ [30, 10, 2, 1]
        after = moved.geometry.affine @ [c, r, s, 1]
        np.testing.assert_allclose(after, before, atol=1e-9)


def test_identity_wins_on_a_normal_study(study: CineStudy, model) -> None:  # type: ignore[no-untyped-def]
    check = check_orientation(study, model)
    assert check.decision == "ok" and not check.best_variant.transpose
    assert check.transpose_margin < -0.3
    assert check.anatomy[0] > 0.9


def test_transposed_study_is_detected_and_corrected(study: CineStudy, model) -> None:  # type: ignore[no-untyped-def]
    swapped = transposed(study)
    check = check_orientation(swapped, model)
    assert check.decision == "corrected" and check.best_variant.name == "transpose"
    assert check.transpose_margin > 0.3 and check.margin > 0.3
    ed = study.metadata.ed_frame if study.metadata.ed_frame is not None else study.frame_numbers[0]
    assert study.labels is not None and swapped.labels is not None
    normal = dice(segment_study(study, model, frames=[ed]).frame(ed), study.labels.frame(ed))
    labels, maps = segment_study(swapped, model, frames=[ed], orientation="correct", return_uncertainty=True)
    assert labels.geometry.same_grid(swapped.geometry) and maps.geometry.same_grid(swapped.geometry)
    assert maps.entropy.shape == labels.data.shape
    corrected = dice(labels.frame(ed), swapped.labels.frame(ed))
    assert normal > 0.8 and corrected > normal - 0.03


def test_check_mode_raises_on_a_transposed_study(study: CineStudy, model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="transposed"):
        segment_study(transposed(study), model, frames=[study.frame_numbers[0]], tta=False, orientation="check")


@pytest.mark.parametrize("axis", [-1, -2])
def test_flipped_studies_are_not_flagged(study: CineStudy, model, axis: int) -> None:  # type: ignore[no-untyped-def]
    check = check_orientation(flipped(study, axis), model)
    assert check.decision == "ok" and not check.best_variant.transpose


def test_off_is_unchanged_and_bad_mode_is_refused(study: CineStudy, model) -> None:  # type: ignore[no-untyped-def]
    frames = [study.frame_numbers[0]]
    plain = segment_study(study, model, frames=frames, tta=False)
    np.testing.assert_array_equal(
        segment_study(study, model, frames=frames, tta=False, orientation="check").data, plain.data
    )
    np.testing.assert_array_equal(
        segment_study(study, model, frames=frames, tta=False, orientation="correct").data, plain.data
    )
    with pytest.raises(ValueError, match="orientation"):
        segment_study(study, model, frames=frames, orientation="auto")  # type: ignore[call-overload]
