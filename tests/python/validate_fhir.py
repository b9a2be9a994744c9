"""Validates one FHIR resource in JSON against the `fhir.resources` models of a
FHIR version, choosing the model by its `resourceType` (a Bundle's entries are
validated as part of the Bundle). Prints the errors and exits 1 if it is not
valid; prints one line and exits 0 if it is.

R4 resources are checked with the R4B models, the R4 line that the package
ships. The models check structure, cardinality, required elements and the
formats of primitive values (ids, instants, codes); they do not check codes
against value sets.

usage: validate_fhir.py --version r4|stu3|dstu2 FILE   (FILE `-` reads stdin)
"""

import argparse
import importlib
import json
import sys

from pydantic.v1 import ValidationError

PACKAGES = {"r4": "fhir.resources.R4B", "stu3": "fhir.resources.STU3", "dstu2": "fhir.resources.DSTU2"}


def validate(version, text):
    """Returns a list of error messages, empty when `text` is a valid resource."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return [f"not JSON: {e}"]
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return ["not a FHIR resource: no `resourceType`"]
    resource_type = data["resourceType"]
    package = importlib.import_module(PACKAGES[version])
    resource = importlib.import_module(PACKAGES[version] + ".resource").Resource
    try:
        model = package.get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        model = None
    if model is None or not issubclass(model, resource):
        return [f"`{resource_type}` is not a resource type of FHIR {version.upper()}"]
    try:
        model.parse_raw(text, content_type="application/json")
    except ValidationError as e:
        return [str(e)]
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, choices=sorted(PACKAGES))
    parser.add_argument("file", help="a JSON file, or - for standard input")
    args = parser.parse_args(argv)
    if args.file == "-":
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    errors = validate(args.version, text)
    for error in errors:
        print(error)
    if errors:
        return 1
    print(f"valid {args.version} {json.loads(text)['resourceType']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
