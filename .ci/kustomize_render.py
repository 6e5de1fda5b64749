"""Render a kustomization the way `kubectl kustomize` does, for the features deploy/ uses.

Debian ships no kubectl, so CI renders deploy/k8s in Python. Supported, with kustomize's
meaning: `resources` (files, and folders holding a kustomization.yaml), `namespace`, `labels`
(metadata only: includeSelectors/includeTemplates false), `images` and `patches` (JSON 6902
operations, or a strategic merge patch made only of maps). Anything else is refused by name,
so a manifest can never rely on a feature this renderer silently ignores. When kubectl is
present, .ci/check-deploy compares both renderings.

Usage: kustomize_render.py DIR  (prints the rendered YAML stream)
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED_KEYS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
)
# Kinds that have no namespace (kustomize leaves metadata.namespace off them).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
        "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
        "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
        "RuntimeClass", "CSIDriver", "VolumeAttachment",
    }
)  # fmt: skip


class RenderError(Exception):
    """The kustomization is invalid or uses a feature this renderer does not implement."""


def render(directory: Path) -> list[Doc]:
    """Build the kustomization in `directory` into a list of resources."""
    kustomization = _load_kustomization(directory)
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        docs.extend(_load_resource(directory / entry))
    _refuse_duplicates(docs)
    for transform in _TRANSFORMS:
        transform(kustomization, directory, docs)
    return docs


def _load_kustomization(directory: Path) -> Doc:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(data) - SUPPORTED_KEYS)
    if unknown:
        raise RenderError(f"{path}: unsupported kustomization fields {unknown}")
    return dict(data)


def _load_resource(path: Path) -> list[Doc]:
    if path.is_dir():
        return render(path)
    if not path.is_file():
        raise RenderError(f"resource {path} does not exist")
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def resource_id(doc: Doc) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): what kustomize treats as one resource."""
    meta = doc.get("metadata", {})
    return (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])


def _refuse_duplicates(docs: list[Doc]) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for doc in docs:
        key = resource_id(doc)
        if key in seen:
            raise RenderError(f"resource {key} appears twice")
        seen.add(key)


def _apply_patches(kustomization: Doc, directory: Path, docs: list[Doc]) -> None:
    for entry in kustomization.get("patches", []):
        patch = _load_patch(entry, directory)
        targets = _patch_targets(entry.get("target"), patch, docs)
        if not targets:
            raise RenderError(f"patch {entry} matches no resource")
        for index in targets:
            docs[index] = _apply_one(docs[index], patch)


def _load_patch(entry: Doc, directory: Path) -> Any:
    if "path" in entry:
        return yaml.safe_load((directory / entry["path"]).read_text(encoding="utf-8"))
    if "patch" in entry:
        return yaml.safe_load(entry["patch"])
    raise RenderError(f"patch {entry} has neither path nor patch")


def _patch_targets(target: Doc | None, patch: Any, docs: list[Doc]) -> list[int]:
    if target is None:
        if not isinstance(patch, dict):
            raise RenderError("a JSON 6902 patch needs a target")
        target = {"kind": patch["kind"], "name": patch["metadata"]["name"]}
    return [i for i, doc in enumerate(docs) if _selected(target, doc)]


def _selected(target: Doc, doc: Doc) -> bool:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        raise RenderError(f"unsupported patch target fields {sorted(unknown)}")
    group, _, version = doc["apiVersion"].rpartition("/")
    actual = {
        "group": group, "version": version, "kind": doc["kind"],
        "name": doc["metadata"]["name"], "namespace": doc["metadata"].get("namespace", ""),
    }  # fmt: skip
    # kustomize matches selector fields as anchored regular expressions.
    return all(re.fullmatch(str(want), actual[key]) for key, want in target.items())


def _apply_one(doc: Doc, patch: Any) -> Doc:
    if isinstance(patch, list):
        result = copy.deepcopy(doc)
        for op in patch:
            result = _json6902(result, op)
        return result
    if isinstance(patch, dict):
        return _merge_maps(doc, patch, path="")
    raise RenderError(f"patch is neither a list of operations nor a map: {patch!r}")


