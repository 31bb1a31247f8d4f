"""Training the 2D U-Net: functions for each step, one loop that calls them.

A run folder holds everything needed to continue or audit a run:

``run.json``
    Segmentation, augmentation and training settings and the patient split.
``checkpoint.pt``
    Network, optimiser, iteration and random-generator states (resumable).
``best.pt`` / ``final.pt``
    Model files (:func:`opencmr.segment.model.save_model`): the checkpoint
    with the best validation Dice, and the last one.
``log.csv``
    Iteration, learning rate, training loss and validation Dice per structure.

Runs are seeded: the same data, settings and seed give the same weights on
the same hardware (resuming restores every generator).

References
----------
F. Isensee et al., nnU-Net, Nature Methods 18, 2021 (Dice + cross-entropy
loss, polynomial learning-rate decay, patch sampling around the foreground).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss

from opencmr.errors import InputError, OutputError
from opencmr.evaluate.metrics import dice
from opencmr.io._atomic import atomic_output
from opencmr.io.acdc import parse_info_cfg
from opencmr.labels import Label
from opencmr.segment.augment import AugmentationConfig, augment_batch
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.data import Case, SliceBank, find_cases, load_cases, split_cases
from opencmr.segment.inference import predict_probabilities
from opencmr.segment.model import SegmentationModel, load_model, load_weights_widening_input, save_model
from opencmr.segment.network import build_network
from opencmr.segment.preprocess import class_argmax

__all__ = ["ProgressFn", "TrainingConfig", "TrainingState", "fit", "train", "validate_cases"]

#: ``progress(iteration, total, loss, validation_dice)``; ``validation_dice`` is None between validations.
ProgressFn = Callable[[int, int, float, float | None], None]


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of a training run.

    Parameters
    ----------
    iterations : int
        Optimiser steps (batches).
    batch_size : int
    learning_rate, weight_decay : float
        AdamW; the learning rate decays as ``(1 - i / iterations) ** 0.9``.
    n_validation : int
        Patients held out (spread over diagnostic groups) for model selection.
    validate_every, checkpoint_every : int
        Iterations between validations and between resumable checkpoints.
    heart_fraction : float
        Share of crops centred near the heart; the rest anywhere in the image.
    end_slice_weight : float
        How much more often the most basal and most apical slice of each
        heart are drawn than other slices (:meth:`opencmr.segment.data.SliceBank.sample`; 1: uniformly).
    seed : int
    threads : int
        CPU threads for torch (0 leaves torch's default).
    time_budget_s : float
        Stop after this many seconds of training even before ``iterations``
        (0: no limit). The learning rate then decays over whichever of the
        iteration and time fractions is further along, so a run on a budget
        (a lent GPU, say) still ends its schedule at zero.
    """

    iterations: int = 20000
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    n_validation: int = 10
    validate_every: int = 1000
    checkpoint_every: int = 250
    heart_fraction: float = 0.5
    end_slice_weight: float = 1.0
    seed: int = 0
    threads: int = 2
    time_budget_s: float = 0.0
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)

    def __post_init__(self) -> None:
        positive = ("iterations", "batch_size", "validate_every", "checkpoint_every")
        bad = [name for name in positive if int(getattr(self, name)) < 1]
        checks = {
            "learning_rate": self.learning_rate > 0,
            "n_validation": self.n_validation >= 0,
            "heart_fraction": 0 <= self.heart_fraction <= 1,
            "time_budget_s": self.time_budget_s >= 0,
            "end_slice_weight": 0 < self.end_slice_weight < float("inf"),
        }
        bad += [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings: {', '.join(bad)}")


@dataclass
class TrainingState:
    """What changes during a run (and is saved in ``checkpoint.pt``)."""

    iteration: int = 0
    best_dice: float = -1.0
    best_iteration: int = 0
    seconds: float = 0.0
    running_loss: float = 0.0


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def validate_cases(network: torch.nn.Module, cases: list[Case], config: SegmentationConfig, device: torch.device) -> dict[str, float]:
    """Mean Dice per structure (on the model grid) over ``cases``: quick model selection, not the final evaluation."""
    structures = (Label.LV_BLOOD_POOL, Label.LV_MYOCARDIUM, Label.RV_BLOOD_POOL)
    scores: dict[str, list[float]] = {s.abbreviation: [] for s in structures}
    network.eval()
    with torch.inference_mode():
        for case in cases:
            probs = predict_probabilities(
                torch.tensor(case.image), lambda b: network(b.to(device)).cpu(), config.divisor, ((),), context=config.context_slices
            )
            pred = class_argmax(probs, 1).numpy()
            for structure in structures:
                scores[structure.abbreviation].append(dice(pred == structure, case.labels == structure))
    network.train()
    out = {k: float(np.mean(v)) for k, v in scores.items()}
    out["mean"] = float(np.mean(list(out.values())))
    return out


_RUN_START_FILES = frozenset({"run.json", "log.csv"})


def _prepare_run_folder(out_dir: Path, resume: bool) -> bool:
    """Create the run folder; return whether a checkpoint will be resumed.

    With ``resume``, a folder holding only what a run writes before its first
    checkpoint (``run.json``, ``log.csv``) is a run that stopped early: it
    starts again. Any other non-empty folder is refused, never cleared.
    """
    checkpoint = out_dir / "checkpoint.pt"
    if checkpoint.exists():
        if not resume:
            raise OutputError(out_dir, "already holds a training run (use --resume to continue it, or another --out)")
        return True
    if out_dir.is_file():
        raise OutputError(out_dir, "is a file, not a run folder")
    if out_dir.exists():
        names = {p.name for p in out_dir.iterdir()}
        if names and (not resume or names - _RUN_START_FILES):
            raise OutputError(out_dir, "is not empty and holds no checkpoint to resume")
        for name in names:
            (out_dir / name).unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    return False


def _truncate_log(path: Path, iteration: int) -> None:
    """Drop log rows written after the checkpoint being resumed (they will be written again)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= iteration]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)


def _groups(folders: list[Path]) -> list[str] | None:
    groups = []
    for folder in folders:
        info = folder / "Info.cfg"
        if not info.exists():
            return None
        parsed = parse_info_cfg(info)
        groups.append(str(parsed.group.value) if parsed.group is not None else "unknown")
    return groups


def _save_checkpoint(path: Path, network, optimiser, state: TrainingState, np_rng, gen: torch.Generator) -> None:
    payload = {
        "network": network.state_dict(),
        "optimiser": optimiser.state_dict(),
        "state": asdict(state),
        "numpy_rng": json.dumps(np_rng.bit_generator.state),
        "torch_rng": gen.get_state(),
    }
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, network, optimiser, np_rng, gen: torch.Generator) -> TrainingState:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    network.load_state_dict(payload["network"])
    optimiser.load_state_dict(payload["optimiser"])
    np_rng.bit_generator.state = json.loads(payload["numpy_rng"])
    gen.set_state(payload["torch_rng"])
    return TrainingState(**payload["state"])


def _run_settings(seg: SegmentationConfig, cfg: TrainingConfig, train: list[Path], val: list[Path], data_dir: Path) -> dict[str, Any]:
    return {
        "segmentation": seg.to_dict(),
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("augmentation", "threads")},
        "augmentation": asdict(cfg.augmentation),
        "data": str(data_dir),
        "train_patients": [p.name for p in train],
        "validation_patients": [p.name for p in val],
    }


def _check_same_run(out_dir: Path, settings: dict[str, Any]) -> None:
    saved = json.loads((out_dir / "run.json").read_text())
    saved.get("training", {}).pop("threads", None)  # free to change between sessions
    saved.get("training", {}).setdefault("end_slice_weight", 1.0)  # runs from before the setting sampled uniformly
    for key in ("segmentation", "training", "augmentation", "train_patients", "validation_patients"):
        if json.loads(json.dumps(settings[key])) != saved.get(key):
            raise InputError(out_dir / "run.json", f"the run was started with other {key}; resume it with the same settings")


def train(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    seg_config: SegmentationConfig | None = None,
    config: TrainingConfig | None = None,
    *,
    resume: bool = False,
    init: str | os.PathLike[str] | None = None,
    name: str | None = None,
    progress: ProgressFn | None = None,
    loading_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Train a segmentation model on labelled patient folders; return the path of the selected model file.

    Parameters
    ----------
    data_dir : path
        Folder of patient folders (ACDC layout, or any folder :func:`opencmr.io.read_study` reads with ``*_gt`` labels).
    out_dir : path
        Run folder (see the module docstring). Must be new or empty unless ``resume``.
    seg_config, config : optional
        Model and training settings (defaults: the release recipe).
    resume : bool
        Continue the run in ``out_dir`` from its checkpoint.
    init : path, optional
        Model file whose weights start the run (fine-tuning, or a second
        schedule after a finished run); its configuration replaces ``seg_config``,
        except ``context_slices`` and ``patch_size`` when ``seg_config`` is given:
        a 2D model can start a 2.5D one
        (:func:`~opencmr.segment.model.load_weights_widening_input`), and a
        model can be fine-tuned on larger crops (more context around the heart).
    name : str, optional
        Model name recorded in the model file (default: the run folder's name).
    progress, loading_progress : callables, optional
        Progress callbacks for the training loop and for data loading.

    Returns
    -------
    pathlib.Path
        ``best.pt`` when there are validation patients, else ``final.pt``.
    """
    config = config or TrainingConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    folders = find_cases(data_dir)
    if config.n_validation >= len(folders):
        raise InputError(
            data_dir, f"holds {len(folders)} patients: too few to hold out {config.n_validation} for validation (--validation)"
        )
    train_folders, val_folders = split_cases(folders, config.n_validation, config.seed, _groups(folders))
    init_model = None
    if init is not None:
        init_model = load_model(init)
        given = seg_config or init_model.config
        seg_config = dataclasses.replace(init_model.config, context_slices=given.context_slices, patch_size=given.patch_size)
    seg_config = seg_config or SegmentationConfig()
    settings = _run_settings(seg_config, config, train_folders, val_folders, data_dir)
    if init is not None:
        settings["init"] = {"path": str(init), "sha256": hashlib.sha256(Path(init).read_bytes()).hexdigest(),
                            "name": init_model.name}
    resuming = _prepare_run_folder(out_dir, resume)
    if resuming:
        _check_same_run(out_dir, settings)
    else:
        (out_dir / "run.json").write_text(json.dumps(settings, indent=2))

    if config.threads:
        torch.set_num_threads(config.threads)
    train_cases = load_cases(train_folders, seg_config, loading_progress)
    val_cases = load_cases(val_folders, seg_config) if val_folders else []
    info = {
        "name": name or out_dir.name,
        **({} if init_model is None else {"initialised_from": init_model.name}),
        "training_data": str(data_dir),
        "train_patients": len(train_folders),
        "validation_patients": [p.name for p in val_folders],
    }
    return fit(
        train_cases, val_cases, out_dir, seg_config, config, info=info,
        init_weights=None if init_model is None else init_model.network.state_dict(), resuming=resuming, progress=progress,
    )


def _schedule_fraction(state: TrainingState, config: TrainingConfig) -> float:
    """How far along the schedule is: iterations done, or time spent when that is further along."""
    done = state.iteration / config.iterations
    if config.time_budget_s:
        done = max(done, state.seconds / config.time_budget_s)
    return min(done, 1.0)


def fit(
    train_cases: list[Case],
    val_cases: list[Case],
    out_dir: Path,
    seg_config: SegmentationConfig,
    config: TrainingConfig,
    *,
    info: dict[str, Any],
    init_weights: dict[str, torch.Tensor] | None = None,
    resuming: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """The training loop over prepared cases, in a run folder already holding ``run.json``.

    :func:`train` reads patient folders and calls this; a script that
    prepares its cases otherwise (a fold of a cross-validation, say) calls it
    directly. ``info`` is stored in the model files. Returns ``best.pt`` when
    there are validation cases, else ``final.pt``.
    """
    out_dir = Path(out_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = _device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)
    np_rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    bank = SliceBank(train_cases)

    network = build_network(seg_config).to(device)
    if init_weights is not None:
        load_weights_widening_input(network, init_weights)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    state = TrainingState()
    if resuming:
        state = _load_checkpoint(out_dir / "checkpoint.pt", network, optimiser, np_rng, gen)
        _truncate_log(out_dir / "log.csv", state.iteration)

    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    network.train()
    with log_path.open("a", newline="") as log_file:
        log = csv.writer(log_file)
        if new_log:
            log.writerow(["iteration", "learning_rate", "loss", "val_dice_mean", "val_dice_lv", "val_dice_myo", "val_dice_rv", "seconds"])
        started = time.perf_counter() - state.seconds
        running_t = None if state.iteration == 0 else torch.tensor(state.running_loss, device=device)
        while _schedule_fraction(state, config) < 1.0:
            lr = config.learning_rate * (1 - _schedule_fraction(state, config)) ** 0.9
            for group in optimiser.param_groups:
                group["lr"] = lr
            images, labels = bank.sample(
                np_rng, config.batch_size, seg_config.patch_size, config.heart_fraction, context=seg_config.context_slices,
                end_slice_weight=config.end_slice_weight,
            )
            x, y = augment_batch(torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device), config.augmentation, gen)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(network(x), y[:, None])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 12.0)
            optimiser.step()
            state.iteration += 1
            # the running loss stays on the device; reading it (a synchronisation) only when it is reported
            value = loss.detach()
            running_t = value if running_t is None else 0.98 * running_t + 0.02 * value
            state.seconds = time.perf_counter() - started
            val = None
            last = _schedule_fraction(state, config) >= 1.0
            reporting = progress is not None or last or any(
                state.iteration % every == 0 for every in (50, config.checkpoint_every, config.validate_every)
            )
            if reporting:
                state.running_loss = float(running_t)
            running = state.running_loss
            if val_cases and (state.iteration % config.validate_every == 0 or last):
                val = validate_cases(network, val_cases, seg_config, device)
                log.writerow([state.iteration, f"{lr:.6g}", f"{running:.4f}", *(f"{val[k]:.4f}" for k in ("mean", "lv", "myo", "rv")), f"{state.seconds:.0f}"])
                if val["mean"] > state.best_dice:
                    state.best_dice, state.best_iteration = val["mean"], state.iteration
                    best_info = {**info, "iteration": state.iteration, "validation_dice_model_grid": val}
                    save_model(SegmentationModel(seg_config, network, best_info), out_dir / "best.pt", overwrite=True)
            elif state.iteration % 50 == 0 or last:
                log.writerow([state.iteration, f"{lr:.6g}", f"{running:.4f}", "", "", "", "", f"{state.seconds:.0f}"])
                log_file.flush()
            if state.iteration % config.checkpoint_every == 0 or last:
                log_file.flush()
                _save_checkpoint(out_dir / "checkpoint.pt", network, optimiser, state, np_rng, gen)
            if progress is not None:
                progress(state.iteration, config.iterations, running, None if val is None else val["mean"])
    final_info = {**info, "iteration": state.iteration, "seconds": round(state.seconds)}
    save_model(SegmentationModel(seg_config, network, final_info), out_dir / "final.pt", overwrite=True)
    return out_dir / ("best.pt" if val_cases else "final.pt")
