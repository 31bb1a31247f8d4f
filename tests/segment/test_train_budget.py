"""Training on a time budget, and the training loop (:func:`fit`) called directly on prepared cases."""

from __future__ import annotations

import csv
import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pytest

from opencmr.errors import OutputError
from opencmr.segment import train as train_module
from opencmr.segment.data import Case
from opencmr.segment.model import load_model
from opencmr.segment.train import TrainingConfig, _prepare_run_folder, fit, train
from tests.segment.conftest import TINY

BUDGET = TrainingConfig(
    iterations=10**7, batch_size=2, n_validation=1, validate_every=10**6, checkpoint_every=10**6, threads=1,
    time_budget_s=2.0,
)


def read_log(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def synthetic_case(patient: str, frame: int, seed: int) -> Case:
    """A 3-slice 40 x 40 'heart': RV on the left, LV blood pool ringed by myocardium, brighter than background."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:40, :40]
    r = np.hypot(rows - 20, cols - 22)
    labels = np.zeros((3, 40, 40), np.uint8)
    labels[:, r < 9] = 2
    labels[:, r < 6] = 3
    labels[:, (np.hypot(rows - 20, cols - 8) < 5)] = 1
    image = 0.1 + 0.2 * (labels == 2) + 0.6 * ((labels == 1) | (labels == 3)) + rng.normal(0, 0.03, labels.shape)
    return Case(patient, frame, np.clip(image, 0, 1).astype(np.float32), labels, (8.0, 2.0, 2.0))


def prepared_run(out: Path) -> Path:
    assert _prepare_run_folder(out, resume=False) is False
    (out / "run.json").write_text(json.dumps({"job": "test", "segmentation": TINY.to_dict()}))
    return out


def test_negative_time_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        TrainingConfig(time_budget_s=-1.0)
    assert TrainingConfig(time_budget_s=0.0).time_budget_s == 0.0  # 0: no limit


def test_a_run_on_a_time_budget_stops_on_its_own(patients_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "budget"
    selected = train(patients_dir, run, seg_config=TINY, config=BUDGET)
    assert selected == run / "best.pt"
    assert (run / "final.pt").is_file() and (run / "best.pt").is_file()
    rows = read_log(run)
    last = int(rows[-1]["iteration"])
    assert 1 <= last < 10**5  # stopped by the clock, far from its iterations
    final = load_model(run / "final.pt")
    assert final.info["iteration"] == last
    assert 1 <= final.info["seconds"] <= 30
    # the schedule followed the clock: the last step ran at a small fraction of the starting rate
    assert float(rows[-1]["learning_rate"]) < 0.5 * BUDGET.learning_rate
    assert rows[-1]["val_dice_mean"] != ""  # the last iteration is validated


def test_learning_rate_decays_over_the_time_fraction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fake clock advancing 0.1 s per reading: a 2 s budget is 20 iterations, the rate decays to 0 over them."""
    ticks = iter(np.arange(0, 1000, 0.1))
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    config = dataclasses.replace(BUDGET, validate_every=5)
    out = prepared_run(tmp_path / "run")
    cases = [synthetic_case(f"p{i}", 0, i) for i in range(3)]
    fit(cases[:2], cases[2:], out, TINY, config, info={"name": "clock"})
    rows = read_log(out)
    assert [int(r["iteration"]) for r in rows] == [5, 10, 15, 20]
    lr0 = config.learning_rate
    for row in rows:
        done = 0.1 * (int(row["iteration"]) - 1) / 2.0  # time fraction before the step (iterations: ~0)
        assert float(row["learning_rate"]) == pytest.approx(lr0 * (1 - done) ** 0.9, rel=1e-5)
    assert float(rows[-1]["learning_rate"]) < 0.1 * lr0
    final = load_model(out / "final.pt")
    assert final.info["iteration"] == 20 and final.info["seconds"] == 2


def test_fit_on_prepared_cases_returns_the_best_model_with_validation_cases(tmp_path: Path) -> None:
    out = prepared_run(tmp_path / "with_val")
    cases = [synthetic_case(f"p{i}", f, 10 * i + f) for i in range(3) for f in (0, 5)]
    config = TrainingConfig(iterations=6, batch_size=2, n_validation=1, validate_every=3, checkpoint_every=3, threads=1)
    selected = fit(cases[:4], cases[4:], out, TINY, config, info={"name": "fold-x", "train_patients": 2})
    assert selected == out / "best.pt"
    assert {p.name for p in out.iterdir()} == {"run.json", "log.csv", "checkpoint.pt", "best.pt", "final.pt"}
    assert json.loads((out / "run.json").read_text())["job"] == "test"  # fit leaves run.json alone
    rows = read_log(out)
    assert [int(r["iteration"]) for r in rows] == [3, 6]
    assert all(0.0 <= float(r["val_dice_mean"]) <= 1.0 for r in rows)
    best, final = load_model(out / "best.pt"), load_model(out / "final.pt")
    assert best.config == final.config == TINY
    assert best.name == final.name == "fold-x" and final.info["train_patients"] == 2
    assert final.info["iteration"] == 6 and best.info["iteration"] in (3, 6)
    dice = [float(r["val_dice_mean"]) for r in rows]
    assert best.info["validation_dice_model_grid"]["mean"] == pytest.approx(max(dice), abs=1e-4)


def test_fit_without_validation_cases_returns_the_final_model(tmp_path: Path) -> None:
    out = prepared_run(tmp_path / "no_val")
    cases = [synthetic_case(f"p{i}", 0, i) for i in range(2)]
    config = TrainingConfig(iterations=3, batch_size=2, n_validation=0, threads=1)
    selected = fit(cases, [], out, TINY, config, info={"name": "no-val"})
    assert selected == out / "final.pt" and selected.is_file()
    assert not (out / "best.pt").exists()
    final = load_model(selected)
    assert final.name == "no-val" and final.info["iteration"] == 3
    rows = read_log(out)  # no validation: the last iteration is logged all the same
    assert [int(r["iteration"]) for r in rows] == [3] and rows[0]["val_dice_mean"] == ""


def test_prepare_run_folder_refuses_a_folder_holding_other_files(tmp_path: Path) -> None:
    out = prepared_run(tmp_path / "run")
    assert (out / "run.json").is_file()
    with pytest.raises(OutputError):
        _prepare_run_folder(out, resume=False)
