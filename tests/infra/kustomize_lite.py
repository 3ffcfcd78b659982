"""A small kustomize renderer for the features infra/k8s uses, so the overlays can be rendered and
checked on machines without the kustomize binary (``kubectl kustomize`` is compared against it
when present, see test_k8s.py).

Supported: ``resources`` (files and directories), ``components``, ``namespace``, ``labels``
(metadata only), ``images`` (newName/newTag/digest), ``replicas``, ``patches`` (strategic merge
from a file, or RFC 6902 with a target), ``configMapGenerator`` (files; disableNameSuffixHash).
Anything else in a kustomization raises, so a new feature cannot be silently ignored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
    "configMapGenerator",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
}
# Strategic-merge keys of the lists used in these manifests (Kubernetes' own types only).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
BUILTIN_GROUPS = ("v1", "apps/", "batch/", "policy/", "networking.k8s.io/", "autoscaling/")


class KustomizeError(ValueError):
    pass


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def key(res: dict[str, Any]) -> tuple[str, str]:
    return res["kind"], res["metadata"]["name"]


def _is_builtin(res: dict[str, Any]) -> bool:
    api = res.get("apiVersion", "")
    return api == "v1" or api.startswith(BUILTIN_GROUPS)


def strategic_merge(base: Any, patch: Any, builtin: bool, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, builtin, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and builtin and field in MERGE_KEYS:
        mk = MERGE_KEYS[field]
        # Like kustomize: items only in the patch come first, merged items keep their place.
        out_list = [copy.deepcopy(x) for x in base]
        added = []
        for item in patch:
            match = next((i for i, x in enumerate(out_list) if x.get(mk) == item.get(mk)), None)
            if match is None:
                added.append(copy.deepcopy(item))
            else:
                out_list[match] = strategic_merge(out_list[match], item, builtin, "")
        return added + out_list
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if op["op"] in ("replace", "add"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif op["op"] == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if op["op"] == "replace" and last not in parent:
                    raise KustomizeError(f"replace of missing path {op['path']}")
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise KustomizeError(f"unsupported JSON patch op {op['op']!r}")
    return doc


def _containers(res: dict[str, Any]) -> list[dict[str, Any]]:
    spec = res.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def _set_image(image: str, rule: dict[str, Any]) -> str:
    name = rule.get("newName", rule["name"])
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    if "newTag" in rule:
        return f"{name}:{rule['newTag']}"
    tail = image[len(rule["name"]) :]
    return name + tail


def _image_name(image: str) -> str:
    if "@" in image:
        image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image = image[: len(image) - len(last)] + last.split(":", 1)[0]
    return image


def _select(resources: list[dict[str, Any]], target: dict[str, Any]) -> list[int]:
    hits = [
        i
        for i, r in enumerate(resources)
        if all(
            (k == "kind" and r["kind"] == v) or (k == "name" and r["metadata"]["name"] == v)
            for k, v in target.items()
        )
    ]
    if not hits:
        raise KustomizeError(f"patch target {target} matches nothing")
    return hits


def build(directory: Path, _component: bool = False) -> list[dict[str, Any]]:
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    k = yaml.safe_load(kfile.read_text(encoding="utf-8"))
    unknown = set(k) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")
    if (k.get("kind") == "Component") != _component:
        raise KustomizeError(
            f"{kfile}: kind {k.get('kind')} used as {'component' if _component else 'kustomization'}"
        )
    return _apply(directory, k, [])


def _apply(directory: Path, k: dict[str, Any], inherited: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = list(inherited)
    for entry in k.get("resources", []):
        path = (directory / entry).resolve()
        resources.extend(build(path) if path.is_dir() else load_yaml_docs(path))
    for gen in k.get("configMapGenerator", []):
        if not gen.get("options", {}).get("disableNameSuffixHash"):
            raise KustomizeError("configMapGenerator without disableNameSuffixHash is not supported")
        data = {Path(f).name: (directory / f).read_text(encoding="utf-8") for f in gen.get("files", [])}
        cm: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": gen["name"]},
            "data": data,
        }
        if gen["options"].get("labels"):
            cm["metadata"]["labels"] = dict(gen["options"]["labels"])
        resources.append(cm)
    for comp in k.get("components", []):
        cdir = (directory / comp).resolve()
        ck = yaml.safe_load((cdir / "kustomization.yaml").read_text(encoding="utf-8"))
        if ck.get("kind") != "Component":
            raise KustomizeError(f"{cdir} is not a Component")
        unknown = set(ck) - KNOWN_FIELDS
        if unknown:
            raise KustomizeError(f"{cdir}: unsupported fields {sorted(unknown)}")
        resources = _apply(cdir, ck, resources)
    seen: set[tuple[str, str]] = set()
    for r in resources:
        if key(r) in seen:
            raise KustomizeError(f"duplicate resource {key(r)}")
        seen.add(key(r))

    for patch in k.get("patches", []):
        if "path" in patch:
            for doc in load_yaml_docs(directory / patch["path"]):
                idx = _select(resources, {"kind": doc["kind"], "name": doc["metadata"]["name"]})[0]
                resources[idx] = strategic_merge(resources[idx], doc, _is_builtin(resources[idx]))
        else:
            ops = yaml.safe_load(patch["patch"])
            for idx in _select(resources, patch["target"]):
                resources[idx] = json6902(resources[idx], ops)

    for lab in k.get("labels", []):
        if lab.get("includeSelectors") or lab.get("includeTemplates"):
            raise KustomizeError("labels with includeSelectors/includeTemplates are not supported")
        for r in resources:
            r.setdefault("metadata", {}).setdefault("labels", {}).update(lab["pairs"])

    for rep in k.get("replicas", []):
        hits = [
            r for r in resources if r["metadata"]["name"] == rep["name"] and "replicas" in r.get("spec", {})
        ]
        if not hits:
            raise KustomizeError(f"replicas: nothing named {rep['name']}")
        for r in hits:
            r["spec"]["replicas"] = rep["count"]

    for rule in k.get("images", []):
        for r in resources:
            for c in _containers(r):
                if _image_name(c["image"]) == rule["name"]:
                    c["image"] = _set_image(c["image"], rule)

    if "namespace" in k:
        for r in resources:
            if r["kind"] not in CLUSTER_SCOPED:
                r["metadata"]["namespace"] = k["namespace"]
    return resources
