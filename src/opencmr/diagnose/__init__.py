"""Diagnosis: cardiomyopathy group from the cine study (features, classifier, explanations)."""
