"""``cxr-train``: NIH ChestX-ray14 pretraining, local fine-tuning, evaluation and export of app bundles."""
