from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from opencmr.errors import InputError, OutputError
from opencmr.segment.model import load_model
from opencmr.segment.train import TrainingConfig, train
from tests.segment.conftest import TINY

CONFIG = TrainingConfig(iterations=20, batch_size=4, n_validation=1, validate_every=5, checkpoint_every=10, threads=1)


class Interrupt(Exception):
    pass


def interrupt_at(iteration: int):
    def progress(done: int, total: int, loss: float, dice: float | None) -> None:
        if done == iteration:
            raise Interrupt

    return progress


def read_log(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "final.pt", weights_only=True)["state_dict"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@pytest.fixture(scope="module")
def fresh_run(patients_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple]]:
    run = tmp_path_factory.mktemp("runs") / "fresh"
    calls: list[tuple] = []
    selected = train(patients_dir, run, seg_config=TINY, config=CONFIG, progress=lambda *a: calls.append(a))
    assert selected == run / "best.pt"
    return run, calls


def test_a_tiny_run_learns_and_writes_its_files(fresh_run: tuple[Path, list[tuple]]) -> None:
    run, calls = fresh_run
    assert {p.name for p in run.iterdir()} == {"run.json", "checkpoint.pt", "best.pt", "final.pt", "log.csv"}
    rows = read_log(run)
    assert [int(r["iteration"]) for r in rows] == [5, 10, 15, 20]  # a row per validation
    losses = [float(r["loss"]) for r in rows]
    assert (losses[-2] + losses[-1]) / 2 < (losses[0] + losses[1]) / 2 - 0.02
    dice_columns = ("val_dice_mean", "val_dice_lv", "val_dice_myo", "val_dice_rv")
    assert all(0.0 <= float(r[k]) <= 1.0 for r in rows for k in dice_columns)
    lrs = [float(r["learning_rate"]) for r in rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < CONFIG.learning_rate
    assert [c[0] for c in calls] == list(range(1, 21)) and all(c[1] == 20 for c in calls)
    assert [c[0] for c in calls if c[3] is not None] == [5, 10, 15, 20]

    settings = json.loads((run / "run.json").read_text())
    assert len(settings["validation_patients"]) == 1 and len(settings["train_patients"]) == 2
    assert set(settings["train_patients"]).isdisjoint(settings["validation_patients"])
    assert settings["segmentation"] == TINY.to_dict() and settings["training"]["iterations"] == 20

    best, final = load_model(run / "best.pt"), load_model(run / "final.pt")
    assert best.config == final.config == TINY
    assert final.info["iteration"] == 20 and final.name == "fresh"
    assert best.info["iteration"] in (5, 10, 15, 20)
    dice = [float(r["val_dice_mean"]) for r in rows]
    assert best.info["validation_dice_model_grid"]["mean"] == pytest.approx(max(dice), abs=1e-4)
    assert best.info["iteration"] == int(rows[dice.index(max(dice))]["iteration"])


def test_same_seed_same_weights_other_seed_other_weights(patients_dir: Path, fresh_run, tmp_path: Path) -> None:
    run, _ = fresh_run
    train(patients_dir, tmp_path / "again", seg_config=TINY, config=CONFIG)
    assert_same_weights(final_weights(tmp_path / "again"), final_weights(run))
    train(patients_dir, tmp_path / "seed1", seg_config=TINY, config=dataclasses.replace(CONFIG, seed=1))
    other = final_weights(tmp_path / "seed1")
    assert any(not torch.equal(other[k], v) for k, v in final_weights(run).items())


@pytest.mark.parametrize("stop", [10, 13])  # at a checkpoint, and three iterations after it
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(
    patients_dir: Path, fresh_run, tmp_path: Path, stop: int
) -> None:
    run, _ = fresh_run
    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(patients_dir, out, seg_config=TINY, config=CONFIG, progress=interrupt_at(stop))
    assert not (out / "final.pt").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["state"]["iteration"] == 10
    calls: list[tuple] = []
    selected = train(
        patients_dir, out, seg_config=TINY, config=CONFIG, resume=True, progress=lambda *a: calls.append(a)
    )
    assert selected == out / "best.pt"
    assert [c[0] for c in calls] == list(range(11, 21))  # continues after the checkpoint
    assert_same_weights(final_weights(out), final_weights(run))
    best = [torch.load(folder / "best.pt", weights_only=True)["state_dict"] for folder in (out, run)]
    assert_same_weights(*best)


def test_resumed_run_logs_the_same_losses(patients_dir: Path, fresh_run, tmp_path: Path) -> None:
    run, _ = fresh_run
    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(patients_dir, out, seg_config=TINY, config=CONFIG, progress=interrupt_at(10))
    train(patients_dir, out, seg_config=TINY, config=CONFIG, resume=True)
    columns = ("iteration", "learning_rate", "loss", "val_dice_mean")
    assert [[r[c] for c in columns] for r in read_log(out)] == [[r[c] for c in columns] for r in read_log(run)]


def test_run_folder_rules(patients_dir: Path, fresh_run, tmp_path: Path) -> None:
    run, _ = fresh_run
    with pytest.raises(OutputError, match="already holds a training run") as info:
        train(patients_dir, run, seg_config=TINY, config=CONFIG)
    assert info.value.path == str(run)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="is not empty"):
        train(patients_dir, busy, seg_config=TINY, config=CONFIG)
    with pytest.raises(OutputError, match="is not empty"):
        train(patients_dir, busy, seg_config=TINY, config=CONFIG, resume=True)
    assert (busy / "notes.txt").read_text() == "keep me" and len(list(busy.iterdir())) == 1
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    with pytest.raises(InputError, match="other training"):
        train(patients_dir, copy, seg_config=TINY, config=dataclasses.replace(CONFIG, learning_rate=1e-3), resume=True)
    with pytest.raises(InputError, match="other segmentation"):
        other = dataclasses.replace(TINY, heart_margin_mm=10.0)
        train(patients_dir, copy, seg_config=other, config=CONFIG, resume=True)
    with pytest.raises(InputError, match="holds no patient folders"):
        train(tmp_path / "busy", tmp_path / "new", seg_config=TINY, config=CONFIG)
    assert not (tmp_path / "new").exists()


