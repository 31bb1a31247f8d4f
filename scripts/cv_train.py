"""Train the cross-validation fold models (and a release candidate) in parallel on one accelerator.

Five segmentation models, one per fold of a 5-fold split of the shared ACDC
patients (stratified by group), give every patient a segmentation from a
model that never saw it: the out-of-fold predictions the diagnosis model must
be trained and judged on (issue 5), and the recipe's cross-validated Dice.
A sixth job fine-tunes the bundled model on its own 70/10 split; other
fine-tuning recipes (:data:`CANDIDATES`, e.g. ``cand-ctx2-p208``, which made
model v3) are chosen with ``--jobs`` and can start from another model (``--init``).

The work happens on a lent GPU machine, which cannot read ``../shared``, so
it is done in two steps:

``python scripts/cv_train.py pack --data ../shared/data/acdc/training --out .devdata/acdc.pack.xz``
    here: every labelled frame prepared exactly as training prepares it
    (:func:`opencmr.segment.data.load_cases`: intensities normalised, resampled
    to the model's 1.5 mm grid), images quantised to 7 bits (a step of
    0.008, under the smallest training noise) and compressed into one file
    small enough to travel. It is image data: it lives in an ignored folder
    and is never committed (ACDC terms).
``python scripts/cv_train.py run --pack .devdata/acdc.pack.xz --out OUT --budget-s 420``
    there: one process per job sharing the GPU, each training for the same
    wall-clock budget (:attr:`opencmr.segment.train.TrainingConfig.time_budget_s`),
    then the model files gathered into ``OUT`` (``fold{k}.pt``,
    ``candidate.pt``) with the run folders' logs in ``runs.tar.gz``; the run
    folders themselves (checkpoints) stay in ``--work``.

The fold assignment is written to ``OUT/folds.json`` (and inside the tar), so
the out-of-fold segmentation step and the diagnosis benchmark use the same folds.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

N_FOLDS = 5
#: Fine-tuning recipes from the bundled model (or ``--init``) on its own 70/10 split: changes to
#: the ``candidate`` recipe (TrainingConfig / SegmentationConfig fields). The ``cand-*`` recipes
#: were written against v2 (one context slice, 144-px crops); from v3, which has both changes,
#: ``cand-ctx2`` and ``cand-p208`` change nothing but the learning rate.
CANDIDATES: dict[str, dict[str, object]] = {
    "candidate": {},
    "cand-lowlr": {"learning_rate": 3e-4, "seed": 1},
    "cand-p208": {"patch_size": (208, 208), "learning_rate": 5e-4},
    "cand-ctx2": {"context_slices": 2},
    "cand-ctx2-p208": {"context_slices": 2, "patch_size": (208, 208), "learning_rate": 5e-4},
    # a short low-rate continuation of a cand-ctx2-p208 model (--init), three seeds to average (a model soup)
    **{f"polish-s{k}": {"context_slices": 2, "patch_size": (208, 208), "learning_rate": 2e-4, "seed": k}
       for k in range(3)},
    # a continuation of v3 (--init) that draws the most basal and apical slice of each heart 3x as often: where
    # most of the LVEF error comes from (benchmarks/function.py); run on a CPU with --batch-size 16
    "ends-w3": {"context_slices": 2, "patch_size": (208, 208), "learning_rate": 2e-4, "end_slice_weight": 3.0},
}
LEVELS = 127  # 7-bit images
_FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 1}, {"id": lzma.FILTER_LZMA2, "preset": 9}]


def pack(data: Path, out: Path, model: Path | None) -> None:
    """Prepare every labelled frame of ``data`` and write the compressed pack ``out``."""
    from opencmr.io.acdc import parse_info_cfg
    from opencmr.segment.data import find_cases, load_cases
    from opencmr.segment.model import load_model

    config = load_model(model).config
    folders = find_cases(data)
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for folder in folders:
        group = parse_info_cfg(folder / "Info.cfg").group
        for case in load_cases([folder], config):
            i = len(meta)
            arrays[f"image{i}"] = np.round(np.clip(case.image, 0, 1) * LEVELS).astype(np.uint8)
            arrays[f"labels{i}"] = case.labels.astype(np.uint8)
            meta.append({"patient": case.patient, "frame": case.frame, "spacing_mm": list(case.spacing_mm),
                         "group": None if group is None else str(group.value)})
    buffer = io.BytesIO()
    header = json.dumps({"config": config.to_dict(), "cases": meta}).encode()
    np.savez(buffer, meta=np.frombuffer(header, np.uint8), **arrays)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(buffer.getvalue(), format=lzma.FORMAT_XZ, filters=_FILTERS))
    print(f"{out}: {len(folders)} patients, {len(meta)} frames, {out.stat().st_size / 1e6:.1f} MB")


def load_pack(path: Path):
    """The cases of a pack (:class:`opencmr.segment.data.Case`) and the patients' groups."""
    from opencmr.segment.data import Case

    with np.load(io.BytesIO(lzma.decompress(path.read_bytes()))) as data:
        meta = json.loads(data["meta"].tobytes())
        cases = [
            Case(m["patient"], int(m["frame"]), data[f"image{i}"].astype(np.float32) / LEVELS,
                 data[f"labels{i}"].copy(), tuple(m["spacing_mm"]))
            for i, m in enumerate(meta["cases"])
        ]
    groups = {m["patient"]: m["group"] for m in meta["cases"]}
    return cases, groups


