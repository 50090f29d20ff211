"""The input: reading, validating and sharding records.

An input *spec* is a file (``.json`` array, ``.jsonl``/``.ndjson``, ``.parquet``/``.pq``),
a glob of such files (read in sorted order as one input) or a directory of images (each
image becomes a record).

- :mod:`.specs`: what a spec names (its kind, format and files) and :class:`~.specs.InputError`;
- :mod:`.readers`: the records of a spec, in input order, with their ids (:func:`~.readers.iter_records`);
- :mod:`.validate`: one record checked and its images put in their shard form;
- :mod:`.image_refs`: a record's image field as references to send and as the dataset stores it;
- :mod:`.parquet_footer`: a Parquet file's row count from its footer;
- :mod:`.shards`: counting records, naming shards and writing them.

Every module here imports only the standard library at module level: the Snakefile plans
shards with them (through :mod:`vqaflow.plan`). Polars is imported lazily, to read Parquet
rows; counting them reads the footer.
"""
