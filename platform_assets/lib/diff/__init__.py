"""What changed between two data versions (two models, or two registry revisions): partitions
from the `.dvc` hashes alone, samples by photo id, feature and label shift, metrics. Plain
Python: no Dagster (the `popularity_model` asset and `platform-assets diff` both call it)."""
