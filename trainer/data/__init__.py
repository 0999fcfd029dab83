"""Datasets: NIH ChestX-ray14 with its official split, local hospital folders/CSVs, and the uint8 cache."""
