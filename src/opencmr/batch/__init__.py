"""Cohort batch processing: a manifest of studies analysed on Dask distributed, resumably, into one cohort table.

:func:`read_manifest` reads and checks the manifest CSV; :func:`run_batch` runs
:func:`opencmr.analysis.analyze_study` for each study on a
:class:`distributed.LocalCluster` or an existing Dask cluster and writes
``cohort.csv`` and ``batch_summary.json`` (see :mod:`opencmr.batch.run`).
"""

from opencmr.batch.manifest import Manifest, ManifestEntry, read_manifest
from opencmr.batch.run import BatchOptions, BatchResult, StudyOutcome, run_batch

__all__ = ["BatchOptions", "BatchResult", "Manifest", "ManifestEntry", "StudyOutcome", "read_manifest", "run_batch"]
