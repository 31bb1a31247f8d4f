"""``opencmr segment``, ``opencmr train`` and ``opencmr export-onnx`` on phantom files, with tiny models."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.phantom import write_phantom
from opencmr.segment.model import load_model
from tests.segment.conftest import TINY, small_phantom

runner = CliRunner()


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "patient"
    write_phantom(small_phantom(seed=5, group="HCM"), folder, dicom=True)
    return folder


def squashed(text: str) -> str:
    """``text`` without whitespace (rich wraps console output at 80 columns)."""
    return "".join(text.split())


def assert_one_line_error(result, *fragments: str, only_line: bool = True) -> None:
    """Exit code 1 and an ``error: ...`` line naming ``fragments``, the only line unless ``only_line`` is False."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    if only_line:
        assert len(lines) == 1, result.output
    assert lines[-1].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


def test_segment_nifti_keeps_the_input_grid(phantom_folder: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    source = phantom_folder / "phantom_4d.nii.gz"
    out = tmp_path / "labels.nii.gz"
    result = runner.invoke(app, ["segment", str(source), "-o", str(out), "--model", str(tiny_model_file), "--no-tta"])
    assert result.exit_code == 0, result.output
    assert squashed(f"wrote {out}: 4 frame(s) x 4 slices") in squashed(result.output) and "tiny-0" in result.output
    image, labels = nib.load(str(source)), nib.load(str(out))
    assert labels.shape == image.shape == (64, 64, 4, 4)
    np.testing.assert_array_equal(labels.affine, image.affine)
    data = np.asarray(labels.dataobj)
    assert data.dtype == np.uint8 and set(np.unique(data).tolist()) <= {0, 1, 2, 3}


def test_segment_a_single_frame_gives_a_3d_file(phantom_folder: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    source = phantom_folder / "phantom_frame01.nii.gz"
    out = tmp_path / "ed.nii"
    result = runner.invoke(app, ["segment", str(source), "-o", str(out), "--model", str(tiny_model_file)])
    assert result.exit_code == 0, result.output
    image, labels = nib.load(str(source)), nib.load(str(out))
    assert labels.shape == image.shape == (64, 64, 4)
    np.testing.assert_array_equal(labels.affine, image.affine)


def test_segment_a_4d_file_with_one_frame_gives_a_4d_file(
    phantom_folder: Path, tiny_model_file: Path, tmp_path: Path
) -> None:
    four_d = nib.load(str(phantom_folder / "phantom_4d.nii.gz"))
    source = tmp_path / "one_frame.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(four_d.dataobj)[..., :1], four_d.affine), str(source))
    out = tmp_path / "labels.nii.gz"
    result = runner.invoke(app, ["segment", str(source), "-o", str(out), "--model", str(tiny_model_file), "--no-tta"])
    assert result.exit_code == 0, result.output
    assert nib.load(str(out)).shape == nib.load(str(source)).shape == (64, 64, 4, 1)


def test_segment_dicom_matches_the_grid_of_convert(phantom_folder: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    dicom = phantom_folder / "dicom"
    converted, out = tmp_path / "cine.nii.gz", tmp_path / "labels.nii.gz"
    assert runner.invoke(app, ["convert", str(dicom), str(converted)]).exit_code == 0
    result = runner.invoke(app, ["segment", str(dicom), "-o", str(out), "--model", str(tiny_model_file), "--no-tta"])
    assert result.exit_code == 0, result.output
    image, labels = nib.load(str(converted)), nib.load(str(out))
    assert labels.shape == image.shape == (64, 64, 4, 4)
    np.testing.assert_array_equal(labels.affine, image.affine)


def test_segment_errors_are_one_line(phantom_folder: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    source = str(phantom_folder / "phantom_frame01.nii.gz")
    model = ["--model", str(tiny_model_file)]
    assert_one_line_error(
        runner.invoke(app, ["segment", str(tmp_path / "absent.nii.gz"), "-o", str(tmp_path / "a.nii.gz"), *model]),
        "absent.nii.gz",
    )
    assert_one_line_error(
        runner.invoke(app, ["segment", source, "-o", str(tmp_path / "labels.txt"), *model]),
        "must end in .nii or .nii.gz",
    )
    existing = tmp_path / "exists.nii.gz"
    existing.write_bytes(b"keep me")
    assert_one_line_error(runner.invoke(app, ["segment", source, "-o", str(existing), *model]), "already exists")
    assert existing.read_bytes() == b"keep me"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage" * 100)
    out = tmp_path / "never.nii.gz"
    result = runner.invoke(app, ["segment", source, "-o", str(out), "--model", str(bad)])
    assert_one_line_error(result, "bad.pt", "model file")
    result = runner.invoke(app, ["segment", source, "-o", str(out), "--model", str(tmp_path / "absent.pt")])
    assert_one_line_error(result, "absent.pt", "not found")
    assert not out.exists()
    result = runner.invoke(app, ["segment", source, "-o", str(existing), "--overwrite", *model])
    assert result.exit_code == 0, result.output
    assert nib.load(str(existing)).shape == (64, 64, 4)


def test_export_onnx_and_segment_with_it(phantom_folder: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "tiny.onnx"
    result = runner.invoke(app, ["export-onnx", "--model", str(tiny_model_file), "-o", str(onnx_file)])
    assert result.exit_code == 0, result.output
    assert squashed(f"wrote {onnx_file}") in squashed(result.output)
    assert_one_line_error(
        runner.invoke(app, ["export-onnx", "--model", str(tiny_model_file), "-o", str(onnx_file)]), "already exists"
    )
    result = runner.invoke(app, ["export-onnx", "--model", str(tmp_path / "absent.pt"), "-o", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, "absent.pt")
    source = phantom_folder / "phantom_frame01.nii.gz"
    by_onnx, by_torch = tmp_path / "onnx.nii.gz", tmp_path / "torch.nii.gz"
    result = runner.invoke(app, ["segment", str(source), "-o", str(by_onnx), "--model", str(onnx_file), "--no-tta"])
    assert result.exit_code == 0, result.output
    assert "(onnx)" in result.output
    runner.invoke(app, ["segment", str(source), "-o", str(by_torch), "--model", str(tiny_model_file), "--no-tta"])
    a, b = np.asarray(nib.load(str(by_onnx)).dataobj), np.asarray(nib.load(str(by_torch)).dataobj)
    assert np.mean(a == b) > 0.999


def test_train_command(patients_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(patients_dir), "--out", str(out), "--iterations", "6", "--validation", "1",
            "--validate-every", "3", "--batch-size", "2", "--threads", "1", "--name", "cli-test"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert squashed(f"model: {out / 'best.pt'}") in squashed(result.output)
    model = load_model(out / "best.pt")
    assert model.name == "cli-test" and model.info["iteration"] in (3, 6)
    assert model.config.patch_size == (144, 144)  # the release recipe (the CLI has no architecture options)
    assert load_model(out / "final.pt").info["iteration"] == 6
    # (the progress display may stand above the error: see the xfail test below)
    assert_one_line_error(runner.invoke(app, args), "already holds a training run", only_line=False)
    result = runner.invoke(app, [*args, "--resume"])  # already finished: nothing left to do
    assert result.exit_code == 0, result.output
    assert load_model(out / "final.pt").info["iteration"] == 6
    assert_one_line_error(runner.invoke(app, [*args, "--resume", "--seed", "3"]), "other training", only_line=False)
    assert_one_line_error(
        runner.invoke(app, ["train", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "r2")]),
        "absent", "not a folder", only_line=False,
    )


def test_train_command_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "run")])
    assert_one_line_error(result, "absent", "not a folder")


def test_tiny_config_is_what_the_fixtures_use(tiny_model_file: Path) -> None:
    assert load_model(tiny_model_file).config == TINY


def test_train_with_too_few_patients_for_the_validation_is_a_user_error(patients_dir: Path, tmp_path: Path) -> None:
    args = ["train", "--data", str(patients_dir), "--out", str(tmp_path / "run"), "--threads", "1"]
    result = runner.invoke(app, args)
    assert_one_line_error(result, "--validation", only_line=False)
    assert "unexpected" not in result.output


def test_commands_without_model_use_the_bundled_model(phantom_folder: Path, tmp_path: Path) -> None:
    source = phantom_folder / "phantom_frame01.nii.gz"
    out = tmp_path / "x.nii.gz"
    result = runner.invoke(app, ["segment", str(source), "-o", str(out), "--no-tta"])
    assert result.exit_code == 0, result.output
    assert "opencmr-acdc-unet" in squashed(result.output)
    assert nib.load(str(out)).shape == nib.load(str(source)).shape
    exported = runner.invoke(app, ["export-onnx", "-o", str(tmp_path / "x.onnx")])
    assert exported.exit_code == 0, exported.output


def test_segment_acdc_folder_with_ed_es_only_writes_one_file_per_frame(tiny_model_file: Path, tmp_path: Path) -> None:
    """Frames 0 and 2 are not a cine: one 3D file per frame, named as ACDC names them, that evaluate pairs."""
    from tests.io.test_acdc import make_patient

    patient = make_patient(tmp_path)
    out_dir = tmp_path / "pred"
    result = runner.invoke(
        app, ["segment", str(patient), "-o", str(out_dir / "patient999.nii.gz"), "--model", str(tiny_model_file)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out_dir.iterdir()) == ["patient999_frame01.nii.gz", "patient999_frame03.nii.gz"]
    for name in ("patient999_frame01", "patient999_frame03"):
        written, source = nib.load(str(out_dir / f"{name}.nii.gz")), nib.load(str(patient / f"{name}.nii.gz"))
        assert written.shape == source.shape
        np.testing.assert_array_equal(written.affine, source.affine)
    evaluated = runner.invoke(app, ["evaluate", "--pred", str(out_dir), "--gt", str(patient)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "ED" in evaluated.output and "ES" in evaluated.output
    again = runner.invoke(
        app, ["segment", str(patient), "-o", str(out_dir / "patient999.nii.gz"), "--model", str(tiny_model_file)]
    )
    assert_one_line_error(again, "patient999_frame01.nii.gz", "already exists")


def test_export_onnx_needs_the_onnx_suffix(tiny_model_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export-onnx", "--model", str(tiny_model_file), "-o", str(tmp_path / "model.bin")])
    assert_one_line_error(result, "model.bin", ".onnx")


def test_train_context_slices_widens_an_init_model(patients_dir: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "wide"
    args = ["train", "--data", str(patients_dir), "--out", str(out), "--iterations", "2", "--validation", "1",
            "--validate-every", "2", "--batch-size", "2", "--threads", "1", "--init", str(tiny_model_file),
            "--context-slices", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    model = load_model(out / "final.pt")
    assert model.config.context_slices == 1 and model.config.channels == TINY.channels
    bad = runner.invoke(app, [*args[:4], str(tmp_path / "bad"), *args[5:-1], "-1"])
    assert bad.exit_code != 0 and "--context-slices" in bad.output