def assign_folds(groups: dict[str, str], seed: int = 0) -> dict[str, int]:
    """Patient → fold: each group's patients, in a seeded random order, dealt over the folds.

    The k-th patient of a group goes to fold ``(start + 2k) mod 5``, where
    ``start`` is the number of patients dealt before the group; 2 and 5 being
    coprime, every group is spread as evenly as round-robin would. (This is
    the assignment of the shipped fold models, ``models/opencmr-acdc-cv-folds/folds.json``:
    keep it.)
    """
    rng = np.random.default_rng(seed)
    folds: dict[str, int] = {}
    for group in sorted(set(groups.values())):
        members = sorted(p for p, g in groups.items() if g == group)
        start = len(folds)
        for k, i in enumerate(rng.permutation(len(members))):
            folds[members[i]] = (start + 2 * k) % N_FOLDS
    return folds


def release_split(groups: dict[str, str]) -> list[str]:
    """The 10 validation patients of the bundled model's split (``opencmr train`` defaults, seed 0)."""
    from opencmr.segment.data import split_cases

    names = sorted(groups)
    _, val = split_cases([Path(n) for n in names], 10, 0, [groups[n] for n in names])
    return [p.name for p in val]


def worker(args: argparse.Namespace) -> None:
    """Train one job (``fold0`` … ``fold4`` or ``candidate``) into ``args.out / job``."""
    import dataclasses

    import torch

    from opencmr.segment.config import SegmentationConfig
    from opencmr.segment.model import load_model
    from opencmr.segment.train import TrainingConfig, _prepare_run_folder, fit

    cases, groups = load_pack(args.pack)
    job = args.job
    out = args.out / job
    _prepare_run_folder(out, resume=False)
    init = None
    candidate = job in CANDIDATES
    if candidate:
        bundled = load_model(args.init)
        changes = CANDIDATES[job]
        seg_fields = {f.name for f in dataclasses.fields(SegmentationConfig)}
        seg = dataclasses.replace(bundled.config, **{k: v for k, v in changes.items() if k in seg_fields})
        init = bundled.network.state_dict()  # widened by fit() when context_slices grows
        held = set(release_split(groups))
        config = TrainingConfig(iterations=10**7, batch_size=args.batch_size, learning_rate=1e-3, n_validation=10,
                                validate_every=1000, checkpoint_every=1000, seed=0, threads=args.threads,
                                time_budget_s=args.budget_s)
        config = dataclasses.replace(config, **{k: v for k, v in changes.items() if k not in seg_fields})
    else:
        k = int(job.removeprefix("fold"))
        folds = assign_folds(groups)
        held = {p for p, f in folds.items() if f == k}
        seg = dataclasses.replace(SegmentationConfig(), context_slices=1)
        config = TrainingConfig(iterations=10**7, batch_size=args.batch_size, learning_rate=2e-3, n_validation=0,
                                validate_every=2000, checkpoint_every=1000, seed=k, threads=args.threads,
                                time_budget_s=args.budget_s)
    train_cases = [c for c in cases if c.patient not in held]
    val_cases = [c for c in cases if c.patient in held]
    settings = {
        "job": job,
        "segmentation": seg.to_dict(),
        "training": {k: v for k, v in dataclasses.asdict(config).items() if k != "augmentation"},
        "augmentation": dataclasses.asdict(config.augmentation),
        "data": f"{args.pack.name} (ACDC training, prepared by scripts/cv_train.py pack; 7-bit images)",
        "train_patients": sorted({c.patient for c in train_cases}),
        "held_out_patients": sorted(held),
        "held_out_use": "model selection" if candidate else "logged only; final.pt is the fold model",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
    }
    (out / "run.json").write_text(json.dumps(settings, indent=2))
    info = {"name": f"opencmr-acdc-unet25d-{job}", "training_data": "ACDC training (shared 80 patients)",
            "train_patients": len(settings["train_patients"]),
            "validation_patients": settings["held_out_patients"]}
    if candidate:
        info["initialised_from"] = bundled.name
        info["recipe_changes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in CANDIDATES[job].items()}
    fit(train_cases, val_cases, out, seg, config, info=info, init_weights=init)


def _to_model_file(run: Path, target: Path) -> str:
    """Copy the job's model into ``target``: best.pt (candidate), final.pt (folds), else the last checkpoint."""
    import shutil

    job = run.name
    for name in (("best.pt", "final.pt") if job in CANDIDATES else ("final.pt",)):
        if (run / name).exists():
            shutil.copyfile(run / name, target)
            return name
    if (run / "checkpoint.pt").exists():
        import torch

        from opencmr.segment.config import SegmentationConfig
        from opencmr.segment.model import SegmentationModel, save_model
        from opencmr.segment.network import build_network

        settings = json.loads((run / "run.json").read_text())
        config = SegmentationConfig.from_dict(settings["segmentation"])
        network = build_network(config)
        payload = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
        network.load_state_dict(payload["network"])
        info = {"name": f"opencmr-acdc-unet25d-{job}-partial", "iteration": payload["state"]["iteration"]}
        save_model(SegmentationModel(config, network, info), target, overwrite=True)
        return "checkpoint.pt (run stopped early)"
    return "nothing"


def run(args: argparse.Namespace) -> None:
    """Start one worker per job, wait (killing them at the deadline), gather the model files and logs."""
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.work
    if runs.exists() and any(runs.iterdir()):
        sys.exit(f"{runs}: not empty (an earlier run?); give a new --work folder so no old model is gathered")
    runs.mkdir(parents=True, exist_ok=True)
    _, groups = load_pack(args.pack)
    folds = assign_folds(groups)
    (args.out / "folds.json").write_text(json.dumps({"n_folds": N_FOLDS, "seed": 0, "folds": folds}, indent=1))
    if args.jobs:
        jobs = list(args.jobs)
    else:
        jobs = [f"fold{k}" for k in range(N_FOLDS)][: args.folds] + (["candidate"] if args.candidate else [])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.time()
    procs = {}
    logs = []
    for job in jobs:
        log = (runs / f"{job}.log").open("w")
        logs.append(log)
        cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--job", job, "--pack", str(args.pack),
               "--out", str(runs), "--budget-s", str(args.budget_s), "--batch-size", str(args.batch_size),
               "--threads", str(args.threads)] + (["--init", str(args.init)] if args.init else [])
        procs[job] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = started + args.deadline_s
    next_report = started + 60
    reported_failures: set[str] = set()
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(2)
        for job, p in procs.items():
            if p.poll() not in (None, 0) and job not in reported_failures:
                reported_failures.add(job)
                tail = (runs / f"{job}.log").read_text().splitlines()[-25:]
                print(f"{job} failed (rc={p.returncode}):", *tail, sep="\n  ", flush=True)
        if time.time() >= next_report:
            next_report += 60
            for job in jobs:
                log_csv = runs / job / "log.csv"
                lines = log_csv.read_text().splitlines() if log_csv.exists() else []
                last = lines[-1] if len(lines) > 1 else "-"
                state = "running" if procs[job].poll() is None else f"rc={procs[job].returncode}"
                print(f"{time.time() - started:5.0f} s {job:10s} {state:8s} {last}", flush=True)
    for job, p in procs.items():
        if p.poll() is None:
            print(f"{job}: past the deadline, stopped", flush=True)
            p.kill()
            p.wait()
    for log in logs:
        log.close()
    summary = {}
    for job in jobs:
        target = args.out / f"{job}.pt"
        source = _to_model_file(runs / job, target)
        log_csv = runs / job / "log.csv"
        rows = log_csv.read_text().splitlines() if log_csv.exists() else []
        last_val = next((r for r in reversed(rows[1:]) if r.split(",")[3]), None)
        summary[job] = {"returncode": procs[job].returncode, "model_from": source,
                        "last_row": rows[-1] if len(rows) > 1 else None, "last_validation": last_val}
    (runs / "summary.json").write_text(json.dumps(summary, indent=2))
    with tarfile.open(args.out / "runs.tar.gz", "w:gz") as tar:
        for path in sorted(runs.rglob("*")):
            if path.is_file() and path.suffix != ".pt":
                tar.add(path, arcname=str(Path("runs") / path.relative_to(runs)))
        tar.add(args.out / "folds.json", arcname="folds.json")
    for job, s in summary.items():
        print(f"{job:10s} rc={s['returncode']} model={s['model_from']} last={s['last_row']} val={s['last_validation']}")
    print(f"total {time.time() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", type=Path, default=Path("../shared/data/acdc/training"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=None, help="model whose preprocessing to use (default: bundled)")
    for name in ("run", "worker"):
        p = sub.add_parser(name)
        p.add_argument("--pack", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--budget-s", type=float, default=420.0, help="training seconds per job")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--init", type=Path, default=None,
                       help="model file the fine-tuning recipes start from (default: the bundled model)")
        if name == "run":
            p.add_argument("--work", type=Path, default=Path("/tmp/cv_runs"),
                           help="run folders (checkpoints stay here)")
            p.add_argument("--deadline-s", type=float, default=500.0, help="workers still running then are stopped")
            p.add_argument("--folds", type=int, default=N_FOLDS, help="train only the first N folds (a dry run)")
            p.add_argument("--no-candidate", dest="candidate", action="store_false")
            p.add_argument("--jobs", nargs="+", choices=[*(f"fold{k}" for k in range(N_FOLDS)), *CANDIDATES],
                           help="train these jobs instead (e.g. only fine-tuning recipes)")
        else:
            p.add_argument("--job", required=True)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.data, args.out, args.model)
    elif args.command == "run":
        run(args)
    else:
        worker(args)


if __name__ == "__main__":
    main()
