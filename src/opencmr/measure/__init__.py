"""Cardiac function from a segmentation: volumes, EF, mass, ED/ES, wall thickness, reference ranges."""
