from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.phantom import Phantom
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.inference import heart_box, predict_probabilities, segment_study
from opencmr.segment.preprocess import prepare_study
from tests.segment.conftest import TINY, tiny_model


def test_untrained_model_gives_labels_on_the_study_grid(study: CineStudy) -> None:
    calls = []
    labels = segment_study(study, tiny_model(), progress=lambda done, total: calls.append((done, total)))
    assert isinstance(labels, LabelMap)
    assert labels.data.shape == (study.n_frames, *study.geometry.shape) and labels.data.dtype == np.uint8
    assert labels.geometry.shape == study.geometry.shape
    np.testing.assert_array_equal(labels.geometry.affine, study.geometry.affine)
    assert labels.frame_numbers == study.frame_numbers
    assert set(np.unique(labels.data).tolist()) <= {0, 1, 2, 3}
    assert calls == [(k + 1, study.n_frames) for k in range(study.n_frames)]


def test_frames_subset(study: CineStudy) -> None:
    model = tiny_model()
    subset = segment_study(study, model, frames=[1, 3], tta=False)
    assert subset.frame_numbers == (1, 3) and subset.data.shape == (2, *study.geometry.shape)
    np.testing.assert_array_equal(subset.geometry.affine, study.geometry.affine)
    with pytest.raises(ValueError, match=r"frames \[9\]"):
        segment_study(study, model, frames=[9])
    # frames that are copies of one another: a subset gives exactly the full run's frames
    same = dataclasses.replace(study, image=np.repeat(study.image[:1], study.n_frames, 0), labels=None)
    everything = segment_study(same, model, tta=False)
    np.testing.assert_array_equal(segment_study(same, model, frames=[2], tta=False).data[0], everything.data[2])


def test_a_frame_is_segmented_the_same_whatever_other_frames_are_chosen(study: CineStudy) -> None:
    model = tiny_model()
    everything = segment_study(study, model, tta=False)
    np.testing.assert_array_equal(segment_study(study, model, frames=[0], tta=False).data[0], everything.data[0])


@dataclass(frozen=True)
class LabelOracle:
    """A stand-in network for an image whose intensity is label / 3: logits peak at the matching class."""

    config: SegmentationConfig

    def forward_fn(self):
        def forward(batch: torch.Tensor) -> torch.Tensor:
            classes = torch.arange(self.config.num_classes, dtype=torch.float32).view(1, -1, 1, 1)
            return -50.0 * (3.0 * batch - classes) ** 2

        return forward


def label_image_study(phantom: Phantom, pad: int) -> tuple[CineStudy, np.ndarray]:
    """The phantom's labels as its image, in a field of view enlarged by ``pad`` rows and columns
    (added after the last row and column, so the affine is unchanged and the heart is off centre)."""
    truth = np.pad(phantom.study.labels.data, ((0, 0), (0, 0), (0, pad), (0, pad)))
    geometry = Geometry(phantom.study.geometry.affine, truth.shape[1:], phantom.study.geometry.slice_thickness_mm)
    study = CineStudy(truth.astype(np.float32), geometry, phantom.study.metadata, phantom.study.labels.frame_numbers)
    return study, truth


@pytest.mark.parametrize("margin_mm", [4.0, 200.0])  # a crop around the heart, and the full field of view
@pytest.mark.parametrize("tta", [True, False])
def test_a_perfect_network_reproduces_the_labels_on_the_study_grid(
    phantom: Phantom, margin_mm: float, tta: bool
) -> None:
    config = dataclasses.replace(TINY, spacing_mm=(1.0, 1.0), lower_percentile=0.0, upper_percentile=100.0,
                                 heart_margin_mm=margin_mm)
    study, truth = label_image_study(phantom, pad=40)
    prepared = prepare_study(study, config)
    rows, cols = heart_box(prepared.image[0] * 3, config, prepared.image.shape[-2:])
    if margin_mm < 10:  # the cropped pass is exercised: the box is smaller than the field of view
        assert rows.stop - rows.start < prepared.image.shape[-2] and cols.stop - cols.start < prepared.image.shape[-1]
    out = segment_study(study, LabelOracle(config), tta=tta)
    assert out.data.shape == truth.shape
    assert np.mean(out.data == truth) > 0.99
    for value in (1, 2, 3):
        a, b = out.data == value, truth == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.97, value


