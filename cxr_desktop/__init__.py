"""Chest X-ray triage desktop app: a worklist that puts urgent cardiomegaly studies first."""

__version__ = "0.1.0"
