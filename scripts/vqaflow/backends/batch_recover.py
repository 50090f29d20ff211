"""Finding a run's batches again: the provider's listing is the record of what was paid.

Every batch carries metadata (run, shard, stage, the backend identity's digest, the
input file's digest, its line count and a digest of its line keys), and every line's
``custom_id`` is its line key, so before a shard submits anything it lists the batches
(``GET /v1/batches``, newest first, paged) and attaches to the newest batch holding each
of its lines, whatever its state file says:

- a batch in this shard's state file is known (its line keys are recorded);
- a batch in another shard's state file (same folder; after ``shard_size`` changed it may
  hold this shard's lines) is known from there and copied into this shard's file;
- any other batch of the run is read back: the line keys of its input file (or, once
  that is deleted, of its output and error files) are cached in the state file.

An upload whose batch was never created (a kill between the two) is reused when all its
lines are this shard's, else deleted; an uploaded file of this shard that no batch uses
is deleted. When the listing fails, the run goes on only if the state files account for
every line; otherwise it stops, naming the listing, before paying for anything twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import openai

from ..digests import value_digest
from .base import FatalBackendError
from .batch_state import BatchState, keys_withheld, log
from .batch_submit import LISTING_DAYS, BatchClient, DownloadFailed, read_lines

MARK, FORMAT = "vqaflow", "2"
TERMINAL = ("completed", "expired", "failed", "cancelled")


@dataclass(frozen=True)
class Scope:
    """Whose batches: the run and shard (from the state file's path, ``results/<run>/batches/
    <shard>.json``) and the stage (generate or repair)."""

    run: str
    shard: str
    stage: str

    @classmethod
    def of(cls, state_path: Path, stage: str) -> Scope:
        return cls(state_path.parent.parent.name, state_path.stem, stage)

    def prefix(self) -> str:
        """How this shard's input files are named (no other shard's name starts so)."""
        return f"vqaflow-{value_digest([self.run, self.shard], 12)}-"

    def filename(self) -> str:
        return f"{self.prefix()}{self.stage}-{int(time.time())}.jsonl"

    def metadata(self, identity: str, keys: list[str], input_digest: str) -> dict[str, str]:
        """The batch's metadata (the Batch API keeps 16 string pairs of up to 512 characters)."""
        return {MARK: FORMAT, "vqaflow_run": self.run[:512], "vqaflow_shard": self.shard,
                "vqaflow_stage": self.stage, "vqaflow_identity": identity, "vqaflow_input": input_digest,
                "vqaflow_lines": str(len(keys)), "vqaflow_keys": value_digest(keys)}

    def owns(self, batch, identity: str) -> bool:
        """Whether a listed batch is one of this run's, asked with this identity."""
        meta = batch.metadata or {}
        return (meta.get(MARK) == FORMAT and meta.get("vqaflow_run") == self.run[:512]
                and meta.get("vqaflow_identity") == identity)


