from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opencmr.errors import InputError
from opencmr.io.read import read_study
from tests.conftest import blob_labels
from tests.io.test_acdc import make_patient


def test_dispatches_nifti_and_acdc(write_nifti, tmp_path: Path) -> None:
    image = write_nifti("img.nii.gz", np.ones((24, 20, 4), np.float32))
    labels = write_nifti("gt.nii.gz", blob_labels((24, 20, 4)), dtype=np.uint8)
    assert read_study(image).metadata.source_format == "nifti"
    assert read_study(image, labels=labels).labels is not None
    assert read_study(make_patient(tmp_path)).metadata.source_format == "acdc"


def test_unusable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing: does not exist"):
        read_study(tmp_path / "missing")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt: unrecognised file type"):
        read_study(other)
    fake_dicom = tmp_path / "one.dcm"
    fake_dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    with pytest.raises(InputError, match=r"one\.dcm: no DICOM images found \(0 non-DICOM and 1 non-image"):
        read_study(fake_dicom)
    with pytest.raises(InputError, match="--series and --study apply to DICOM input only"):
        read_study(make_patient(tmp_path), series="3")
