"""NIfTI headers are read at upload: images too large for memory (gzip bombs) get 413, impossible headers 415."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opencmr.service.uploads import UploadLimits, UploadRejected, prepare_upload
from tests.service.conftest import Server, service_config, upload, zip_bytes

HUGE = (4096, 4096, 512, 50)  # int16: 800 GiB of voxels


def nifti_bytes(
    shape: tuple[int, ...],
    dtype: type = np.int16,
    header_class: type = nib.Nifti1Header,
    endian: str = "<",
    padding: int = 0,
    dim: tuple[int, ...] | None = None,
) -> bytes:
    """An uncompressed single-file NIfTI: a header declaring ``shape``, then ``padding`` zero bytes of "data".

    ``dim`` overwrites the header's raw ``dim`` field (NIfTI-1 only), to make headers nibabel would refuse.
    """
    header = header_class(endianness=endian)
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    size = 348 if header_class is nib.Nifti1Header else 540
    header["vox_offset"] = size + 4
    block = bytearray(header.binaryblock)
    if dim is not None:
        struct.pack_into(endian + "8h", block, 40, *dim)
    return bytes(block) + bytes(4) + bytes(padding)


def bomb() -> bytes:
    """A small .nii.gz: 8 MiB of zeros after a header claiming 800 GiB (compressed to a few KiB)."""
    return gzip.compress(nifti_bytes(HUGE, padding=8 << 20))


@pytest.fixture(scope="module")
def jobs_dir(server: Server) -> Path:
    return server.config.data_dir / "jobs"


def assert_nothing_left(jobs_dir: Path) -> None:
    assert all((p / "job.json").exists() for p in jobs_dir.iterdir())


def test_gzip_bomb_nifti_is_refused_at_upload(server: Server, jobs_dir: Path) -> None:
    body = bomb()
    assert len(body) < 64 << 10
    reply = upload(server.url, "cine.nii.gz", body)
    assert reply.status == 413, reply.body
    detail = reply.json()["detail"]
    assert "4096 x 4096 x 512 x 50 int16" in detail and "800.0 GiB" in detail, detail
    assert "images up to 2.0 GiB are accepted" in detail
    assert_nothing_left(jobs_dir)


def test_gzip_bomb_nifti_inside_a_zip_is_refused(server: Server, jobs_dir: Path) -> None:
    reply = upload(server.url, "study.zip", zip_bytes({"study/cine.nii.gz": bomb()}))
    assert reply.status == 413, reply.body
    detail = reply.json()["detail"]
    assert "'study/cine.nii.gz' is 4096 x 4096 x 512 x 50 int16" in detail and "2.0 GiB" in detail, detail
    assert_nothing_left(jobs_dir)


@pytest.mark.parametrize(
    ("dim", "message"),
    [
        ((0, 64, 64, 8, 1, 1, 1, 1), "declares 0 dimensions (dim[0]); a NIfTI image has 1 to 7"),
        ((8, 64, 64, 8, 1, 1, 1, 1), "declares 8 dimensions"),
        ((-3, 64, 64, 8, 1, 1, 1, 1), "declares -3 dimensions"),
        ((4, 64, -64, 8, 10, 1, 1, 1), "size below 1 (64 x -64 x 8 x 10)"),
        ((3, 64, 64, 0, 1, 1, 1, 1), "size below 1 (64 x 64 x 0)"),
    ],
)
def test_impossible_headers_are_refused(server: Server, jobs_dir: Path, dim: tuple[int, ...], message: str) -> None:
    body = gzip.compress(nifti_bytes((64, 64, 8), dim=dim, padding=64 * 64 * 8 * 2))
    reply = upload(server.url, "cine.nii.gz", body)
    assert reply.status == 415, reply.body
    detail = reply.json()["detail"]
    assert detail.startswith("the NIfTI image is not a valid NIfTI image") and message in detail, detail
    assert_nothing_left(jobs_dir)


def test_unknown_datatype_is_refused(tmp_path: Path) -> None:
    block = bytearray(nifti_bytes((8, 8, 2), padding=256))
    struct.pack_into("<h", block, 70, 999)
    received = tmp_path / "received"
    received.write_bytes(bytes(block))
    with pytest.raises(UploadRejected, match="unknown data type") as caught:
        prepare_upload(received, "cine.nii", tmp_path / "upload")
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("header_class", "endian"),
    [(nib.Nifti1Header, ">"), (nib.Nifti2Header, "<"), (nib.Nifti2Header, ">")],
)
def test_large_image_is_refused_whatever_the_header_kind(tmp_path: Path, header_class: type, endian: str) -> None:
    received = tmp_path / "received"
    received.write_bytes(gzip.compress(nifti_bytes((512, 512, 64, 40), np.float32, header_class, endian)))
    with pytest.raises(UploadRejected, match=r"512 x 512 x 64 x 40 float32 voxels, 2.5 GiB") as caught:
        prepare_upload(received, "cine.nii.gz", tmp_path / "upload")
    assert caught.value.status == 413


def test_ordinary_nifti_is_accepted_and_the_limit_is_configurable(tmp_path: Path, phantom_folder: Path) -> None:
    cine = phantom_folder / "phantom_4d.nii.gz"
    received = tmp_path / "received"
    received.write_bytes(cine.read_bytes())
    study, kind = prepare_upload(received, "cine.nii.gz", tmp_path / "a")
    assert kind == "nifti" and study == tmp_path / "a" / "study.nii.gz" and study.read_bytes() == cine.read_bytes()

    image_bytes = int(np.prod(nib.load(cine).shape)) * nib.load(cine).get_data_dtype().itemsize
    received.write_bytes(zip_bytes({"study/phantom_4d.nii.gz": cine.read_bytes()}))
    study, kind = prepare_upload(received, "s.zip", tmp_path / "b", UploadLimits(max_image_bytes=image_bytes))
    assert kind == "nifti" and study.name == "phantom_4d.nii.gz"  # exactly at the limit: accepted

    received.write_bytes(cine.read_bytes())
    with pytest.raises(UploadRejected, match="images up to") as caught:
        prepare_upload(received, "cine.nii.gz", tmp_path / "c", UploadLimits(max_image_bytes=image_bytes - 1))
    assert caught.value.status == 413


def test_uncompressed_nifti_is_checked_too(tmp_path: Path) -> None:
    received = tmp_path / "received"
    received.write_bytes(nifti_bytes(HUGE, padding=1024))
    with pytest.raises(UploadRejected, match="800.0 GiB") as caught:
        prepare_upload(received, "cine.nii", tmp_path / "upload")
    assert caught.value.status == 413


def test_the_image_limit_is_the_service_configuration(tmp_path: Path) -> None:
    """``ServiceConfig.max_image_mb`` (``opencmr serve --max-image-mb``) reaches the upload check."""
    small = Server(service_config(tmp_path / "data", max_image_mb=1))
    try:
        reply = upload(small.url, "cine.nii", nifti_bytes((64, 64, 8, 10)))  # 640 KiB of int16: accepted
        assert reply.status in (200, 201, 202), reply.body
        reply = upload(small.url, "cine.nii", nifti_bytes((128, 128, 8, 10)))  # 2.5 MiB declared: refused
        assert reply.status == 413 and "images up to 1.0 MiB" in reply.json()["detail"], reply.body
    finally:
        small.stop()
