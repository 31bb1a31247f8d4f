"""Fixtures for the segmentation tests: a tiny U-Net, phantom studies and phantom patient folders.

Every model here is tiny (3 levels, 4-16 channels, 2 mm pixels, 32 x 32 patches) and torch
runs on one thread, so the whole folder takes seconds on a busy 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from opencmr.io.study import CineStudy
from opencmr.phantom import Phantom, PhantomConfig, make_phantom, write_phantom
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.model import SegmentationModel, save_model
from opencmr.segment.network import build_network

TINY = SegmentationConfig(
    channels=(4, 8, 16), strides=(2, 2), num_res_units=1, patch_size=(32, 32), spacing_mm=(2.0, 2.0)
)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


def tiny_model(seed: int = 0, config: SegmentationConfig = TINY) -> SegmentationModel:
    """An untrained tiny network in evaluation mode, initialised from ``seed``."""
    torch.manual_seed(seed)
    return SegmentationModel(config, build_network(config).eval(), {"name": f"tiny-{seed}"})


def small_phantom(seed: int = 0, group: str = "NOR", n_frames: int = 4) -> Phantom:
    return make_phantom(PhantomConfig(group=group, n_frames=n_frames, n_slices=4, matrix=(64, 64), seed=seed))


@pytest.fixture(scope="session")
def phantom() -> Phantom:
    return small_phantom()


@pytest.fixture(scope="session")
def study(phantom: Phantom) -> CineStudy:
    return phantom.study


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained model saved with :func:`save_model`."""
    return save_model(tiny_model(), tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="session")
def patients_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three labelled phantom patients (NOR, DCM, HCM) in ACDC layout."""
    root = tmp_path_factory.mktemp("patients")
    for i, group in enumerate(("NOR", "DCM", "HCM")):
        write_phantom(small_phantom(seed=i, group=group, n_frames=2), root / f"patient{i:03d}")
    return root
