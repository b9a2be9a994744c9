"""Validates FHIR resources in JSON against the `fhir.resources` models of a
FHIR version, choosing the model by each one's `resourceType` (a Bundle's
entries are validated as part of the Bundle). Prints the errors and exits 1 if
any is not valid; prints one line per file and exits 0 if all are.

R4 resources are checked with the R4B models, the R4 line that the package
ships. The models check structure, cardinality, required elements and the
formats of primitive values (ids, instants, codes); they do not check codes
against value sets.

The package's DSTU2 models accept elements they do not define, and leave
Coverage out of their registry; both are made good here, so a DSTU2 resource
with an element of another release (`subject` on a DSTU2 Condition) is refused
as it is in STU3 and R4.

usage: validate_fhir.py --version r4|stu3|dstu2 FILE...   (FILE `-` reads stdin)
"""

import argparse
import importlib
import json
import sys

from pydantic.v1 import ValidationError

PACKAGES = {"r4": "fhir.resources.R4B", "stu3": "fhir.resources.STU3", "dstu2": "fhir.resources.DSTU2"}


def register_dstu2_coverage():
    """Adds the DSTU2 Coverage model, which the package ships but does not
    register, so that Coverage and Bundles holding one can be validated."""
    fhirtypes = importlib.import_module(PACKAGES["dstu2"] + ".fhirtypes")
    validators = importlib.import_module(PACKAGES["dstu2"] + ".fhirtypesvalidators")
    if "Coverage" in validators.MODEL_CLASSES:
        return
    validators.MODEL_CLASSES["Coverage"] = (None, ".coverage")
    fhirtypes.CoverageType = type("CoverageType", (fhirtypes.AbstractType,), {"__resource_type__": "Coverage"})
    validators.coverage_validator = lambda v: validators.fhir_model_validator("Coverage", v)


def undefined_elements(model, path):
    """The elements of a parsed DSTU2 `model` (and of everything in it) that
    its definition does not have; `_name` is allowed for a defined `name` (a
    primitive's id and extensions)."""
    base = importlib.import_module(PACKAGES["dstu2"] + ".fhirabstractmodel").FHIRAbstractModel
    found = []
    for name, value in model.__dict__.items():
        if name not in model.__fields__ and not (name.startswith("_") and name[1:] in model.__fields__):
            found.append(f"{path}.{name}: not an element of DSTU2 {type(model).__name__}")
            continue
        items = value if isinstance(value, list) else [value]
        for n, item in enumerate(items):
            if isinstance(item, base):
                where = f"{path}.{name}[{n}]" if isinstance(value, list) else f"{path}.{name}"
                found.extend(undefined_elements(item, where))
    return found


def validate(version, text):
    """Returns a list of error messages, empty when `text` is a valid resource."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return [f"not JSON: {e}"]
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return ["not a FHIR resource: no `resourceType`"]
    resource_type = data["resourceType"]
    if version == "dstu2":
        register_dstu2_coverage()
    package = importlib.import_module(PACKAGES[version])
    resource = importlib.import_module(PACKAGES[version] + ".resource").Resource
    try:
        model = package.get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        model = None
    if model is None or not issubclass(model, resource):
        return [f"`{resource_type}` is not a resource type of FHIR {version.upper()}"]
    try:
        parsed = model.parse_raw(text, content_type="application/json")
    except ValidationError as e:
        return [str(e)]
    if version == "dstu2":
        return undefined_elements(parsed, resource_type)
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, choices=sorted(PACKAGES))
    parser.add_argument("files", nargs="+", metavar="FILE", help="a JSON file, or - for standard input")
    args = parser.parse_args(argv)
    failed = False
    for file in args.files:
        if file == "-":
            text = sys.stdin.read()
        else:
            with open(file, encoding="utf-8") as f:
                text = f.read()
        errors = validate(args.version, text)
        prefix = f"{file}: " if len(args.files) > 1 else ""
        for error in errors:
            print(prefix + error)
        if errors:
            failed = True
        else:
            print(f"{prefix}valid {args.version} {json.loads(text)['resourceType']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
