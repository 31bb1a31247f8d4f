"""Benchmark: how long opencmr takes to read cine studies, by source format and size.

Run ``python benchmarks/read_studies.py`` (add ``--quick`` for the small case only). Phantom studies are
generated into a temporary folder, written as DICOM (one file per slice and frame) and as a 4D NIfTI,
then read back; the table gives the median of a few repetitions and the peak Python memory of one read.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from opencmr.io.dicom import read_dicom_folder, scan_dicom_folder
from opencmr.io.nifti import read_nifti, write_study_nifti
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

CASES = {
    "small (10 sl x 20 fr x 128^2)": PhantomConfig(n_slices=10, n_frames=20, matrix=(128, 128)),
    "clinical (12 sl x 30 fr x 208x256)": PhantomConfig(n_slices=12, n_frames=30, matrix=(208, 256), pixel_spacing_mm=1.4),
}


def timed(func: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds over ``repeats`` calls, and peak traced memory (MB) of one call."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the small case")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = Table(title="opencmr: reading cine studies (median wall time; peak Python memory of one read)")
    for column in ("case", "operation", "files", "seconds", "ms per image", "peak MB"):
        table.add_column(column)
    cases = dict(list(CASES.items())[:1]) if args.quick else CASES
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in cases.items():
            phantom = make_phantom(config)
            folder = Path(tmp) / name.split()[0]
            write_phantom(phantom, folder, dicom=True)
            dicom = folder / "dicom"
            nifti = write_study_nifti(phantom.study, folder / "cine4d.nii.gz")
            n_images = config.n_slices * config.n_frames
            n_files = sum(1 for _ in dicom.iterdir())
            for operation, func, files in (
                ("scan DICOM headers", lambda: scan_dicom_folder(dicom), n_files),
                ("read DICOM cine", lambda: read_dicom_folder(dicom), n_files),
                ("read 4D NIfTI", lambda: read_nifti(nifti), 1),
            ):
                seconds, peak = timed(func, args.repeats)
                table.add_row(name, operation, str(files), f"{seconds:.2f}", f"{1000 * seconds / n_images:.2f}", f"{peak:.0f}")
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
