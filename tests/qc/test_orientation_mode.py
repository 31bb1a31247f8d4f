"""Every entry point refuses an unknown orientation mode with the same message, before any work (the CLI: while parsing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencmr.analysis import AnalysisOptions
from opencmr.batch.run import BatchOptions
from opencmr.cli import app
from opencmr.qc.orientation_mode import ORIENTATION_MODES, orientation_mode
from opencmr.service.config import ServiceConfig, ServiceConfigError

MESSAGE = "must be correct, check or off, not 'sideways'"


@pytest.mark.parametrize("mode", ORIENTATION_MODES)
def test_the_three_modes_are_accepted_everywhere(mode: str, tmp_path: Path) -> None:
    assert orientation_mode(mode) == mode
    assert AnalysisOptions(orientation=mode).orientation == mode
    assert BatchOptions(orientation=mode).orientation == mode
    assert ServiceConfig(data_dir=tmp_path, orientation=mode).orientation == mode


def test_an_unknown_mode_is_refused_with_one_message(tmp_path: Path) -> None:
    for make in (lambda: AnalysisOptions(orientation="sideways"), lambda: BatchOptions(orientation="sideways")):
        with pytest.raises(ValueError, match=MESSAGE):
            make()
    with pytest.raises(ServiceConfigError, match=MESSAGE):
        ServiceConfig(data_dir=tmp_path, orientation="sideways")


@pytest.mark.parametrize("command", ["analyze", "diagnose", "segment", "batch"])
def test_the_cli_names_the_option(command: str, tmp_path: Path) -> None:
    out = {
        "analyze": ["-o", str(tmp_path / "out")],
        "segment": ["-o", str(tmp_path / "out.nii.gz")],
        "batch": ["-o", str(tmp_path / "out")],
    }.get(command, [])
    result = CliRunner().invoke(app, [command, str(tmp_path), *out, "--orientation", "sideways"])
    assert result.exit_code != 0
    text = " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())  # without rich's box drawing
    # typer: "Invalid value for '--orientation': must be ..."; batch: "error: --orientation: must be ..."
    assert "--orientation: " + MESSAGE in text.replace("'--orientation'", "--orientation")
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.nii.gz").exists()
