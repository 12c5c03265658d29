"""Released trained models: readers of the authors' file formats and importers into crmnet checkpoints.

* :mod:`~crmnet.zoo.importer` — ``import_model(source, out)``: recognises the format and writes a checkpoint
  (``crmnet import``); the one entry point for download and the zoo catalogue.
* :mod:`~crmnet.zoo.tfbundle` — TensorFlow tensor bundles (SavedModel variables, TF checkpoints), no TensorFlow.
* :mod:`~crmnet.zoo.kerasfile` — Keras models on disk (SavedModel, HDF5, TF object-graph checkpoint) →
  layers and weights.
* :mod:`~crmnet.zoo.crmnet_keras` — the CRMnet authors' Keras model → :class:`crmnet.models.crmnet.CRMnet`;
  :mod:`~crmnet.zoo.keras` imports one file or a whole download of them.
* :mod:`~crmnet.zoo.vaishnav` — Vaishnav et al.'s DeepATT and transformer → :mod:`crmnet.models.vaishnav`,
  matched by architecture rather than by TF-version-specific names.
"""
