"""Inference: the engine that owns the model on a device, and the triage rules. No Qt."""
