#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests (YAML streams on stdin or in files)
without a cluster: built-in kinds against Kubernetes' own OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), KEDA's kinds against the
CRD schemas vendored in deploy/schemas/keda (jsonschema). Any other kind is an
error, so that nothing goes unchecked. Used by scripts/check-deploy."""

import glob
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = os.environ.get("KUBERNETES_VERSION", "1.32.0")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def crd_schemas():
    """(group/version, kind) -> openAPIV3Schema, from every vendored CRD."""
    schemas = {}
    for path in glob.glob(os.path.join(ROOT, "deploy", "schemas", "*", "*.yaml")):
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def main(paths):
    schemas = crd_schemas()
    streams = [open(p) for p in paths] if paths else [sys.stdin]
    checked, errors = 0, []
    for stream in streams:
        for obj in yaml.safe_load_all(stream):
            if not obj:
                continue
            checked += 1
            name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            key = (obj.get("apiVersion"), obj.get("kind"))
            try:
                if key in schemas:
                    jsonschema.validate(obj, schemas[key])
                else:
                    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except jsonschema.ValidationError as e:
                errors.append(f"{name}: {e.message} at {'/'.join(map(str, e.absolute_path))}")
            except kubernetes_validate.ValidationError as e:
                errors.append(f"{name}: {e.message} at {'/'.join(map(str, e.path))}")
            except Exception as e:  # unknown kind or version: no schema to check against
                errors.append(f"{name}: {type(e).__name__}: {e}")
    for error in errors:
        print(f"invalid: {error}", file=sys.stderr)
    print(f"{checked} objects checked against Kubernetes {KUBERNETES_VERSION} and vendored CRD schemas, {len(errors)} invalid")
    return 1 if errors or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
