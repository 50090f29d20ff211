"""Config defaults live in one place, the schema: config/config.yaml equals them, and
config/README.md documents every key."""

from __future__ import annotations

import re

import yaml

from workflow_helpers import REPO, SCHEMA, schema_defaults

REQUIRED = set(SCHEMA["required"])


def leaf_keys(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, spec in schema["properties"].items():
        if spec.get("type") == "object" and "properties" in spec:
            keys += leaf_keys(spec, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def test_config_yaml_is_the_schema_defaults_plus_the_demo_run():
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert set(config) - set(SCHEMA["properties"]) == set()
    assert {k: v for k, v in config.items() if k not in REQUIRED} == schema_defaults()
    assert REQUIRED <= set(config)


def test_every_schema_key_is_documented():
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", (REPO / "config/README.md").read_text(), re.M))
    missing = [key for key in leaf_keys(SCHEMA) if key not in documented]
    assert not missing, f"config/README.md does not document {missing}"
    config_keys = {key for key in documented if key.split(".")[0] in SCHEMA["properties"]}
    unknown = config_keys - set(leaf_keys(SCHEMA))
    assert not unknown, f"config/README.md documents keys the schema lacks: {unknown}"