class Finder:
    """Where this run's lines already are: its state file, the other shards', the listing."""

    def __init__(self, state: BatchState, calls: BatchClient, scope: Scope, identity: str):
        self.state, self.calls, self.scope, self.identity = state, calls, scope, identity

    def locate(self, wanted: set[str]) -> dict[str, dict]:
        """Line key -> the entry of the newest batch holding it, for the ``wanted`` keys
        (the lines of this run); a key not in the answer is in no batch yet."""
        try:
            listed, by_file = self._listed()
        except FatalBackendError as err:
            return self._without_listing(wanted, err)
        others = self.state.others()  # read after the listing: a batch listed is recorded there
        self._adopt(others, wanted, {file_id: batch.id for file_id, batch in by_file.items()})
        self._settle_uploads(by_file, wanted)
        self._read_unknown(listed, others, wanted)
        if self.calls.listing_complete:
            self._delete_orphans(set(by_file))
        self.state.save()
        return self.state.latest(wanted)

    def _listed(self) -> tuple[list, dict]:
        """This run's listed batches (newest first), and every listed batch by its input
        file (a provider that drops metadata still shows which file a batch runs)."""
        listed, by_file = [], {}
        for batch in self.calls.batches():
            by_file.setdefault(batch.input_file_id, batch)
            if self.scope.owns(batch, self.identity):
                listed.append(batch)
        return listed, by_file

    def _without_listing(self, wanted: set[str], err: FatalBackendError) -> dict[str, dict]:
        self._adopt(self.state.others(), wanted, {})
        latest = self.state.latest(wanted)
        pending = [e for e in self.state.entries if e.get("id") is None and not e.get("abandoned")]
        if set(latest) == wanted and not pending:
            log(f"{err}; going on with the batches the state files record", terminal=True)
            return latest
        raise FatalBackendError(
            f"{err}; without the listing, batches this shard may already have paid for cannot be found, "
            f"so nothing is submitted (state file {self.state.path})") from None

    def _adopt(self, others: list[dict], wanted: set[str], listed_files: dict[str, str]) -> None:
        """Copy other shards' batches holding wanted lines into this shard's state file (one
        whose id went unrecorded is known by its input file, when the listing has it)."""
        for entry in others:
            batch_id = entry.get("id") or listed_files.get(entry["input_file_id"])
            if batch_id and not self.state.knows(batch_id, None) and wanted.intersection(entry["keys"]):
                self.state.add({**entry, "id": batch_id}, save=False)
                log(f"batch {batch_id} holds lines of this shard (found in another shard's state file)")

    def _settle_uploads(self, by_file: dict, wanted: set[str]) -> None:
        """Entries whose batch was not recorded (a kill between upload and create)."""
        for entry in self.state.entries:
            if entry.get("id") is not None or entry.get("abandoned"):
                continue
            file_id = entry["input_file_id"]
            if file_id in by_file:
                entry["id"] = by_file[file_id].id
            elif set(entry["keys"]) <= wanted and self._create(entry):
                log(f"created batch {entry['id']} from input file {file_id}, uploaded before a stop")
            else:
                self.calls.delete_file(file_id)
                entry.update(abandoned=True, input_deleted=True)
                log(f"input file {file_id} (uploaded before a stop, no batch) deleted; its wanted lines are sent afresh")
            self.state.save()

    def _create(self, entry: dict) -> bool:
        try:
            metadata = self.scope.metadata(self.identity, entry["keys"], entry.get("input_digest", ""))
            entry["id"] = self.calls.create(entry["input_file_id"], metadata)
        except (openai.NotFoundError, openai.BadRequestError):
            return False
        return True

    def _read_unknown(self, listed: list, others: list[dict], wanted: set[str]) -> None:
        """Record the listed batches no state file knows the keys of: their line keys when
        they hold lines of this shard, else that they hold none (so they are not read again;
        another shard whose lines they hold still reads them)."""
        recorded = [e for e in others if not keys_withheld(e)]
        known_ids = {e["id"] for e in recorded if e.get("id")}
        known_files = {e["input_file_id"] for e in recorded}
        for batch in listed:
            if (self.state.knows(batch.id, batch.input_file_id) or batch.id in known_ids
                    or batch.input_file_id in known_files):
                continue
            keys = self._keys_of(batch)
            if keys is None:
                continue
            mine = wanted.intersection(keys)
            self.state.add({"id": batch.id, "input_file_id": batch.input_file_id, "identity": self.identity,
                            "keys": keys if mine else [], "lines": len(keys), "created": batch.created_at,
                            "found": True}, save=False)
            log(f"batch {batch.id} ({batch.status}, {len(keys)} lines, {len(mine)} of this shard) "
                "found in the provider's listing")

    def _keys_of(self, batch) -> list[str] | None:
        """A batch's line keys: from its input file, or once that is gone, from the lines
        its output and error files hold (the lines that ran)."""
        try:
            keys = self._file_keys(batch.input_file_id)
            if keys is None and batch.status in TERMINAL:
                keys = []
                for file_id in (batch.output_file_id, batch.error_file_id):
                    keys.extend(self._file_keys(file_id) or [])
        except DownloadFailed as err:
            raise FatalBackendError(f"{err}; batch {batch.id} of this run cannot be read back, so nothing "
                                    "is submitted (no line is paid twice); run again later") from None
        if keys is None:
            log(f"batch {batch.id} ({batch.status}) of this run has no input file left; it is not attached")
            return None
        expected = (batch.metadata or {}).get("vqaflow_keys")
        if batch.status not in TERMINAL and expected and value_digest(keys) != expected:
            log(f"the input file {batch.input_file_id} of batch {batch.id} was read incompletely; "
                f"{len(keys)} of {(batch.metadata or {}).get('vqaflow_lines')} lines are attached")
        return keys

    def _file_keys(self, file_id: str | None) -> list[str] | None:
        if not file_id:
            return None
        handle = self.calls.download(file_id)
        if handle is None:
            return None
        with handle:
            return [line["custom_id"] for _, line in read_lines(handle)
                    if line is not None and isinstance(line.get("custom_id"), str)]

    def _delete_orphans(self, used_files: set[str]) -> None:
        """Delete this shard's uploads no batch uses (a kill between upload and create)."""
        since = time.time() - LISTING_DAYS * 86400
        recorded = {e["input_file_id"] for e in self.state.entries if not e.get("abandoned")}
        for uploaded in self.calls.files_named(self.scope.prefix()):
            if uploaded.id in used_files or uploaded.id in recorded or (uploaded.created_at or 0) < since:
                continue
            if self.calls.delete_file(uploaded.id):
                log(f"deleted input file {uploaded.id} ({uploaded.filename}): uploaded before a stop, no batch uses it")
