"""opencmr: open deep-learning cardiac MRI analysis.

The package is organised by concept: :mod:`opencmr.io` (studies in and out),
:mod:`opencmr.preprocess` (intensity normalisation shared by every model path),
:mod:`opencmr.phantom` (synthetic cine studies with known ground truth).
"""

from opencmr.errors import InputError, OpenCMRError, OutputError
from opencmr.labels import DiagnosticGroup, Label

__version__ = "0.1.0"

__all__ = [
    "DiagnosticGroup",
    "InputError",
    "Label",
    "OpenCMRError",
    "OutputError",
    "__version__",
]
