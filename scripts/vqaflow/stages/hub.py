"""The run as a Hugging Face Hub dataset (``snakemake hub``): Parquet parts with the images
embedded, a dataset card (:mod:`vqaflow.stages.hub_card`), and the upload.

``results/<run>/hub/`` holds ``README.md`` and ``data/train-XXXXX-of-YYYYY.parquet``: the records
and pairs the export keeps (:func:`vqaflow.export.select`), one row per record, the images as the
``datasets`` Image feature (a ``{bytes, path}`` struct column, the feature named in the Parquet
schema's ``huggingface`` metadata as ``datasets`` writes it), so ``datasets.load_dataset`` on the
folder or the Hub repo gives decoded images and the pairs. Image bytes come from the input itself
(files, data URLs, embedded bytes), as the input holds them: never re-encoded. Parts are written
one at a time, a row group (at most :data:`ROWS_PER_GROUP` rows) in memory at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import images
from ..columns import Columns
from ..inputs.readers import iter_records
from ..jsonl import encode, read_jsonl
from ..pipelines import Pipeline
from ..prompts import PromptSettings, build_prompt, record_images
from .export import Example, ExportFilters, select
from .hub_card import CardSettings, Survey, card_text

ROWS_PER_GROUP = 100  # rows per Parquet row group, as `datasets` writes image datasets (the Hub's viewer reads by group)
GROUP_BYTES = 64 * 2**20  # fewer rows when their images are larger than this
PART_PREFIX = "train"

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
QA = pa.struct([("question", pa.string()), ("answer", pa.string())])
_STRING = {"dtype": "string", "_type": "Value"}


class HubError(ValueError):
    """The Hub folder cannot be made or uploaded; the message says why and what to do."""


@dataclass(frozen=True)
class Column:
    """A column of the Hub dataset: its Arrow type, its ``datasets`` feature (as the Parquet
    metadata holds it) and as the card's ``dataset_info`` (YAML) lists it, and what it holds.

    The feature JSON uses the forms every ``datasets`` release since 2.x reads (a list of
    structs as a JSON list, a list of images as ``Sequence``); the YAML likewise.
    """

    name: str
    arrow: pa.DataType
    feature: dict | list
    card: dict
    about: str


def hub_columns(multi_image: bool, pipeline: Pipeline) -> list[Column]:
    """The dataset's columns: ``image`` when no record has more than one image, else ``images``;
    ``context`` for pipelines whose answers carry an article; the pairs, or for a pipeline
    without pairs its output fields (text; a structure as JSON text)."""
    string = {"dtype": "string"}
    if multi_image:
        picture = Column("images", pa.list_(IMAGE), {"feature": {"_type": "Image"}, "_type": "Sequence"},
                         {"sequence": "image"}, "the record's images, in order (`datasets` Image features)")
    else:
        picture = Column("image", IMAGE, {"_type": "Image"}, {"dtype": "image"},
                         "the image (`datasets` Image feature: a PIL image when read)")
    columns = [Column("id", pa.string(), _STRING, string, "the record's id in the input"), picture]
    if pipeline.want_article:
        columns.append(Column("context", pa.string(), _STRING, string,
                              "the article the model wrote about the image; the answers come from it"))
    pairs = [{"name": "question", "dtype": "string"}, {"name": "answer", "dtype": "string"}]
    if pipeline.pairs:
        columns.append(Column("qas", pa.list_(QA), [{"question": _STRING, "answer": _STRING}], {"list": pairs},
                              "the question-answer pairs, `[{question, answer}]`"))
    else:
        columns += [Column(name, pa.string(), _STRING, string, f"the `{name}` the model wrote ({pipeline.about})")
                    for name in pipeline.fields]
    columns.append(Column("parse_status", pa.string(), _STRING, string,
                          "how the model's answer parsed: `ok`, `partial` (some of it could not be read) or `none`"))
    return columns


def arrow_schema(columns: list[Column]) -> pa.Schema:
    """The Parquet schema, with the features ``datasets`` reads from its metadata."""
    features = {column.name: column.feature for column in columns}
    return pa.schema([(column.name, column.arrow) for column in columns],
                     metadata={"huggingface": encode({"info": {"features": features}})})


def selected(record_paths: list[str | Path], settings: PromptSettings,
             filters: ExportFilters) -> Iterator[tuple[dict, Example]]:
    """The finished records the export keeps, with their kept pairs, in input order."""
    for path in record_paths:
        for record in read_jsonl(path):
            example = select(record, settings.pipeline, settings.columns, filters)
            if example is not None:
                yield record, example


def survey(record_paths: list[str | Path], settings: PromptSettings, filters: ExportFilters) -> Survey:
    """Count the kept records and pairs, their models and prompts; see if any has several images."""
    found = Survey()
    for record, example in selected(record_paths, settings, filters):
        found.records += 1
        found.pairs += len(example.qas)
        found.multi_image |= len(record_images(record, settings.columns)) > 1
        found.models[record["generation"].get("model") or "unknown"] += 1
        prompt = build_prompt(record, example.id, settings)
        found.systems[prompt.system or ""] += 1
        found.users["\n\n".join(text for role, text in prompt.turns if role == "user")] += 1
    return found


class InputImages:
    """The image references of input records, looked up by id in input order (one pass over
    the input, one record in memory): the input holds the bytes the dataset leaves out."""

    def __init__(self, spec: str, columns: Columns, image_root: str = "."):
        self.spec, self.columns = spec, columns
        self._records = iter_records(spec, columns, image_root)

    def refs(self, record_id: str) -> tuple[str, ...]:
        for input_id, record in self._records:
            if input_id == record_id:
                return record_images(record, self.columns)
        raise HubError(f"record {record_id!r} of the run is not in the input {self.spec} (in input order): "
                       "the input changed after the run; run the workflow again, then `snakemake hub`")


def image_value(ref: str, root: str) -> dict:
    """An image as the ``datasets`` Image feature stores it: the bytes of a file (``path``: the
    reference as given, only its name when absolute) or a data URL; an http(s) URL as a path."""
    if images.is_url(ref):
        return {"bytes": None, "path": ref}
    if images.is_data_url(ref):
        return {"bytes": images.read_bytes(ref), "path": None}
    path = ref if not os.path.isabs(ref) else Path(ref).name
    return {"bytes": images.read_bytes(images.resolve(ref, root)), "path": path}


def hub_row(example: Example, record: dict, pictures: list[dict], columns: list[Column]) -> tuple[dict, int]:
    """The row of a kept record and its size in bytes (images and text)."""
    fields = {name: value if value is None or isinstance(value, str) else encode(value)
              for name, value in example.fields.items()}
    values = {"id": example.id, "image": pictures[0] if pictures else None, "images": pictures,
              "context": example.context, "qas": example.qas, "parse_status": record["parse"]["status"], **fields}
    row = {column.name: values[column.name] for column in columns}
    size = sum(len(picture["bytes"] or b"") for picture in pictures)
    size += len(example.id) + len(example.context or "") + sum(len(qa["question"]) + len(qa["answer"])
                                                                for qa in example.qas)
    size += sum(len(value or "") for value in fields.values())
    return row, size


class PartWriter:
    """Rows into ``data/train-XXXXX-of-YYYYY.parquet`` parts of at most ``max_bytes`` (a row larger
    than that gets a part of its own): one part open at a time, one row group in memory.

    Parts are written as hidden ``.train-XXXXX.parquet`` files and named when the count is known
    (:meth:`close`), so a folder never shows a half-written dataset.
    """

    def __init__(self, data_dir: Path, schema: pa.Schema, max_bytes: int):
        self.data_dir, self.schema, self.max_bytes = data_dir, schema, max_bytes
        data_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*data_dir.glob(f"{PART_PREFIX}-*.parquet"), *data_dir.glob(f".{PART_PREFIX}-*.parquet")]:
            stale.unlink()
        self.parts: list[Path] = []
        self.bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[dict] = []
        self._buffered = self._part_bytes = 0

    def write(self, row: dict, size: int) -> None:
        held = self._part_bytes + self._buffered
        if held and held + size > self.max_bytes:
            self._flush()
            self._close_part()
        elif self._rows and (len(self._rows) >= ROWS_PER_GROUP or self._buffered + size > GROUP_BYTES):
            self._flush()
        self._rows.append(row)
        self._buffered += size
        self.bytes += size

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._writer is None:
            self._open_part()
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
        self._part_bytes += self._buffered
        self._rows, self._buffered = [], 0

    def _open_part(self) -> None:
        path = self.data_dir / f".{PART_PREFIX}-{len(self.parts):05d}.parquet"
        self.parts.append(path)
        self._writer = pq.ParquetWriter(path, self.schema)

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer, self._part_bytes = None, 0

    def close(self) -> list[Path]:
        """Write what is left and name the parts; an empty dataset gets one empty part."""
        self._flush()
        if not self.parts:
            self._open_part()
        self._close_part()
        named = [self.data_dir / f"{PART_PREFIX}-{number:05d}-of-{len(self.parts):05d}.parquet"
                 for number in range(len(self.parts))]
        for path, final in zip(self.parts, named):
            path.replace(final)
        self.parts = named
        return named


def write_parts(data_dir: Path, record_paths: list[str | Path], input_spec: str, settings: PromptSettings,
                filters: ExportFilters, columns: list[Column], max_bytes: int) -> PartWriter:
    """Write the kept records' rows, their images read from the input, into parts."""
    writer = PartWriter(data_dir, arrow_schema(columns), max_bytes)
    inputs = InputImages(input_spec, settings.columns, settings.image_root)
    for record, example in selected(record_paths, settings, filters):
        pictures = [image_value(ref, settings.image_root) for ref in inputs.refs(example.id)]
        writer.write(*hub_row(example, record, pictures, columns))
    writer.close()
    return writer


