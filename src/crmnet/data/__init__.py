"""Data stage: from raw files to batches.

``encoding`` (the code/one-hot contract), ``readers`` (every real file format), ``store`` (``prepare``:
raw → memory-mapped store), ``loader`` (batches on the device), ``simulate`` (ground truth), ``jaspar``
(yeast motifs), ``download`` (verified, resumable fetching). Nothing here imports a later stage.
"""
