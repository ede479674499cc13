#!/usr/bin/env python3
"""Writes the field trees of the Kubernetes API kinds kubeboot applies, one JSON file per minor.

Source: the official Kubernetes Python client (PyPI `kubernetes`), whose models are generated from the
API server's OpenAPI document of one release branch (34.x = release-1.34, ..., 37.x = release-1.37).
Each model names its JSON fields, their types and which are required; this script walks the models
reachable from the kinds below and writes them compactly. Facts, not code: the tests read
the JSON, never the client.

Usage (a network with PyPI; the output is committed):
    for v in 34.1.0 35.0.0 36.0.3 37.0.2; do pip install -q --target /tmp/k8s-$v kubernetes==$v; done
    python3 extract.py /tmp/k8s-34.1.0 /tmp/k8s-35.0.0 /tmp/k8s-36.0.3 /tmp/k8s-37.0.2

Output `v1.MINOR.json`: {"source": ..., "kinds": {"GROUP/VERSION/Kind": "Model"},
"models": {"Model": {"fields": {"jsonName": TYPE}, "required": [...]}}} where TYPE is `string`,
`integer`, `number`, `boolean`, `date-time`, `any` (free-form: int-or-string, raw JSON), `[TYPE]` (a
list), `{TYPE}` (a map from strings) or a model name. The client types resource quantities as strings
(the real server also takes numbers there), so manifests checked against these files quote them.
"""
import importlib
import inspect
import os
import json
import re
import subprocess
import sys

# The kinds kubeboot's manifests use or will use (addons, autoscaler, CSI), by API group version.
KINDS = {
    "v1": ["Namespace", "ServiceAccount", "ConfigMap", "Secret", "Service"],
    "apps/v1": ["Deployment", "DaemonSet", "StatefulSet"],
    "rbac.authorization.k8s.io/v1": ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
    "storage.k8s.io/v1": ["StorageClass", "CSIDriver"],
    "policy/v1": ["PodDisruptionBudget"],
    "scheduling.k8s.io/v1": ["PriorityClass"],
}

SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
           "datetime": "date-time", "date": "date-time", "object": "any",
           "bytearray": "string", "bytes": "string"}


def field_type(expr):
    """A model's openapi_types entry: 'str', 'list[V1X]' or 'List[V1X]', 'dict(str, str)',
    'dict[str, str]' or 'Dict[str, str]', 'V1X'."""
    if expr.lower().startswith("list[") and expr.endswith("]"):
        return "[" + field_type(expr[5:-1]) + "]"
    for opening, closing in (("dict[str, ", "]"), ("dict(str, ", ")")):
        if expr.lower().startswith(opening) and expr.endswith(closing):
            return "{" + field_type(expr[len(opening):-1]) + "}"
    return SCALARS.get(expr, expr)


def model_of(models, name):
    """(fields, required) of one model. The 35 and 36 clients check required fields in their setters,
    the 37 client (pydantic) declares them; both list every field's type in `openapi_types`."""
    cls = getattr(models, name)
    attribute_map = getattr(cls, "attribute_map", None) or {
        attr: info.serialization_alias or info.alias or attr
        for attr, info in cls.model_fields.items()}
    fields = {attribute_map[a]: field_type(t) for a, t in cls.openapi_types.items()}
    if hasattr(cls, "model_fields"):
        required = [attribute_map[a] for a, info in cls.model_fields.items() if info.is_required()]
    else:
        required = [attribute_map[a] for a in re.findall(
            r"client_side_validation and (\w+) is None", inspect.getsource(cls))]
    return fields, sorted(set(required))


def dump():
    """In the client's interpreter: the reachable models, as JSON on stdout."""
    models = importlib.import_module("kubernetes.client.models")
    doc = inspect.getsource(importlib.import_module("kubernetes.client.models.v1_pod_spec"))
    release = re.search(r"release-1\.\d+", doc).group(0)
    kinds, out, todo = {}, {}, []
    for gv, names in KINDS.items():
        version = gv.split("/")[-1].capitalize()
        for kind in names:
            model = f"{version}{kind}"
            kinds[f"{gv}/{kind}"] = model
            todo.append(model)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        fields, required = model_of(models, name)
        out[name] = {"fields": fields, "required": required}
        for t in fields.values():
            inner = t.strip("[]{}")
            if inner and inner[0].isupper() and inner not in out:
                todo.append(inner)
    json.dump({"release": release, "kinds": kinds, "models": out}, sys.stdout)


def main(targets):
    here = os.path.dirname(os.path.abspath(__file__))
    for target in targets:
        env = dict(os.environ, PYTHONPATH=target)
        out = subprocess.run([sys.executable, __file__, "--dump"], env=env, check=True,
                             capture_output=True, text=True).stdout
        data = json.loads(out)
        version = next(n.removeprefix("kubernetes-").removesuffix(".dist-info")
                       for n in os.listdir(target)
                       if n.startswith("kubernetes-") and n.endswith(".dist-info"))
        minor = data["release"].removeprefix("release-")
        document = {
            "source": f"PyPI kubernetes {version}: models generated from the OpenAPI document of "
                      f"Kubernetes {data['release']}; extracted by tests/data/upstream/k8s-api/extract.py",
            "kinds": data["kinds"],
            "models": dict(sorted(data["models"].items())),
        }
        path = os.path.join(here, f"v{minor}.json")
        with open(path, "w") as f:
            json.dump(document, f, indent=1)
            f.write("\n")
        print(path, len(data["models"]), "models")


if __name__ == "__main__":
    if sys.argv[1:] == ["--dump"]:
        dump()
    else:
        main(sys.argv[1:])
