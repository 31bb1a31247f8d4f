"""``opencmr batch`` end to end: tiny phantom studies and broken ones, on real Dask clusters, with real files.

The analysis runs without test-time augmentation and orientation check to keep
each study a few seconds on two shared cores.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opencmr.batch import BatchOptions, read_manifest, run_batch
from opencmr.cli import app
from opencmr.errors import InputError
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

runner = CliRunner()
FAST = ["--no-tta", "--orientation", "off"]


def _phantom(folder: Path, group: str, seed: int) -> Path:
    config = PhantomConfig(
        group=group, n_frames=3, n_slices=4, matrix=(128, 128), seed=seed, inplane_samples=1, through_plane_samples=1
    )
    write_phantom(make_phantom(config), folder)
    return folder


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two phantom studies, a file that is no image, and a study folder that does not exist yet; relative paths."""
    root = tmp_path_factory.mktemp("cohort")
    _phantom(root / "studies" / "patient001", "DCM", 1)
    _phantom(root / "studies" / "patient002", "NOR", 2)
    (root / "studies" / "broken.nii.gz").write_text("this is not an image\n")
    (root / "manifest.csv").write_text(
        "study,id,height_cm,weight_kg,sex,site\n"
        "studies/patient001,,180,80,M,A\n"
        "studies/patient002,nor-2,,,,B\n"
        "studies/broken.nii.gz,,,,,B\n"
        "studies/late,,,,,C\n"
    )
    return root


@pytest.fixture(scope="module")
def first_run(cohort: Path) -> dict[str, Any]:
    """The batch through the library on a LocalCluster of one threaded worker; a snapshot of what it wrote."""
    out = cohort / "out"
    result = run_batch(
        read_manifest(cohort / "manifest.csv"),
        out,
        BatchOptions(workers=1, processes=False, tta=False, orientation="off"),
    )
    return {
        "result": result,
        "rows": _read_csv(out / "cohort.csv"),
        "mtimes": {i: (out / i / "measurements.json").stat().st_mtime_ns for i in ("patient001", "nor-2")},
        "markers": {i: (out / i / "batch.json").read_text() for i in ("patient001", "nor-2")},
    }


@pytest.fixture(scope="module")
def second_run(cohort: Path, first_run: dict[str, Any]) -> dict[str, Any]:
    """The missing study appears; the CLI runs again (default: resume, local worker processes)."""
    _phantom(cohort / "studies" / "late", "HCM", 3)
    out = cohort / "out"
    result = runner.invoke(app, ["batch", str(cohort / "manifest.csv"), "-o", str(out), *FAST])
    return {
        "result": result,
        "rows": _read_csv(out / "cohort.csv"),
        "summary": json.loads((out / "batch_summary.json").read_text()),
    }


def test_good_studies_are_analysed_and_every_study_has_a_row(cohort: Path, first_run: dict[str, Any]) -> None:
    out, rows = cohort / "out", first_run["rows"]
    assert list(rows) == ["patient001", "nor-2", "broken", "late"]  # manifest order, ids derived or given
    for ident in ("patient001", "nor-2"):
        for name in ("measurements.json", "diagnosis.json", "qc.json", "segmentation.nii.gz", "batch.json"):
            assert (out / ident / name).is_file(), (ident, name)
        assert rows[ident]["status"] in ("ok", "qc-fail") and rows[ident]["error"] == ""
        measured = json.loads((out / ident / "measurements.json").read_text())
        assert float(rows[ident]["lv_edv_ml"]) == pytest.approx(measured["lv_edv_ml"])
        assert rows[ident]["qc_verdict"] == json.loads((out / ident / "qc.json").read_text())["verdict"]
        assert rows[ident]["study"] == str(
            cohort / "studies" / ("patient001" if ident == "patient001" else "patient002")
        )
    # the manifest's height and weight reach the analysis; the diagnosis group and probabilities are in the row
    assert float(rows["patient001"]["height_cm"]) == 180.0 and rows["patient001"]["sex"] == "M"
    diagnosis = json.loads((out / "patient001" / "diagnosis.json").read_text())
    assert rows["patient001"]["diagnosis_group"] == diagnosis["group"]
    assert {k[2:] for k in rows["patient001"] if k.startswith("p_")} == set(diagnosis["probabilities"])


def test_a_broken_study_is_reported_without_stopping_the_others(cohort: Path, first_run: dict[str, Any]) -> None:
    out, rows, result = cohort / "out", first_run["rows"], first_run["result"]
    assert rows["broken"]["status"] == "error" and rows["broken"]["error_type"] == "InputError"
    assert "broken.nii.gz" in rows["broken"]["error"] and "Traceback" not in rows["broken"]["error"]
    assert rows["late"]["status"] == "error" and "does not exist" in rows["late"]["error"]
    assert rows["broken"]["lv_edv_ml"] == ""
    assert "Traceback" in (out / "broken" / "error.txt").read_text()
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["counts"]["error"] == 2 and summary["counts"]["ran"] == 4 and summary["counts"]["skipped"] == 0
    assert {f["id"] for f in summary["failures"]} == {"broken", "late"}
    assert summary["cluster"]["workers"] == 1
    assert [o.id for o in result.failures] == ["broken", "late"]
    assert all(s["peak_rss_mb"] > 0 for s in summary["studies"])


