"""Stage 1: the day's landing file as delivered."""

import dagster as dg

from churn_pipeline.assets._metadata import table_metadata
from churn_pipeline.dagster_types import frame_type
from churn_pipeline.logic.ingest import SnapshotFileError, open_snapshot, snapshot_path
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.resources.pipeline_config import PipelineConfig
from churn_pipeline.storage import FrameChunks


@dg.asset(
    partitions_def=daily_partitions,
    group_name="ingestion",
    dagster_type=frame_type("raw_customers"),
    metadata={**table_metadata("raw_customers"), "handoff": "once"},
    kinds={"pandas", "sql"},
)
def raw_customers(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> FrameChunks:
    """The day's customer snapshot (`customers_YYYY-MM-DD.csv` in the landing folder), every value
    kept verbatim as text, with its file name, line number and load time. A file that cannot be read
    as a Telco snapshot stops the run here, before anything is written. Streams the file in chunks
    (`chunk_rows` customers each), written in one transaction: a damaged record found only while
    the chunks are written (a file with quotes) fails the run and the day keeps its old rows."""
    path = snapshot_path(pipeline.landing_dir, context.partition_key)
    try:
        snapshot = open_snapshot(path, context.partition_key)
    except SnapshotFileError as error:
        raise dg.Failure(str(error), allow_retries=False) from None  # retrying cannot fix it
    stream = FrameChunks("raw_customers", snapshot.chunks(pipeline.chunk_rows), expected_rows=snapshot.rows)
    stream.after_all.append(lambda: {"rows_read": stream.rows})  # counted as the chunks are written
    context.add_output_metadata(
        {"source_file": dg.MetadataValue.path(str(path)), "file_bytes": snapshot.file_bytes}
    )
    return stream
