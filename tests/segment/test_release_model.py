"""The bundled release model on data it never saw: phantoms of every group, raw intensities, held-out ACDC.

These are accuracy floors for the shipped weights (the targets themselves are measured by
``benchmarks/segmentation.py``); each test fails if the weights, the preprocessing or the
inference path regress.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from opencmr.io.read import read_study
from opencmr.phantom import PhantomConfig, make_phantom
from opencmr.segment.inference import segment_study
from opencmr.segment.model import default_model_path, load_model


@pytest.fixture(scope="module")
def release():
    assert default_model_path().is_file(), f"the bundled weights are part of the package: {default_model_path()}"
    return load_model()


def _dice(pred: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    out = {}
    for value in (1, 2, 3):
        a, b = pred == value, truth == value
        out[value] = 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
    return out


@pytest.mark.parametrize("group", ["NOR", "DCM", "HCM", "MINF", "RV"])
def test_release_model_segments_the_phantom(release, group: str) -> None:
    """The README's demo shows what real data gets: Dice >= 0.90 against the phantom's exact truth."""
    phantom = make_phantom(PhantomConfig(group=group, seed=1))
    study, truth = phantom.study, phantom.truth
    frames = (truth.ed_frame, truth.es_frame)
    labels = segment_study(study, release, frames=frames)
    reference = np.stack([study.labels.frame(f) for f in frames])
    scores = _dice(labels.data, reference)
    assert np.mean(list(scores.values())) >= 0.90, scores
    assert min(scores.values()) >= 0.80, scores


def test_release_model_ignores_raw_scanner_intensities(release) -> None:
    phantom = make_phantom(PhantomConfig(group="MINF", seed=2, n_frames=6))
    frames = (phantom.truth.ed_frame, phantom.truth.es_frame)
    normal = segment_study(phantom.study, release, frames=frames)
    raw = dataclasses.replace(phantom.study, image=np.asarray(phantom.study.image) * 1000.0 + 300.0)
    assert np.mean(segment_study(raw, release, frames=frames).data == normal.data) > 0.999


@pytest.mark.acdc
def test_release_model_on_a_held_out_acdc_patient(release, acdc_training) -> None:
    """A validation patient (never trained on): mean Dice well above a plain baseline."""
    name = release.info["validation_patients"][0]
    study = read_study(acdc_training / name)
    labels = segment_study(study, release, frames=study.labels.frame_numbers)
    scores = _dice(labels.data, study.labels.data)
    assert np.mean(list(scores.values())) >= 0.85, scores
    assert labels.geometry.same_grid(study.geometry)
