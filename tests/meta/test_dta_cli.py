"""``opencmr meta dta`` end to end: tables, summary.json, plots, opencmr's own evaluation added as a study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.meta.data import read_dta_csv
from opencmr.meta.dta import OUTPUT_FILES, add_evaluation

runner = CliRunner()


@pytest.fixture
def auditc(meta_reference: Path) -> Path:
    return meta_reference / "auditc_mada.csv"  # mada::AuditC (Kriston 2008, 14 studies)


def test_meta_dta_writes_tables_summary_and_plots(auditc: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["meta", "dta", str(auditc), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # rich wraps long lines, at spaces and hyphens
    # mada 0.5.12 vignette (reitsma REML on AuditC): sensitivity 0.891 [0.808, 0.941], FPR 0.220 [0.167, 0.285], AUC 0.887
    assert "sensitivity0.891(0.808-0.941),FPR0.220(0.167-0.285),AUC0.887,pAUC0.861" in text
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 14 and summary["bivariate"] is not None
    for name in ("forest.png", "sroc.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "sroc.svg").read_text().lstrip().startswith("<?xml")
    again = runner.invoke(app, ["meta", "dta", str(auditc), "--out", str(out)])
    assert again.exit_code == 1 and "exists" in again.output


def test_own_evaluation_is_added_and_marked(auditc: Path, tmp_path: Path) -> None:
    two_by_two = tmp_path / "two_by_two.csv"
    two_by_two.write_text("study,class,tp,fp,fn,tn\nacdc,DCM,15,1,1,63\nacdc,HCM,15,1,1,63\n")
    studies, added = add_evaluation(read_dta_csv(auditc), two_by_two, "dcm")
    assert added == ("opencmr (DCM)",) and studies.k == 15 and studies.tp[-1] == 15
    out = tmp_path / "with"
    result = runner.invoke(
        app,
        ["meta", "dta", str(auditc), "--evaluation", str(two_by_two), "--evaluation-class", "DCM", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["opencmr_studies"] == ["opencmr (DCM)"]
    missing = runner.invoke(
        app, ["meta", "dta", str(auditc), "--evaluation", str(two_by_two), "--evaluation-class", "RV"]
    )
    assert missing.exit_code == 1 and "no row for class 'RV'" in missing.output


def test_meta_dta_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("study,TP,FN,FP,TN\nA,10,-1,5,20\nB,3,4,5,6\n")
    result = runner.invoke(app, ["meta", "dta", str(bad)])
    assert result.exit_code == 1 and "study 'A': FN = -1" in result.output and "Traceback" not in result.output
    two = tmp_path / "two.csv"
    two.write_text("study,TP,FN,FP,TN\nA,10,1,5,20\nB,3,4,5,6\n")
    result = runner.invoke(app, ["meta", "dta", str(two)])
    assert result.exit_code == 0 and "bivariate model needs at least 3 studies" in " ".join(result.output.split())
