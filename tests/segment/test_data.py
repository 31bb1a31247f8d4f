from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opencmr.errors import InputError
from opencmr.io.read import read_study
from opencmr.segment.data import Case, SliceBank, find_cases, load_cases, split_cases
from opencmr.segment.preprocess import prepare_study
from tests.segment.conftest import TINY

GROUPS = ("DCM", "HCM", "MINF", "NOR", "RV")


def folders_and_groups(per_group: int = 4) -> tuple[list[Path], list[str]]:
    folders = [Path(f"patient{i:03d}") for i in range(per_group * len(GROUPS))]
    return folders, [GROUPS[i // per_group] for i in range(len(folders))]


def test_split_is_disjoint_deterministic_and_spread_over_groups() -> None:
    folders, groups = folders_and_groups()
    train, val = split_cases(folders, 5, seed=0, groups=groups)
    assert len(val) == 5 and len(train) == 15
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(folders)
    group_of = dict(zip(folders, groups))
    assert sorted(group_of[f] for f in val) == sorted(GROUPS)  # one patient of each group
    assert split_cases(folders, 5, seed=0, groups=groups) == (train, val)
    others = {tuple(split_cases(folders, 5, seed=s, groups=groups)[1]) for s in range(1, 6)}
    assert len(others | {tuple(val)}) > 1  # the seed matters
    _, val10 = split_cases(folders, 10, seed=3, groups=groups)
    assert sorted(group_of[f] for f in val10) == sorted(GROUPS * 2)


def test_split_without_groups_and_edge_cases() -> None:
    folders, _ = folders_and_groups(per_group=1)
    train, val = split_cases(folders, 2, seed=1)
    assert len(val) == 2 and set(train) | set(val) == set(folders) and set(train).isdisjoint(val)
    assert train == [f for f in folders if f in train]  # the original order is kept
    assert split_cases(folders, 0, seed=1) == (folders, [])
    with pytest.raises(ValueError, match="cannot hold out 5 of 5"):
        split_cases(folders, 5, seed=1)


def test_find_cases_lists_labelled_patient_folders(patients_dir: Path, tmp_path: Path) -> None:
    assert [p.name for p in find_cases(patients_dir)] == ["patient000", "patient001", "patient002"]
    with pytest.raises(InputError, match="is not a folder"):
        find_cases(tmp_path / "absent")
    (tmp_path / "unlabelled").mkdir()
    (tmp_path / "unlabelled" / "cine.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="holds no patient folders") as info:
        find_cases(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_cases_gives_every_labelled_frame_on_the_model_grid(patients_dir: Path) -> None:
    folders = find_cases(patients_dir)[:2]
    calls = []
    cases = load_cases(folders, TINY, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    study = read_study(folders[0])
    prepared = prepare_study(study, TINY)
    first = [c for c in cases if c.patient == "patient000"]
    assert [c.frame for c in first] == list(study.labels.frame_numbers)
    for k, case in enumerate(first):
        np.testing.assert_array_equal(case.image, prepared.image[study.frame_index(case.frame)])
        np.testing.assert_array_equal(case.labels, prepared.labels[k])
        assert case.image.dtype == np.float32 and case.labels.dtype == np.uint8
        assert case.spacing_mm == pytest.approx((10.0, 2.0, 2.0))


def square_case(rows: int = 60, cols: int = 80, box: tuple[int, int, int, int] = (40, 50, 49, 59)) -> Case:
    """Three slices whose image encodes the pixel position; a square of label 3 on slices 0 and 2 only."""
    r, c = np.mgrid[:rows, :cols]
    image = ((r * cols + c + 1) / (rows * cols)).astype(np.float32)
    labels = np.zeros((3, rows, cols), np.uint8)
    labels[[0, 2], box[0] : box[2] + 1, box[1] : box[3] + 1] = 3
    return Case("p", 0, np.stack([image] * 3), labels, (10.0, 2.0, 2.0))


def centre_of(crop: np.ndarray, rows: int = 60, cols: int = 80) -> tuple[int, int]:
    flat = int(round(float(crop[16, 16]) * rows * cols)) - 1
    return divmod(flat, cols)


def test_slice_bank_heart_centred_crops() -> None:
    bank = SliceBank([square_case()])
    assert len(bank) == 3
    assert bank.boxes[(0, 0)] == (40, 50, 49, 59) and bank.boxes[(0, 1)] == (40, 50, 49, 59)  # empty slice: volume box
    rng = np.random.default_rng(0)
    images, labels = bank.sample(rng, 24, (32, 32), heart_fraction=1.0, thick_slice_probability=0.0)
    assert images.shape == (24, 1, 32, 32) and images.dtype == np.float32
    assert labels.shape == (24, 32, 32) and labels.dtype == np.int64
    for image, label in zip(images[:, 0], labels):
        row, col = centre_of(image)
        assert 40 <= row <= 49 and 50 <= col <= 59  # centred inside the heart box
        assert (label == 3).sum() >= 1 or label.sum() == 0  # slice 1 has no labels
    assert (labels[:, 16, 16] == 3).mean() > 0.4  # two of three slices are labelled under the centre


def test_slice_bank_random_crops_cover_the_image_and_pad_with_zeros() -> None:
    bank = SliceBank([square_case()])
    rng = np.random.default_rng(1)
    images, labels = bank.sample(rng, 200, (32, 32), heart_fraction=0.0, thick_slice_probability=0.0)
    centres = np.array([centre_of(image) for image in images[:, 0]])
    assert centres[:, 0].min() < 20 and centres[:, 1].min() < 20 and centres[:, 1].max() > 60
    assert (images == 0).any()  # crops beyond the image are zero-padded
    assert set(np.unique(labels).tolist()) == {0, 3}
    for image, label in zip(images[:, 0], labels):
        row, col = centre_of(image)
        r0, c0 = row - 16, col - 16
        outside = np.zeros((32, 32), bool)
        outside[: max(0, -r0)] = outside[32 - max(0, r0 + 32 - 60) :] = True
        outside[:, : max(0, -c0)] = outside[:, 32 - max(0, c0 + 32 - 80) :] = True
        assert (image[outside] == 0).all() and (label[outside] == 0).all() and (image[~outside] > 0).all()


def test_slice_bank_is_seeded_and_thick_slices_blend_neighbours() -> None:
    bank = SliceBank([square_case()])
    a = bank.sample(np.random.default_rng(5), 8, (32, 32))
    b = bank.sample(np.random.default_rng(5), 8, (32, 32))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # constant slices 0.2, 0.6, 0.2 and a central heart box, so crops stay inside the image
    labels = np.zeros((3, 60, 80), np.uint8)
    labels[:, 28:32, 38:42] = 3
    image = np.ones((3, 60, 80), np.float32) * np.array([0.2, 0.6, 0.2], np.float32)[:, None, None]
    bank = SliceBank([Case("p", 0, image, labels, (10.0, 2.0, 2.0))])
    thin = bank.sample(np.random.default_rng(2), 40, (32, 32), heart_fraction=1.0, thick_slice_probability=0.0)[0]
    np.testing.assert_allclose(np.unique(thin), [0.2, 0.6])
    thick = bank.sample(np.random.default_rng(2), 40, (32, 32), heart_fraction=1.0, thick_slice_probability=1.0)[0]
    values = thick[:, 0, 0, 0]
    assert (thick == values[:, None, None, None]).all()
    # slice 1: (1 - w) 0.6 + w 0.2; slices 0 and 2: (1 - w) 0.2 + w (0.2 + 0.6) / 2, with 0.1 <= w <= 0.35
    middle = (values >= 0.6 - 0.35 * 0.4 - 1e-6) & (values <= 0.6 - 0.1 * 0.4 + 1e-6)
    edge = (values >= 0.2 + 0.1 * 0.2 - 1e-6) & (values <= 0.2 + 0.35 * 0.2 + 1e-6)
    assert (middle | edge).all() and middle.any() and edge.any()


def test_slice_bank_context_channels_are_the_neighbouring_slices_in_either_order() -> None:
    # constant slices 0.1, 0.2, 0.3, 0.4 and a central heart box, so crops stay inside the image
    labels = np.zeros((4, 60, 80), np.uint8)
    labels[:, 28:32, 38:42] = 3
    image = np.ones((4, 60, 80), np.float32) * np.array([0.1, 0.2, 0.3, 0.4], np.float32)[:, None, None]
    bank = SliceBank([Case("p", 0, image, labels, (10.0, 2.0, 2.0))])
    images, labels_out = bank.sample(np.random.default_rng(3), 64, (32, 32), heart_fraction=1.0, thick_slice_probability=0.0, context=1)
    assert images.shape == (64, 3, 32, 32) and labels_out.shape == (64, 32, 32)
    triples = {tuple(round(float(v), 3) for v in images[b, :, 16, 16]) for b in range(64)}
    upward = {(0.1, 0.1, 0.2), (0.1, 0.2, 0.3), (0.2, 0.3, 0.4), (0.3, 0.4, 0.4)}  # edge slices repeated
    downward = {t[::-1] for t in upward}
    assert triples <= upward | downward
    assert triples & upward and triples & downward  # both slice directions are shown
    # without context the draws are those of a plain 2D bank (old runs stay reproducible)
    plain = bank.sample(np.random.default_rng(3), 8, (32, 32), context=0)[0]
    np.testing.assert_array_equal(plain, bank.sample(np.random.default_rng(3), 8, (32, 32))[0])


def test_end_slices_are_the_first_and_last_slice_with_a_structure() -> None:
    from opencmr.segment.data import end_slices

    volume = np.zeros((6, 4, 4), np.uint8)
    assert end_slices(volume) == ()
    volume[2, 1, 1] = 1
    assert end_slices(volume) == (2,)
    volume[4, 0, 0] = 3
    assert end_slices(volume) == (2, 4)


def test_end_slice_weight_draws_the_ends_that_much_more_often() -> None:
    from opencmr.segment.data import Case, SliceBank

    labels = np.zeros((6, 16, 16), np.uint8)
    labels[1:5, 6:10, 6:10] = 3  # heart on slices 1..4: ends 1 and 4; slices 0 and 5 empty
    image = np.repeat(np.arange(6, dtype=np.float32)[:, None, None], 16, axis=1).repeat(16, axis=2) / 10.0
    bank = SliceBank([Case("p", 0, image, labels, (1.5, 1.5, 10.0))])
    rng = np.random.default_rng(0)

    def drawn(weight: float) -> np.ndarray:
        images, _ = bank.sample(rng, 6000, (8, 8), heart_fraction=1.0, thick_slice_probability=0.0, end_slice_weight=weight)
        return np.bincount(np.rint(images[:, 0].max(axis=(1, 2)) * 10).astype(int), minlength=6) / 6000

    np.testing.assert_allclose(drawn(1.0), 1 / 6, atol=0.02)
    share = drawn(4.0)  # weights 1, 4, 1, 1, 4, 1 out of 12
    np.testing.assert_allclose(share, np.array([1, 4, 1, 1, 4, 1]) / 12, atol=0.02)
