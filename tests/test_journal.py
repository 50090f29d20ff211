import json

from vqaflow.journal import JournalWriter, read_journal, relocate


def test_append_and_read(tmp_path):
    path = tmp_path / "j.jsonl"
    with JournalWriter(path) as journal:
        journal.append({"id": "a", "fp": "1", "answer": "x"})
        journal.append({"id": "b", "fp": "1", "answer": "y"})
        journal.append({"id": "a", "fp": "2", "answer": "z"})
        journal.append({"id": "b", "fp": "1", "answer": "y2"})
    entries = read_journal(path)
    assert {fp: e["answer"] for fp, e in entries["a"].items()} == {"1": "x", "2": "z"}
    assert entries["b"]["1"]["answer"] == "y2"


def test_torn_last_line_is_ignored_and_next_entry_starts_clean(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a", "fp": "1", "answer": "x"}\n{"id": "b", "fp": "1", "ans')
    assert list(read_journal(path)) == ["a"]
    with JournalWriter(path) as journal:
        journal.append({"id": "c", "fp": "1", "answer": "w"})
    assert sorted(read_journal(path)) == ["a", "c"]


def test_missing_journal_is_empty(tmp_path):
    assert read_journal(tmp_path / "none.jsonl") == {}


def entries_by_file(journal_dir):
    return {path.stem: sorted(json.loads(line)["id"] for line in path.read_text().splitlines())
            for path in sorted(journal_dir.glob("*.jsonl"))}


def test_relocate_follows_records_to_their_new_shards(tmp_path):
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    old = {f"r{n}": f"shard-{n // 3:05d}" for n in range(6)}
    assert relocate(journal_dir, old) == 0  # no journals yet: only the layout is noted
    for record_id, shard in old.items():
        with JournalWriter(journal_dir / f"{shard}.jsonl") as journal:
            journal.append({"id": record_id, "fp": "f", "answer": record_id.upper()})
    assert relocate(journal_dir, old) == 0  # same layout: nothing moves
    new = {f"r{n}": f"shard-{n // 2:05d}" for n in range(5)}  # r5 left the input
    assert relocate(journal_dir, new) == 3  # r2, r4 and r5
    assert entries_by_file(journal_dir) == {
        "shard-00000": ["r0", "r1"], "shard-00001": ["r2", "r3"], "shard-00002": ["r4"], "unplaced": ["r5"],
    }
    assert read_journal(journal_dir / "shard-00001.jsonl")["r3"]["f"]["answer"] == "R3"
    assert not list(tmp_path.glob("journal.*")), "no staging or retired directory is left"


def test_relocate_recovers_from_a_kill_between_the_renames(tmp_path):
    retired = tmp_path / "journal.retired"
    retired.mkdir()
    (retired / "shard-00000.jsonl").write_text('{"id": "r0", "fp": "f", "answer": "A"}\n')
    relocate(tmp_path / "journal", {"r0": "shard-00000"})
    assert read_journal(tmp_path / "journal/shard-00000.jsonl")["r0"]["f"]["answer"] == "A"
