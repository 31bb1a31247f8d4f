"""Shared fixtures: tiny synthetic studies written to real files, and the shared ACDC data."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ACDC_TRAINING = Path(__file__).resolve().parents[2] / "shared" / "data" / "acdc" / "training"
META_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "meta-reference"


@pytest.fixture(scope="session")
def acdc_training() -> Path:
    """The shared ACDC training folder; the test is skipped when it is absent."""
    if not ACDC_TRAINING.is_dir() or not any(ACDC_TRAINING.glob("patient*")):
        pytest.skip(f"ACDC data not found at {ACDC_TRAINING} (see ../shared/data/README.md)")
    return ACDC_TRAINING


@pytest.fixture(scope="session")
def meta_reference() -> Path:
    """The shared published meta-analysis datasets; the test is skipped when they are absent."""
    if not (META_REFERENCE / "expected_outputs.json").is_file():
        pytest.skip(f"meta-analysis reference data not found at {META_REFERENCE}")
    return META_REFERENCE


def oblique_affine(spacing_xyz: tuple[float, float, float] = (1.4, 1.4, 8.0)) -> np.ndarray:
    """A non-axis-aligned RAS affine with the given column/row/slice spacings."""
    a, b = np.deg2rad(30.0), np.deg2rad(-20.0)
    rot_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rot_z @ rot_x @ np.diag(spacing_xyz)
    affine[:3, 3] = (-40.0, 25.0, 12.5)
    return affine


def blob_labels(shape_xyz: tuple[int, int, int], shift: int = 0) -> np.ndarray:
    """Concentric LV blood pool / myocardium and an RV blob, as an (x, y, z) uint8 array."""
    x, y = np.mgrid[: shape_xyz[0], : shape_xyz[1]]
    cx, cy = shape_xyz[0] / 2 + shift, shape_xyz[1] / 2
    r = np.hypot(x - cx, y - cy)
    plane = np.zeros(shape_xyz[:2], dtype=np.uint8)
    plane[(r < 7)] = 2
    plane[(r < 4)] = 3
    plane[(np.hypot(x - cx + 9, y - cy) < 5) & (r >= 7)] = 1
    return np.repeat(plane[:, :, None], shape_xyz[2], axis=2)


@pytest.fixture
def write_nifti(tmp_path: Path):
    """Return ``write(name, array, affine=None, dtype=None) -> Path`` saving a real NIfTI file."""

    def write(name: str, array: np.ndarray, affine: np.ndarray | None = None, dtype=None) -> Path:
        path = tmp_path / name
        data = np.asarray(array if dtype is None else np.asarray(array).astype(dtype))
        img = nib.Nifti1Image(data, oblique_affine() if affine is None else affine)
        nib.save(img, str(path))
        return path

    return write