def test_heart_box_without_foreground_is_the_field_of_view() -> None:
    assert heart_box(np.zeros((3, 50, 70), np.uint8), TINY, (50, 70)) == (slice(0, 50), slice(0, 70))


@pytest.mark.parametrize("centre", [(30, 40), (4, 5), (95, 75)])
def test_heart_box_contains_the_heart_with_margin(centre: tuple[int, int]) -> None:
    config = dataclasses.replace(TINY, heart_margin_mm=6.0)  # 3 pixels at 2 mm
    shape = (100, 80)
    labels = np.zeros((3, *shape), np.uint8)
    r, c = centre
    labels[1, max(r - 4, 0) : r + 5, max(c - 6, 0) : c + 7] = 3
    labels[2, r, c] = 2
    labels[0, 99 - r // 2, 79 - c // 2] = 1  # a small stray blob elsewhere is ignored
    rows, cols = heart_box(labels, config, shape)
    for cut, n in ((rows, shape[0]), (cols, shape[1])):
        size = cut.stop - cut.start
        assert 0 <= cut.start and cut.stop <= n
        assert size >= 32 and size % config.divisor == 0
    fg = np.argwhere(labels[1] == 3)
    assert rows.start <= fg[:, 0].min() and fg[:, 0].max() < rows.stop
    assert cols.start <= fg[:, 1].min() and fg[:, 1].max() < cols.stop
    # the margin is there unless the box meets the edge of the image
    assert rows.start == 0 or rows.start <= fg[:, 0].min() - 3
    assert cols.stop == shape[1] or cols.stop >= fg[:, 1].max() + 1 + 3


def test_heart_box_wider_than_the_image_is_the_field_of_view() -> None:
    labels = np.zeros((1, 40, 36), np.uint8)
    labels[0, 5:35, 5:30] = 3
    assert heart_box(labels, TINY, (40, 36)) == (slice(0, 40), slice(0, 36))  # 30 mm margins do not fit


def test_predict_probabilities_pads_and_averages_flips() -> None:
    network = tiny_model().forward_fn()
    slices = torch.rand(5, 30, 27, generator=torch.Generator().manual_seed(0))
    probs = predict_probabilities(slices, network, 4, batch_size=2)
    assert probs.shape == (5, 4, 30, 27)
    torch.testing.assert_close(probs.sum(1), torch.ones(5, 30, 27))
    plain = predict_probabilities(slices, network, 4, flips=((),))
    by_hand = torch.softmax(network(torch.nn.functional.pad(slices[:, None], (0, 1, 1, 1))), 1)[..., 1:31, 0:27]
    torch.testing.assert_close(plain, by_hand)
    # averaged over (none, columns), the result is equivariant to a column flip (symmetric padding: 26 -> 28)
    even = slices[..., :26]
    flipped = predict_probabilities(even.flip(-1), network, 4, flips=((), (-1,)))
    expected = predict_probabilities(even, network, 4, flips=((), (-1,)))
    torch.testing.assert_close(flipped.flip(-1), expected, atol=1e-5, rtol=0)
    one_way = predict_probabilities(even.flip(-1), network, 4, flips=((),)).flip(-1)
    assert not torch.allclose(one_way, predict_probabilities(even, network, 4, flips=((),)), atol=1e-3)


def test_a_25d_model_segments_a_study_and_sees_the_neighbouring_slices(study: CineStudy) -> None:
    model = tiny_model(seed=2, config=dataclasses.replace(TINY, context_slices=1))
    labels = segment_study(study, model, tta=False)
    assert labels.data.shape == (study.n_frames, *study.geometry.shape)
    # the same slices in another order: each slice's neighbours change, so its probabilities do
    volume = torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(0))
    forward = model.forward_fn()
    probs = predict_probabilities(volume, forward, TINY.divisor, ((),), context=1)
    shuffled = predict_probabilities(volume[[0, 2, 1, 3]], forward, TINY.divisor, ((),), context=1)
    assert probs.shape == (4, 4, 32, 32)
    assert not torch.allclose(probs[1], shuffled[2])