def build_folder(folder: str | Path, record_paths: list[str | Path], stats: dict, input_spec: str,
                 settings: PromptSettings, filters: ExportFilters, card: CardSettings, max_part_bytes: int) -> Survey:
    """Write the Hub folder: the parts under ``data/`` and the card ``README.md``."""
    folder = Path(folder)
    found = survey(record_paths, settings, filters)
    columns = hub_columns(found.multi_image, settings.pipeline)
    parts = write_parts(folder / "data", record_paths, input_spec, settings, filters, columns, max_part_bytes)
    features = [{"name": column.name, **column.card} for column in columns]
    about = {column.name: column.about for column in columns}
    text = card_text(card, settings.pipeline, stats, found, features, about, parts.parts, parts.bytes)
    (folder / "README.md").write_text(text, encoding="utf-8")
    return found


def upload(folder: str | Path, repo_id: str, private: bool, api=None) -> dict:
    """Upload the folder to the dataset repo ``repo_id`` (created if missing, private or not; an
    existing repo keeps its visibility), in one commit that also deletes the parts of an earlier
    upload. ``api``: a ``huggingface_hub.HfApi`` (default: one using ``HF_TOKEN``, or the token
    ``hf auth login`` saved). Returns the repo and commit URLs."""
    if api is None:
        from huggingface_hub import HfApi, get_token

        if not get_token():
            raise HubError(f"hub.repo is {repo_id!r} but there is no Hugging Face token: set HF_TOKEN to a token "
                           "with write access (https://huggingface.co/settings/tokens) or run `hf auth login`, "
                           "then run `snakemake hub` again")
        api = HfApi()
    repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="dataset",
                               commit_message="Upload the dataset made by vqaflow",
                               ignore_patterns=[".*", "*/.*"],  # Snakemake's .snakemake_timestamp
                               delete_patterns=[f"data/{PART_PREFIX}-*"])  # an earlier upload's parts
    return {"repo": repo_id, "url": str(repo_url), "commit": str(commit)}
