"""Pre-processing shared by every model path: intensity normalisation and type-aware resampling."""

from opencmr.preprocess.intensity import IntensityNormalization, normalize_intensity
from opencmr.preprocess.resample import in_plane_grid, resample_in_plane, resample_to_grid

__all__ = [
    "IntensityNormalization",
    "in_plane_grid",
    "normalize_intensity",
    "resample_in_plane",
    "resample_to_grid",
]
