"""The contract shared by the app and the trainer: labels, preprocessing, architectures, the model bundle.

No Qt and no study I/O here.
"""