def test_a_rerun_skips_finished_studies_and_retries_failed_ones(
    cohort: Path, second_run: dict[str, Any], first_run: dict[str, Any]
) -> None:
    out, result, rows = cohort / "out", second_run["result"], second_run["rows"]
    assert result.exit_code == 1, result.output  # broken.nii.gz still fails
    assert "failed studies" in result.output and "broken" in result.output
    assert str(out / "cohort.csv") in result.output.replace("\n", "")
    counts = second_run["summary"]["counts"]
    assert (counts["skipped"], counts["ran"], counts["error"]) == (2, 2, 1)
    for ident in ("patient001", "nor-2"):  # not recomputed
        assert (out / ident / "measurements.json").stat().st_mtime_ns == first_run["mtimes"][ident]
        assert (out / ident / "batch.json").read_text() == first_run["markers"][ident]
        assert rows[ident]["lv_edv_ml"] == first_run["rows"][ident]["lv_edv_ml"]
    assert rows["late"]["status"] in ("ok", "qc-fail") and (out / "late" / "measurements.json").is_file()
    assert not (out / "late" / "error.txt").exists()  # the earlier failure's traceback is gone
    assert rows["broken"]["status"] == "error"
    assert second_run["summary"]["cluster"]["processes"] is True


def test_a_batch_with_every_study_finished_exits_0_without_a_cluster(cohort: Path, second_run: dict[str, Any]) -> None:
    manifest = cohort / "finished.csv"
    manifest.write_text("study,id\nstudies/patient001,\nstudies/patient002,nor-2\n")
    result = runner.invoke(app, ["batch", str(manifest), "-o", str(cohort / "out"), *FAST])
    assert result.exit_code == 0, result.output
    summary = json.loads((cohort / "out" / "batch_summary.json").read_text())
    assert summary["counts"]["skipped"] == 2 and summary["cluster"]["workers"] == 0


def test_scheduler_address_runs_on_an_existing_cluster(cohort: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    out = tmp_path / "out"
    (out / "user").mkdir(parents=True)
    (out / "user" / "notes.txt").write_text("mine")  # a folder the batch did not write: never overwritten
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"study,id\n{cohort / 'studies' / 'patient002'},remote\n{cohort / 'studies' / 'patient001'},user\n"
    )
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        result = runner.invoke(
            app, ["batch", str(manifest), "-o", str(out), "--scheduler", cluster.scheduler_address, *FAST]
        )
    assert result.exit_code == 1, result.output
    rows = _read_csv(out / "cohort.csv")
    assert rows["remote"]["status"] in ("ok", "qc-fail") and (out / "remote" / "measurements.json").is_file()
    assert rows["user"]["status"] == "error" and "not written by 'opencmr batch'" in rows["user"]["error"]
    assert sorted(p.name for p in (out / "user").iterdir()) == ["notes.txt"]
    assert (out / "user" / "notes.txt").read_text() == "mine"
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["cluster"]["scheduler"] == cluster.scheduler_address and summary["cluster"]["workers"] == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("path,id\na,b\n", "has no 'study' column (columns found: 'path', 'id'"),
        ("study\np1/image.nii.gz\np2/image.nii.gz\n", "line 3: id 'image' is already used on line 2"),
        ("study,id\na,X\nb,x\n", "line 3: id 'x' is already used on line 2"),
        ("study,id\na,../up\n", "line 2: id '../up' is not a safe folder name"),
        ("study,height_cm\na,tall\n", "line 2: height_cm 'tall' is not a number"),
        ("study,weight_kg\na,-3\n", "line 2: weight_kg must be a positive number"),
        ("study,sex\na,x\n", "line 2: sex 'x' is not M or F"),
        ("study,id\n,a\n", "line 2: the 'study' cell is empty"),
        ("study\n", "lists no studies"),
    ],
)
def test_manifest_errors_name_the_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(text)
    with pytest.raises(InputError) as caught:
        read_manifest(manifest)
    assert str(caught.value).startswith(f"{manifest}: ") and problem in str(caught.value)


def test_manifest_error_in_the_cli_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("study,hr_bpm\na,fast\n")
    result = runner.invoke(app, ["batch", str(manifest), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{manifest}: line 2: hr_bpm 'fast' is not a number" in lines[0]
    assert not (tmp_path / "out").exists()


def test_manifest_reads_optional_columns_and_resolves_relative_paths(tmp_path: Path) -> None:
    manifest = tmp_path / "m" / "cohort.csv"
    manifest.parent.mkdir()
    manifest.write_text("\ufeffstudy,sex,hr_bpm,site\n../data/Case 7.nii.gz,female,64,X\n\n/abs/p9,,,\n")
    read = read_manifest(manifest)
    first, second = read.entries
    assert (first.id, first.sex, first.hr_bpm, first.line) == ("Case_7", "F", 64.0, 2)
    assert first.study == tmp_path / "m" / ".." / "data" / "Case 7.nii.gz"
    assert (second.id, second.study, second.sex) == ("p9", Path("/abs/p9"), None)
    assert read.ignored_columns == ("site",)
