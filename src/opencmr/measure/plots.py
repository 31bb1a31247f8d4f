"""Pictures of ventricular function: the volume curves over the cardiac cycle."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from opencmr.io._atomic import atomic_output
from opencmr.measure.phases import Phases
from opencmr.measure.volumes import VolumeCurve

__all__ = ["plot_volume_curve"]


def plot_volume_curve(
    curve: VolumeCurve,
    phases: Phases,
    path: str | os.PathLike[str],
    *,
    frame_times_ms: Sequence[float] | None = None,
    title: str = "Ventricular volumes over the cardiac cycle",
    overwrite: bool = False,
) -> Path:
    """LV and RV blood-pool volume (mL) per frame, ED and ES marked, as a PNG.

    ``frame_times_ms`` (one per frame of ``curve``) puts time after the R wave
    on the x axis; otherwise the frame number.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(frame_times_ms) if frame_times_ms is not None else list(curve.frame_numbers)
    if len(x) != len(curve.frame_numbers):
        raise ValueError(f"need {len(curve.frame_numbers)} frame times, got {len(x)}")
    at = dict(zip(curve.frame_numbers, x))
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(x, curve.lv_ml, "o-", color="#c0392b", label="LV blood pool")
    if any(v > 0 for v in curve.rv_ml):
        ax.plot(x, curve.rv_ml, "s-", color="#2471a3", label="RV blood pool")
    for frame, name, style in ((phases.ed_frame, "ED", "--"), (phases.es_frame, "ES", ":")):
        ax.axvline(at[frame], color="0.3", linestyle=style, linewidth=1)
        ax.annotate(name, (at[frame], ax.get_ylim()[1]), ha="center", va="bottom", fontsize=9)
    ax.set_xlabel("time after R wave (ms)" if frame_times_ms is not None else "frame (0-based)")
    ax.set_ylabel("volume (mL)")
    ax.set_title(title, fontsize=10, pad=14)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return target
