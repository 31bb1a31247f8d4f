"""Peer segmentation model for benchmarks: myopari's ACDC-trained FC-DenseNet ("Tiramisu"), run with onnxruntime.

The PyPI package ``myopari`` (a napari plugin) ships the network as ``myopari/Resources/tiramisu_acdc_fp32.onnx``.
Importing ``myopari`` pulls napari and Qt, so this module never imports it: it only locates the ONNX file through
the installed distribution and reimplements myopari's pre- and post-processing with numpy/scipy. What myopari does
to one 3D volume, and what this module reproduces:

1. Layout: its napari widget hands the model the ITK array transposed, i.e. ``(x, y, slice)`` in NIfTI voxel order.
   opencmr holds ``(slice, row, col)`` = NIfTI ``(z, y, x)``, so the volume is transposed ``(2, 1, 0)``.
2. Intensities: percentiles 0.05 and 99.05 of the *positive* voxels of the whole volume; clip to them and rescale to
   [0, 1]. Voxel spacing is not used anywhere (no resampling).
3. Crop: bounding box of the non-zero voxels after normalisation (in-plane and across slices), then a centred square
   crop of side ``min(height, width)``.
4. Resize the square to 256 x 256 (skimage ``resize`` with order 1 and anti-aliasing, i.e. a Gaussian of sigma
   ``(factor - 1) / 2`` when shrinking, then ``ndimage.zoom`` with ``grid_mode=True`` and mirror boundaries).
5. The network takes ``(batch, 1, 256, 256)`` float32 slices (batches of 8) and returns 4-class scores; argmax.
6. Connected components (6-connectivity, over the whole stack of 256 x 256 slices) of the foreground smaller than
   800 voxels are removed.
7. Nearest-neighbour resize back to the square, pasted into a zero volume at the crop position.

The output classes already follow the ACDC convention (0 background, 1 RV blood pool, 2 LV myocardium, 3 LV blood
pool; myopari's ``model_label_map.json``), so no relabelling is needed.

Run ``python benchmarks/peer_myopari.py PATIENT_FOLDER ...`` for Dice per structure and time per slice on ACDC
patients (their labelled frames).
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = ["ACDC_LABELS", "model_info", "model_path", "peer_segment"]

PACKAGE = "myopari"
MODEL_FILE = "myopari/Resources/tiramisu_acdc_fp32.onnx"
ACDC_LABELS = {1: "RV", 2: "MYO", 3: "LV"}

_PERCENTILES = (0.05, 99.05)  # of the positive voxels
_SIZE = 256  # network input is _SIZE x _SIZE
_MIN_COMPONENT = 800  # foreground components with fewer voxels (at 256 x 256) are dropped
_BATCH = 8
_THREADS = 2


def model_path() -> Path:
    """Path of myopari's ACDC ONNX file in the installed distribution (myopari itself is not imported)."""
    path = Path(importlib.metadata.distribution(PACKAGE).locate_file(MODEL_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; install it with `pip install --no-deps {PACKAGE} onnxruntime`")
    return path


def model_info() -> dict[str, str]:
    """Package, versions and ONNX path of the peer model."""
    import onnxruntime

    return {
        "package": PACKAGE,
        "version": importlib.metadata.version(PACKAGE),
        "model": "TIRAMISU_ACDC (FC-DenseNet, fp32)",
        "onnx_path": str(model_path()),
        "onnxruntime": onnxruntime.__version__,
    }


@functools.cache
def _session():
    """One onnxruntime CPU session, created on first use and reused."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _THREADS
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])


def _normalise(x: np.ndarray) -> np.ndarray | None:
    """Clip to the 0.05/99.05 percentiles of the positive voxels and scale to [0, 1]; None if impossible."""
    positive = x[x > 0]
    if positive.size == 0:
        return None
    low, high = np.percentile(positive, _PERCENTILES)
    if not high > low:
        return None
    return (np.clip(x, low, high) - low) / (high - low)


def _resize_in_plane(square: np.ndarray, size: int, *, labels: bool) -> np.ndarray:
    """Resize ``(d, d, n)`` to ``(size, size, n)`` as skimage's ``resize`` does.

    Images: linear, with a Gaussian anti-aliasing filter when shrinking and the output clipped to the input range.
    Labels: nearest neighbour, no filtering.
    """
    d = square.shape[0]
    if d == size:
        return square.copy()
    factor = d / size
    zoom = (1 / factor, 1 / factor, 1.0)
    if labels:
        return ndimage.zoom(square, zoom, order=0, mode="mirror", grid_mode=True)
    sigma = max(0.0, (factor - 1) / 2)
    filtered = ndimage.gaussian_filter(square, (sigma, sigma, 0.0), mode="mirror")
    out = ndimage.zoom(filtered, zoom, order=1, mode="mirror", grid_mode=True)
    return np.clip(out, square.min(), square.max(), out=out)


def _drop_small_components(seg: np.ndarray, min_size: int) -> np.ndarray:
    """Zero foreground components (face connectivity over the whole array) with fewer than ``min_size`` voxels."""
    components, n = ndimage.label(seg > 0)
    if n == 0:
        return seg
    sizes = np.bincount(components.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return np.where(keep[components], seg, 0)


def peer_segment(volume: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Segment one short-axis volume with myopari's ACDC model.

    Parameters
    ----------
    volume : ndarray, shape (slices, rows, cols)
        Intensities of one frame, as opencmr holds them (NIfTI ``(z, y, x)``).
    spacing : (slice, row, col) in mm
        Accepted for a uniform peer interface and checked; myopari does not use voxel spacing.

    Returns
    -------
    ndarray of uint8, same shape
        0 background, 1 RV blood pool, 2 LV myocardium, 3 LV blood pool.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3D volume (slices, rows, cols), got shape {volume.shape}")
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"invalid spacing {spacing}")
    result = np.zeros(volume.shape, dtype=np.uint8)

    x = volume.transpose(2, 1, 0).astype(np.float64)  # myopari's layout: (x, y, slice)
    x = _normalise(x)
    if x is None:
        return result
    nz = np.nonzero(x)
    if nz[0].size == 0:
        return result
    lo = [int(i.min()) for i in nz]
    hi = [int(i.max()) + 1 for i in nz]
    side = min(hi[0] - lo[0], hi[1] - lo[1])
    r0 = lo[0] + (hi[0] - lo[0] - side) // 2
    c0 = lo[1] + (hi[1] - lo[1] - side) // 2
    crop = (slice(r0, r0 + side), slice(c0, c0 + side), slice(lo[2], hi[2]))
    image = _resize_in_plane(x[crop], _SIZE, labels=False)

    batch = np.ascontiguousarray(image.transpose(2, 0, 1)[:, np.newaxis], dtype=np.float32)  # (n, 1, 256, 256)
    session = _session()
    name = session.get_inputs()[0].name
    seg = np.empty((batch.shape[0], _SIZE, _SIZE), dtype=np.int64)
    for start in range(0, batch.shape[0], _BATCH):
        scores = session.run(None, {name: batch[start : start + _BATCH]})[0]
        seg[start : start + _BATCH] = np.argmax(scores, axis=1)
    seg = _drop_small_components(seg.transpose(1, 2, 0), _MIN_COMPONENT)
    seg = _resize_in_plane(seg, side, labels=True)

    out = np.zeros(x.shape, dtype=np.uint8)
    out[crop] = seg
    result[...] = out.transpose(2, 1, 0)
    return result


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2 * int(np.logical_and(a, b).sum()) / total


def main() -> None:
    import argparse
    import time

    from opencmr.io.read import read_study

    parser = argparse.ArgumentParser(description="Dice of the myopari peer on ACDC patients' labelled frames.")
    parser.add_argument("patients", nargs="+", help="ACDC patient folders")
    args = parser.parse_args()
    print(model_info())
    _session()  # session creation is not timed
    seconds = slices = 0
    for folder in args.patients:
        study = read_study(folder)
        for frame, truth in zip(study.labels.frame_numbers, study.labels.data, strict=True):
            volume = study.image[study.frame_index(frame)]
            start = time.perf_counter()
            pred = peer_segment(volume, study.spacing)
            seconds += time.perf_counter() - start
            slices += volume.shape[0]
            dice = "  ".join(f"{n} {_dice(pred == k, truth == k):.3f}" for k, n in ACDC_LABELS.items())
            print(f"{Path(folder).name} frame {frame:2d}: {dice}")
    print(f"{seconds / slices * 1000:.0f} ms per slice ({slices} slices, {_THREADS} threads)")


if __name__ == "__main__":
    main()
