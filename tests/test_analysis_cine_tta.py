"""``analyze`` on a cine: test-time flips for the ED and ES frames, one pass for the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opencmr.analysis import AnalysisOptions, analyze_study
from opencmr.io.read import read_study
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom
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