def test_run_stopped_before_its_first_checkpoint_can_be_restarted(patients_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(patients_dir, out, seg_config=TINY, config=CONFIG, progress=interrupt_at(3))
    assert not (out / "checkpoint.pt").exists()
    train(patients_dir, out, seg_config=TINY, config=CONFIG, resume=True)
    assert (out / "final.pt").is_file()


def test_without_validation_patients_the_final_model_is_returned(patients_dir: Path, tmp_path: Path) -> None:
    config = dataclasses.replace(CONFIG, iterations=4, n_validation=0)
    selected = train(patients_dir, tmp_path / "run", seg_config=TINY, config=config)
    assert selected == tmp_path / "run" / "final.pt" and not (tmp_path / "run" / "best.pt").exists()
    settings = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(settings["train_patients"]) == 3 and settings["validation_patients"] == []


def test_resumed_run_logs_each_iteration_once(patients_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(patients_dir, out, seg_config=TINY, config=CONFIG, progress=interrupt_at(17))
    train(patients_dir, out, seg_config=TINY, config=CONFIG, resume=True)
    assert [int(r["iteration"]) for r in read_log(out)] == [5, 10, 15, 20]


def test_resume_with_another_thread_count(patients_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(patients_dir, out, seg_config=TINY, config=CONFIG, progress=interrupt_at(10))
    try:
        train(patients_dir, out, seg_config=TINY, config=dataclasses.replace(CONFIG, threads=2), resume=True)
    finally:
        torch.set_num_threads(1)
    assert (out / "final.pt").is_file()


def test_init_starts_from_a_model_file_and_records_it(patients_dir: Path, fresh_run, tmp_path: Path) -> None:
    """A second schedule from finished weights: it starts from them (loss far below a fresh start's) and says so."""
    run, _ = fresh_run
    config = dataclasses.replace(CONFIG, iterations=5, validate_every=5)
    tuned = tmp_path / "tuned"
    train(patients_dir, tuned, config=config, init=run / "final.pt", name="tuned")
    settings = json.loads((tuned / "run.json").read_text())
    assert settings["init"]["path"] == str(run / "final.pt") and len(settings["init"]["sha256"]) == 64
    assert settings["segmentation"] == json.loads((run / "run.json").read_text())["segmentation"]  # the file's config
    assert load_model(tuned / "final.pt").info["initialised_from"] == load_model(run / "final.pt").name
    first_fresh = float(read_log(run)[0]["loss"])
    first_tuned = float(read_log(tuned)[0]["loss"])
    assert first_tuned < first_fresh


def test_init_from_a_2d_model_can_start_a_25d_run(patients_dir: Path, fresh_run, tmp_path: Path) -> None:
    run, _ = fresh_run
    config = dataclasses.replace(CONFIG, iterations=5, validate_every=5)
    wide = tmp_path / "wide"
    train(patients_dir, wide, dataclasses.replace(TINY, context_slices=1), config=config, init=run / "final.pt")
    model = load_model(wide / "final.pt")
    assert model.config == dataclasses.replace(TINY, context_slices=1)
    assert json.loads((wide / "run.json").read_text())["segmentation"]["context_slices"] == 1
    assert float(read_log(wide)[0]["loss"]) < float(read_log(run)[0]["loss"])  # it starts from the 2D weights