def _merge_maps(base: Doc, patch: Doc, path: str) -> Doc:
    """Strategic merge restricted to maps; lists need JSON 6902 (their merge keys vary)."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        where = f"{path}/{key}"
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_maps(merged[key], value, where)
        elif isinstance(value, list) and key in merged:
            raise RenderError(f"strategic merge into list {where}: use a JSON 6902 patch")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise RenderError(f"JSON pointer {path!r}: {part!r} not found") from None
    return node


def _json6902(doc: Doc, op: Doc) -> Doc:
    kind, path = op.get("op"), op.get("path", "")
    parts = _pointer(path)
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if kind == "test":
        if _walk(doc, parts, path) != op["value"]:
            raise RenderError(f"JSON 6902 test failed at {path}")
    elif kind == "remove":
        _walk(doc, parts, path)
        del parent[int(last) if isinstance(parent, list) else last]
    elif kind in ("add", "replace"):
        _set(parent, last, copy.deepcopy(op["value"]), insert=kind == "add", path=path)
    else:
        raise RenderError(f"unsupported JSON 6902 operation {kind!r}")
    return doc


def _set(parent: Any, last: str, value: Any, *, insert: bool, path: str) -> None:
    if isinstance(parent, dict):
        if not insert and last not in parent:
            raise RenderError(f"JSON 6902 replace of missing {path}")
        parent[last] = value
    elif isinstance(parent, list):
        if insert and last == "-":
            parent.append(value)
        elif insert:
            parent.insert(int(last), value)
        else:
            _walk(parent, [last], path)
            parent[int(last)] = value
    else:
        raise RenderError(f"JSON pointer {path!r} does not lead into a map or list")


def _apply_namespace(kustomization: Doc, _directory: Path, docs: list[Doc]) -> None:
    namespace = kustomization.get("namespace")
    if namespace is None:
        return
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace


def _apply_labels(kustomization: Doc, _directory: Path, docs: list[Doc]) -> None:
    for entry in kustomization.get("labels", []):
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise RenderError("labels with includeSelectors/includeTemplates are not supported")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(entry["pairs"])


def _apply_images(kustomization: Doc, _directory: Path, docs: list[Doc]) -> None:
    for entry in kustomization.get("images", []):
        for container in (c for doc in docs for c in _containers(doc)):
            container["image"] = _retag(container["image"], entry)


def _containers(node: Any) -> Iterator[Doc]:
    """Every container and init container anywhere in a resource (pods, templates, jobs)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _split_image(image: str) -> tuple[str, str, str]:
    """'repo:tag@digest' to (repo, tag, digest); a registry port is not a tag."""
    rest, _, digest = image.partition("@")
    repo, sep, tag = rest.rpartition(":")
    if not sep or "/" in tag:
        return rest, "", digest
    return repo, tag, digest


def _retag(image: str, entry: Doc) -> str:
    repo, tag, digest = _split_image(image)
    if repo != entry["name"]:
        return image
    repo = str(entry.get("newName", repo))
    if "digest" in entry:
        return f"{repo}@{entry['digest']}"
    if "newTag" in entry:
        return f"{repo}:{entry['newTag']}"
    return repo + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


# The order of kustomize's built-in transformers (api/internal/target/kusttarget_configplugin.go).
_TRANSFORMS: tuple[Callable[[Doc, Path, list[Doc]], None], ...] = (
    _apply_namespace,
    _apply_patches,
    _apply_labels,
    _apply_images,
)


def dump(docs: list[Doc]) -> str:
    """The rendered stream as YAML, one document per resource."""
    return str(yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        sys.stdout.write(dump(render(Path(argv[0]))))
    except (RenderError, OSError, yaml.YAMLError) as exc:
        print(f"kustomize_render: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
