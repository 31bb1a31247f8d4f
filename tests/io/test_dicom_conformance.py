"""The DICOM the phantom writes must pass the standard's validator, dciodvfy (Debian package dicom3tools)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from opencmr.labels import DiagnosticGroup
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

DCIODVFY = shutil.which("dciodvfy")


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed (Debian package dicom3tools)")
def test_every_written_series_passes_dciodvfy(tmp_path: Path) -> None:
    config = PhantomConfig(group=DiagnosticGroup.NOR, n_frames=3, n_slices=3, matrix=(48, 48), seed=1)
    write_phantom(make_phantom(config), tmp_path / "study", dicom=True)
    files = sorted((tmp_path / "study" / "dicom").rglob("*.dcm"))
    by_series: dict[str, Path] = {}
    for path in files:
        by_series.setdefault(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID, path)
    assert len(by_series) >= 2  # the cine and at least one decoy series
    for path in by_series.values():
        result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"
