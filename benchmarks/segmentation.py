"""Benchmark: segmentation accuracy and speed of opencmr's model beside a peer, on the same inputs.

Run ``python benchmarks/segmentation.py [--data ../shared/data/acdc/training] [--model PATH]``.

Accuracy: the validation patients recorded in the model file (never seen in
training), their labelled ED and ES frames; Dice, Hausdorff (max) and HD95 in
mm with the voxel spacing (3D, ACDC protocol; :mod:`opencmr.evaluate`).
Speed: seconds per ED+ES study and per slice, and for a 30-frame x 10-slice
cine (a phantom at 1.4 mm, 208 x 256), on this machine with 2 threads.
Robustness: the same patients with raw-scanner-like intensities
(``image * 1000 + 300``) must give the same segmentation.

Peer: the ACDC-trained FC-DenseNet shipped by the PyPI package ``myopari``
(``pip install --no-deps myopari onnxruntime``), run with its own
preprocessing re-implemented in ``benchmarks/peer_myopari.py``. It was most
likely trained on all 100 ACDC training patients, so its accuracy here is
optimistic (our validation patients are part of its training data).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from opencmr.evaluate.segmentation import evaluate_volume
from opencmr.io.read import read_study
from opencmr.io.study import CineStudy
from opencmr.phantom import PhantomConfig, make_phantom
from opencmr.segment.inference import segment_study
from opencmr.segment.model import load_model

sys.path.insert(0, str(Path(__file__).parent))

STRUCTURES = ("lv", "myo", "rv")
Method = Callable[[CineStudy, tuple[int, ...]], np.ndarray]  # -> labels (frames, slices, rows, cols)


def ours(model, tta: bool) -> Method:
    def run(study: CineStudy, frames: tuple[int, ...]) -> np.ndarray:
        return segment_study(study, model, frames=frames, tta=tta).data

    return run


def peer() -> Method | None:
    try:
        from peer_myopari import model_path, peer_segment

        model_path()
    except Exception as exc:  # noqa: BLE001 -- the peer is optional
        print(f"peer model unavailable ({exc}); install with: pip install --no-deps myopari onnxruntime", file=sys.stderr)
        return None

    def run(study: CineStudy, frames: tuple[int, ...]) -> np.ndarray:
        return np.stack([peer_segment(np.asarray(study.frame(f)), study.spacing) for f in frames])

    return run


def timed(method: Method, study: CineStudy, frames: tuple[int, ...]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = method(study, frames)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/acdc/training")
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--onnx", default=None, help="also run this exported ONNX model")
    parser.add_argument("--patients", nargs="*", help="default: the model's validation patients")
    parser.add_argument("--json", default=None, help="write all numbers to this JSON file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-peer", action="store_true", help="skip the peer model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()

    model = load_model(args.model)
    patients = args.patients or model.info.get("validation_patients") or []
    if not patients:
        sys.exit("no patients: the model records no validation patients; pass --patients")
    methods: dict[str, Method] = {"opencmr (TTA)": ours(model, True), "opencmr (no TTA)": ours(model, False)}
    if args.onnx:
        from opencmr.segment.onnx import load_onnx_model

        onnx_model = load_onnx_model(args.onnx, threads=args.threads)
        methods["opencmr ONNX (TTA)"] = ours(onnx_model, True)
        methods["opencmr ONNX (no TTA)"] = ours(onnx_model, False)
    peer_method = None if args.no_peer else peer()
    if peer_method is not None:
        methods["myopari FC-DenseNet"] = peer_method

    rows: list[dict] = []
    timing: dict[str, list[tuple[float, int]]] = {m: [] for m in methods}
    raw_agreement: list[float] = []
    warmed: set[str] = set()
    for name in patients:
        study = read_study(Path(args.data) / name)
        assert study.labels is not None
        frames = tuple(study.labels.frame_numbers)
        ed = study.metadata.ed_frame
        for method_name, method in methods.items():
            if method_name not in warmed:  # first call: session start-up, allocator warm-up
                method(study, frames[:1])
                warmed.add(method_name)
            pred, seconds = timed(method, study, frames)
            timing[method_name].append((seconds, len(frames) * study.n_slices))
            for k, frame in enumerate(frames):
                metrics = evaluate_volume(pred[k], study.labels.data[k], study.spacing)
                for structure in STRUCTURES:
                    m = metrics[structure]
                    rows.append({"method": method_name, "patient": name, "phase": "ED" if frame == ed else "ES",
                                 "structure": structure, "dice": m.dice, "hd_mm": m.hd_mm, "hd95_mm": m.hd95_mm})
            if method_name == "opencmr (TTA)":
                raw = dataclasses.replace(study, image=np.asarray(study.image) * 1000.0 + 300.0)
                raw_pred = methods[method_name](raw, frames)
                raw_agreement.append(float(np.mean(raw_pred == pred)))
        console.print(f"{name} done", style="dim")

    table = Table(title=f"Segmentation on {len(patients)} held-out ACDC patients (mean over patients; HD in mm)")
    table.add_column("method")
    for phase in ("ED", "ES"):
        for s in STRUCTURES:
            table.add_column(f"{s.upper()} {phase}\nDice / HD")
    table.add_column("mean Dice")
    table.add_column("mean HD")
    table.add_column("mean HD95")
    summary: dict[str, dict] = {}
    for method_name in methods:
        mine = [r for r in rows if r["method"] == method_name]
        cells = []
        per: dict[str, dict[str, float]] = {}
        for phase in ("ED", "ES"):
            for s in STRUCTURES:
                sel = [r for r in mine if r["phase"] == phase and r["structure"] == s]
                d, h = np.nanmean([r["dice"] for r in sel]), np.nanmean([r["hd_mm"] for r in sel])
                per[f"{s}_{phase}"] = {"dice": float(d), "hd_mm": float(h)}
                cells.append(f"{d:.3f} / {h:.1f}")
        mean_dice = float(np.nanmean([r["dice"] for r in mine]))
        mean_hd = float(np.nanmean([r["hd_mm"] for r in mine]))
        mean_hd95 = float(np.nanmean([r["hd95_mm"] for r in mine]))
        summary[method_name] = {"per_structure_phase": per, "mean_dice": mean_dice, "mean_hd_mm": mean_hd, "mean_hd95_mm": mean_hd95}
        table.add_row(method_name, *cells, f"{mean_dice:.3f}", f"{mean_hd:.1f}", f"{mean_hd95:.1f}")
    console.print(table)

    cine = make_phantom(PhantomConfig(n_frames=30, n_slices=10, matrix=(208, 256), pixel_spacing_mm=1.4)).study
    speed = Table(title="Speed on this machine (wall time, 2 threads)")
    for col in ("method", "ED+ES study (s, mean)", "ms per slice (ED+ES)", "30-frame x 10-slice cine (s)", "ms per slice (cine)"):
        speed.add_column(col)
    for method_name, method in methods.items():
        seconds = [t for t, _ in timing[method_name]]
        per_slice = 1000 * sum(seconds) / sum(n for _, n in timing[method_name])
        _, cine_seconds = timed(method, cine, tuple(cine.frame_numbers))
        summary[method_name].update(study_seconds=float(np.mean(seconds)), ms_per_slice=per_slice,
                                    cine_seconds=cine_seconds, cine_ms_per_slice=1000 * cine_seconds / 300)
        speed.add_row(method_name, f"{np.mean(seconds):.2f}", f"{per_slice:.0f}", f"{cine_seconds:.1f}", f"{1000 * cine_seconds / 300:.0f}")
    console.print(speed)
    console.print(
        f"raw intensities (x1000 + 300): {100 * np.mean(raw_agreement):.3f}% of voxels labelled identically "
        f"(min over patients {100 * np.min(raw_agreement):.3f}%)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"patients": patients, "summary": summary, "rows": rows,
                                               "raw_intensity_voxel_agreement": raw_agreement}, indent=1))


if __name__ == "__main__":
    main()
