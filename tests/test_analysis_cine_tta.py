"""``analyze`` on a cine: test-time flips for the ED and ES frames, one pass for the others (and the rounds that keep the measured frames flipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opencmr.analysis import AnalysisOptions, analyze_study, flip_measured_frames
from opencmr.io.read import read_study
from opencmr.io.study import Geometry, LabelMap
from opencmr.labels import Label
from opencmr.measure.function import measure_function
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom
from opencmr.qc.uncertainty import UncertaintyMaps
from opencmr.segment.inference import segment_study
from opencmr.segment.model import load_segmenter


@pytest.fixture(scope="module")
def cine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cine") / "phantom"
    write_phantom(make_phantom(PhantomConfig(group="DCM", n_frames=6, n_slices=6, seed=2)), out)
    return out / "phantom_4d.nii.gz"


def test_ed_and_es_frames_get_the_flipped_segmentation_and_the_rest_one_pass(cine: Path, tmp_path: Path) -> None:
    result = analyze_study(cine, tmp_path / "out", AnalysisOptions(height_cm=170, weight_kg=70, orientation="off"))
    study, model = read_study(cine), load_segmenter()
    measured = {result.measurements.phases.ed_frame, result.measurements.phases.es_frame}
    assert len(measured) == 2
    flipped = segment_study(study, model, tta=True)
    single = segment_study(study, model, tta=False)
    labels = result.study.labels
    assert labels.frame_numbers == study.frame_numbers
    for k, frame in enumerate(study.frame_numbers):
        expected = flipped if frame in measured else single
        np.testing.assert_array_equal(labels.data[k], expected.data[k], err_msg=f"frame {frame}")
    # the two passes differ somewhere, else this test could not tell them apart
    assert any((flipped.data[k] != single.data[k]).any() for k in range(len(study.frame_numbers)))


def test_without_tta_every_frame_is_one_pass(cine: Path, tmp_path: Path) -> None:
    result = analyze_study(cine, tmp_path / "out", AnalysisOptions(tta=False, orientation="off"))
    single = segment_study(read_study(cine), load_segmenter(), tta=False)
    np.testing.assert_array_equal(result.study.labels.data, single.data)


def test_the_estimated_dice_of_a_cine_is_that_of_its_flipped_ed_and_es_frames(cine: Path, tmp_path: Path) -> None:
    """The calibration was fitted on flipped segmentations: single-pass frames must not enter the soft Dice."""
    from opencmr.qc.uncertainty import uncertainty_scores

    result = analyze_study(cine, tmp_path / "out", AnalysisOptions(height_cm=170, weight_kg=70, orientation="off"))
    study, model = read_study(cine), load_segmenter()
    measured = sorted({result.measurements.phases.ed_frame, result.measurements.phases.es_frame})
    labels, maps = segment_study(study, model, frames=measured, tta=True, return_uncertainty=True)
    expected = uncertainty_scores(labels, maps).expected_dice
    assert result.qc.uncertainty.expected_dice == pytest.approx(expected, abs=1e-9)
    everything = uncertainty_scores(*segment_study(study, model, tta=False, return_uncertainty=True)).expected_dice
    assert everything != pytest.approx(expected, abs=1e-9)  # the frames chosen make a difference


def _lv_frames(lv_voxels: list[int], frame_numbers: tuple[int, ...]) -> LabelMap:
    """One 1 x 4 x 4 slice per frame: an LV of the given voxel count, the rest RV (so every frame is measurable)."""
    data = np.full((len(lv_voxels), 1, 4, 4), int(Label.RV_BLOOD_POOL), np.uint8)
    for k, n in enumerate(lv_voxels):
        data[k, 0].flat[:n] = int(Label.LV_BLOOD_POOL)
    return LabelMap(data, Geometry(np.diag([1.0, 1.0, 10.0, 1.0]), (1, 4, 4)), frame_numbers)


def _maps(labels: LabelMap, value: float, n_views: int) -> UncertaintyMaps:
    shape = labels.data.shape
    return UncertaintyMaps(
        entropy=np.full(shape, value, np.float32),
        disagreement=np.full(shape, value, np.float32),
        geometry=labels.geometry,
        frame_numbers=labels.frame_numbers,
        n_views=n_views,
        overlap=np.full((shape[0], 3, 3), value),
    )


def test_a_frame_the_flips_make_the_new_ed_is_flipped_too() -> None:
    """Flipping frame 0 (the single-pass ED) shrinks its LV below frame 3's: frame 3 is then flipped in a second round."""
    frames = (0, 1, 2, 3)
    single = _lv_frames([10, 8, 5, 9], frames)
    flipped_lv = {0: 7, 1: 8, 2: 5, 3: 9}  # what the flipped segmentation finds per frame
    calls: list[list[int]] = []

    def segment(wanted: list[int]) -> tuple[LabelMap, UncertaintyMaps]:
        calls.append(wanted)
        labels = _lv_frames([flipped_lv[f] for f in wanted], tuple(wanted))
        return labels, _maps(labels, 0.5, n_views=4)

    labels, maps = flip_measured_frames(single, _maps(single, 0.0, n_views=1), segment)
    assert calls == [[0, 2], [3]]
    lv = (labels.data == int(Label.LV_BLOOD_POOL)).sum(axis=(1, 2, 3)).tolist()
    assert lv == [7, 8, 5, 9]
    phases = measure_function(labels).phases
    assert (phases.ed_frame, phases.es_frame) == (3, 2)  # measured frames are both flipped ones
    assert maps.n_views == 4
    np.testing.assert_array_equal(maps.overlap[:, 0, 0], [0.5, 0.0, 0.5, 0.5])  # soft-Dice sums: flipped frames only
    np.testing.assert_array_equal(maps.entropy[:, 0, 0, 0], [0.5, 0.0, 0.5, 0.5])


def test_flipping_stops_after_the_last_round_and_when_the_study_names_ed_and_es() -> None:
    frames = (0, 1, 2, 3)
    single = _lv_frames([10, 9, 5, 8], frames)
    calls: list[list[int]] = []

    def shrinking(wanted: list[int]) -> tuple[LabelMap, UncertaintyMaps]:  # every flipped frame loses 3 voxels
        calls.append(wanted)
        labels = _lv_frames(
            [int((single.data[f] == int(Label.LV_BLOOD_POOL)).sum()) - 3 for f in wanted], tuple(wanted)
        )
        return labels, _maps(labels, 0.5, n_views=4)

    flip_measured_frames(single, _maps(single, 0.0, n_views=1), shrinking, max_rounds=2)
    assert calls == [[0, 2], [1]]  # the maximum moves to frame 1, then to frame 3: the rounds run out
    calls.clear()
    flip_measured_frames(single, _maps(single, 0.0, n_views=1), shrinking, ed_frame=0, es_frame=2)
    assert calls == [[0, 2]]  # named frames do not move
