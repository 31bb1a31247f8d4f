"""Pre-processing shared by every model path."""

from opencmr.preprocess.intensity import IntensityNormalization, normalize_intensity

__all__ = ["IntensityNormalization", "normalize_intensity"]
