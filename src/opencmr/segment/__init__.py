"""Short-axis cine segmentation: LV blood pool, LV myocardium and RV blood pool on every slice and frame."""
