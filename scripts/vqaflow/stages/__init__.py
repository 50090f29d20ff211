"""The stages of a run, one module each: generate (with repair), refine, verify, merge
(with stats.json), export and report, and jobs (what the rule scripts call)."""
