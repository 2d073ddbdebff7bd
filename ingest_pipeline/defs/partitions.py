"""One dynamic partition per upload; the key is the upload id (short, comma-free)."""

from dagster import DynamicPartitionsDefinition

uploads_partitions = DynamicPartitionsDefinition(name="uploads")
