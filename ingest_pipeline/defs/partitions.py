"""One dynamic partition per upload; the key is the upload id (short, comma-free)."""

from dagster import DynamicPartitionsDefinition

uploads_partitions = DynamicPartitionsDefinition(name="uploads")

# The tag Dagster gives a partition's runs: how a run names its upload.
PARTITION_TAG = "dagster/partition"
