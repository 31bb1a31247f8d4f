"""Quality control: uncertainty, plausibility checks and the QC verdict."""
