"""Where a batch comes from and goes to: CSV or Parquet, a local path or `s3://`, in chunks.

A nightly table can be larger than the machine that scores it, so nothing here holds a whole
file: Parquet is read batch by batch (pyarrow's `iter_batches`, at most one row group's pages
at a time), CSV through pyarrow's streaming reader, and outputs are written one chunk at a
time with `ParquetWriter`. An output is published only when the job succeeds: it is written
under a `.partial` name and moved into place at the end, so a failed or refused job never
leaves a half-scored table where a downstream job would read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs

PARTIAL_SUFFIX = ".partial"
FORMATS = ("parquet", "csv")


class BatchFileError(SlipwayError):
    """An input cannot be read or an output cannot be written; the message says which."""

    exit_code = Exit.USAGE


def file_format(location: str) -> str:
    """ "parquet" or "csv" from the name's extension (`.parquet`/`.pq`, `.csv`/`.csv.gz`)."""
    name = location.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise BatchFileError(
        f"{location}: cannot tell its format; name it *.parquet or *.csv (or *.csv.gz)"
    )


def filesystem(location: str) -> tuple[fs.FileSystem, str]:
    """pyarrow's filesystem for a path or URI (s3:// takes AWS credentials and region from the
    usual environment; AWS_ENDPOINT_URL points it at another S3, e.g. moto or MinIO)."""
    from pyarrow import fs

    if "://" not in location:
        from pathlib import Path

        return fs.LocalFileSystem(), str(Path(location).resolve())
    try:
        return fs.FileSystem.from_uri(location)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError with its own wording
        raise BatchFileError(f"{location}: not a location Slipway can read ({exc})") from None


@dataclass(frozen=True)
class Source:
    """An input file, opened lazily: its columns and (for Parquet) its row count."""

    location: str
    format: str
    columns: tuple[str, ...]
    rows: int | None  # known up front for Parquet, not for CSV

    def chunks(
        self, chunk_rows: int, row_groups: tuple[int, ...] | None = None
    ) -> Iterator[pd.DataFrame]:
        """The file (or, for Parquet, only `row_groups`: one shard of it) as DataFrames of
        at most `chunk_rows` rows, in file order."""
        handle, path = filesystem(self.location)
        if self.format == "parquet":
            import pyarrow.parquet as pq

            with handle.open_input_file(path) as raw:
                reader = pq.ParquetFile(raw)
                groups = list(row_groups) if row_groups is not None else None
                for batch in reader.iter_batches(batch_size=chunk_rows, row_groups=groups):
                    yield batch.to_pandas()
            return
        if row_groups is not None:
            raise BatchFileError(f"{self.location}: only Parquet files are read by row group")
        import pyarrow.csv as pacsv

        with handle.open_input_stream(path, compression="detect") as raw:
            # Every column as text: a typed reader fixes its types from the first block and
            # fails the whole file on a later bad value, which must be quarantined instead
            # (the contract check converts each value the way the gateway reads text/csv).
            reader = pacsv.open_csv(
                raw,
                read_options=pacsv.ReadOptions(block_size=_csv_block_bytes(chunk_rows)),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(self.columns, pa_string()),
                    strings_can_be_null=False,
                ),
            )
            pending: list[pa.RecordBatch] = []
            held = 0
            for batch in reader:
                pending.append(batch)
                held += batch.num_rows
                while held >= chunk_rows:
                    frame, pending, held = _take(pending, chunk_rows)
                    yield frame
            if held:
                yield _take(pending, held)[0]


def pa_string() -> pa.DataType:
    import pyarrow as pa

    return pa.string()


def _csv_block_bytes(chunk_rows: int) -> int:
    # ~64 bytes a row is a typical feature table's width; the reader re-chunks anyway.
    return max(1 << 20, min(chunk_rows * 64, 256 << 20))


def _take(pending: list[pa.RecordBatch], n: int) -> tuple[pd.DataFrame, list[pa.RecordBatch], int]:
    import pyarrow as pa

    table = pa.Table.from_batches(pending)
    head, rest = table.slice(0, n), table.slice(n)
    return head.to_pandas(), rest.to_batches(), rest.num_rows


def open_source(location: str) -> Source:
    """The input's format, columns and size, or BatchFileError saying why it cannot be read."""
    kind = file_format(location)
    handle, path = filesystem(location)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            with handle.open_input_file(path) as raw:
                meta = pq.ParquetFile(raw)
                return Source(
                    location, kind, tuple(meta.schema_arrow.names), meta.metadata.num_rows
                )
        import pyarrow.csv as pacsv

        with handle.open_input_stream(path, compression="detect") as raw:
            reader = pacsv.open_csv(raw)
            return Source(location, kind, tuple(reader.schema.names), None)
    except FileNotFoundError:
        raise BatchFileError(f"{location}: no such file") from None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise BatchFileError(f"{location}: cannot be read as {kind} ({exc})") from None


def row_group_sizes(location: str) -> list[int]:
    """Rows per row group of a Parquet file (what the batch pipeline shards by)."""
    import pyarrow.parquet as pq

    handle, path = filesystem(location)
    with handle.open_input_file(path) as raw:
        meta = pq.ParquetFile(raw).metadata
        return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


class Sink:
    """A Parquet output written chunk by chunk under a `.partial` name; `publish()` moves it
    into place, `discard()` removes it."""

    def __init__(self, location: str) -> None:
        if file_format(location) != "parquet":
            raise BatchFileError(f"{location}: outputs are Parquet; name it *.parquet")
        self.location = location
        self._fs, self._path = filesystem(location)
        self._partial = self._path + PARTIAL_SUFFIX
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            if isinstance(self._fs, _local_fs_type()):
                from pathlib import Path

                Path(self._partial).parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._partial, table.schema, filesystem=self._fs)
        self._writer.write_table(table.cast(self._writer.schema))
        self.rows += len(frame)

    @property
    def started(self) -> bool:
        return self._writer is not None

    def publish(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        with suppress(FileNotFoundError):
            self._fs.delete_file(self._path)
        self._fs.move(self._partial, self._path)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        with suppress(FileNotFoundError, OSError):
            self._fs.delete_file(self._partial)


def _local_fs_type() -> type:
    from pyarrow import fs

    return fs.LocalFileSystem
