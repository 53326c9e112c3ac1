"""Validates TOML documents against sms-canary's JSON Schemas with a real
validator (the `jsonschema` package), after reading them with Python's own
TOML parser.

Reads one JSON object on stdin:
  {"schemas": {"main": {...}, "probe": {...}},
   "docs": [{"name": "...", "schema": "main" | "probe", "toml": "..."}]}
and prints one JSON object: {"NAME": ["error", ...], ...}, an empty list for
a document that is valid. A schema that is itself invalid is an error.
"""

import json
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

import jsonschema


def main():
    request = json.load(sys.stdin)
    validators = {}
    for name, schema in request["schemas"].items():
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validators[name] = cls(schema)
    result = {}
    for doc in request["docs"]:
        try:
            data = tomllib.loads(doc["toml"])
        except tomllib.TOMLDecodeError as e:
            result[doc["name"]] = ["not TOML: %s" % e]
            continue
        errors = validators[doc["schema"]].iter_errors(data)
        result[doc["name"]] = sorted(
            "%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
            for e in errors
        )
    json.dump(result, sys.stdout)


main()
