"""Ingestion: any supported export shape in, canonical PII-free tables out, every row accounted for.

``ingest_export_to`` is the entry point (``ingest_export`` reads the result back into pandas); ``write_export_shape`` goes the other way, turning a
canonical export into Salesforce or HubSpot files so each preset can be exercised at size.
"""

from pipelines.ingestion.pipeline import IngestResult, ingest_export, ingest_export_to, ingest_table
from pipelines.ingestion.presets import Mapping, canonical_mapping, load_mapping
from pipelines.ingestion.report import IngestReport, TableReport

__all__ = [
    "IngestReport",
    "IngestResult",
    "Mapping",
    "TableReport",
    "canonical_mapping",
    "ingest_export",
    "ingest_export_to",
    "ingest_table",
    "load_mapping",
]
