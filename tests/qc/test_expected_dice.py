"""Expected Dice: the soft Dice between the network's probabilities and the final labels (QC uncertainty)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from opencmr.io.study import Geometry, LabelMap
from opencmr.labels import STRUCTURES, Label
from opencmr.qc.uncertainty import UncertaintyMaps, uncertainty_scores
from opencmr.segment.inference import _soft_overlap, segment_study
from tests.segment.conftest import small_phantom, tiny_model

SHAPE = (2, 6, 6)

# per frame, per structure (RV, MYO, LV): probability inside the label, probability, label voxels
OVERLAP = np.array(
    [
        [[2.0, 4.0, 3.0], [1.0, 2.0, 2.0], [3.0, 3.0, 4.0]],
        [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [4.0, 5.0, 4.0]],
    ]
)
# totals RV (3, 6, 4), MYO (1, 2, 2), LV (7, 8, 8)
EXPECTED = {"lv": 14 / 16, "myo": 2 / 4, "rv": 6 / 10}


def _labels() -> LabelMap:
    data = np.zeros((2, *SHAPE), np.uint8)
    data[:, 0, 1:3, 1:3] = int(Label.LV_BLOOD_POOL)
    data[:, 0, 1:3, 3] = int(Label.LV_MYOCARDIUM)
    data[:, 1, 4, 1:4] = int(Label.RV_BLOOD_POOL)
    return LabelMap(data, Geometry(np.diag([1.5, 1.5, 8.0, 1.0]), SHAPE), (0, 3))


def _maps(labels: LabelMap, overlap: np.ndarray | None) -> UncertaintyMaps:
    zeros = np.zeros(labels.data.shape, np.float32)
    return UncertaintyMaps(zeros, zeros, labels.geometry, labels.frame_numbers, n_views=1, overlap=overlap)


@pytest.mark.parametrize("shape", [(2, 3), (3, 3, 3), (2, 4, 3), (2, 3, 2), (1, 2, 3, 3)])
def test_overlap_must_be_frames_by_structures_by_three(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="overlap"):
        _maps(_labels(), np.zeros(shape))


def test_overlap_is_stored_read_only_as_float64() -> None:
    maps = _maps(_labels(), OVERLAP.astype(np.float32).tolist())
    assert maps.overlap.shape == (2, 3, 3) and maps.overlap.dtype == np.float64
    assert not maps.overlap.flags.writeable
    np.testing.assert_array_equal(maps.overlap, OVERLAP)


def test_expected_dice_sums_over_frames_in_structure_order() -> None:
    labels = _labels()
    scores = uncertainty_scores(labels, _maps(labels, OVERLAP))
    assert list(scores.expected_dice) == ["lv", "myo", "rv"]
    for name, value in EXPECTED.items():
        assert scores.expected_dice[name] == pytest.approx(value)
    assert scores.expected_dice_mean == pytest.approx((14 / 16 + 0.5 + 0.6) / 3)
    summary = scores.to_dict()["expected_dice"]
    assert summary["mean"] == pytest.approx(round((14 / 16 + 0.5 + 0.6) / 3, 6))
    assert summary["structures"] == pytest.approx(EXPECTED)


def test_an_absent_structure_has_no_expected_dice() -> None:
    labels = _labels()
    overlap = OVERLAP.copy()
    overlap[:, 1] = 0.0  # no myocardium: neither probability nor label
    scores = uncertainty_scores(labels, _maps(labels, overlap))
    assert math.isnan(scores.expected_dice["myo"]) and math.isnan(scores.expected_dice_mean)
    assert scores.expected_dice["lv"] == pytest.approx(EXPECTED["lv"])
    summary = scores.to_dict()["expected_dice"]
    assert summary["structures"]["myo"] is None and summary["mean"] is None


def test_without_overlap_there_is_no_expected_dice() -> None:
    labels = _labels()
    scores = uncertainty_scores(labels, _maps(labels, None))
    assert scores.expected_dice == {} and math.isnan(scores.expected_dice_mean)
    assert scores.to_dict()["expected_dice"] is None


def test_soft_overlap_gives_the_soft_dice_of_the_probabilities_against_the_labels() -> None:
    labels = _labels()
    gen = torch.Generator().manual_seed(0)
    probabilities = [torch.softmax(3 * torch.randn(5, *SHAPE, generator=gen), 0) for _ in range(2)]  # 4 classes + 1
    overlap = np.stack([_soft_overlap(p, labels.data[f]) for f, p in enumerate(probabilities)])
    assert overlap.shape == (2, 3, 3)
    scores = uncertainty_scores(labels, _maps(labels, overlap))
    for label in STRUCTURES:
        p = np.stack([q[int(label)].numpy() for q in probabilities]).astype(np.float64)
        mask = labels.data == int(label)
        want = 2 * (p * mask).sum() / (p.sum() + mask.sum())
        assert scores.expected_dice[label.abbreviation] == pytest.approx(want, rel=1e-6)
    # hard, correct probabilities give a Dice of 1
    one_hot = torch.from_numpy(np.stack([labels.data[0] == k for k in range(5)]).astype(np.float32))
    exact = np.stack([_soft_overlap(one_hot, labels.data[0])] * 2)
    assert uncertainty_scores(labels, _maps(labels, exact)).expected_dice == pytest.approx(
        {"lv": 1.0, "myo": 1.0, "rv": 1.0}
    )


def test_segment_study_returns_overlap_sums_of_its_labels() -> None:
    study = small_phantom(n_frames=2).study
    labels, maps = segment_study(study, tiny_model(), frames=[1], tta=False, return_uncertainty=True)
    assert maps.overlap is not None and maps.overlap.shape == (1, 3, 3)
    for k, label in enumerate(STRUCTURES):
        inside, mass, count = maps.overlap[0, k]
        assert count == (labels.data[0] == int(label)).sum()
        assert 0 <= inside <= min(mass, count) + 1e-6
    assert maps.overlap[0, :, 1].sum() > 0  # an untrained network spreads probability over every class
    scores = uncertainty_scores(labels, maps)
    values = [v for v in scores.expected_dice.values() if not math.isnan(v)]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    inside, mass, count = maps.overlap.sum(0).T
    want = np.where(mass + count > 0, 2 * inside / np.where(mass + count > 0, mass + count, 1), np.nan)
    got = [scores.expected_dice[label.abbreviation] for label in STRUCTURES]
    np.testing.assert_allclose(got, want, rtol=1e-9)
