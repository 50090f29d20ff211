from vqaflow.journal import JournalWriter, read_journal


def test_append_and_read(tmp_path):
    path = tmp_path / "j.jsonl"
    with JournalWriter(path) as journal:
        journal.append({"id": "a", "fp": "1", "answer": "x"})
        journal.append({"id": "b", "fp": "1", "answer": "y"})
        journal.append({"id": "a", "fp": "2", "answer": "z"})
    entries = read_journal(path)
    assert entries["a"]["answer"] == "z" and entries["b"]["answer"] == "y"


def test_torn_last_line_is_ignored_and_next_entry_starts_clean(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a", "fp": "1", "answer": "x"}\n{"id": "b", "fp": "1", "ans')
    assert list(read_journal(path)) == ["a"]
    with JournalWriter(path) as journal:
        journal.append({"id": "c", "fp": "1", "answer": "w"})
    assert sorted(read_journal(path)) == ["a", "c"]


def test_missing_journal_is_empty(tmp_path):
    assert read_journal(tmp_path / "none.jsonl") == {}
