"""Released trained models: readers of the authors' file formats and importers into crmnet checkpoints."""
