"""Offline checks of deploy/: what a server-side dry run and promtool would catch, and more.

Renders deploy/k8s (the base, the example overlay, and the example overlay with the
secrets-as-files patch) with the real kustomize (`kubectl kustomize`, kustomize.py beside this
file), then checks every resource:
- built-in kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
  fields fail) for the oldest and newest Kubernetes versions we support;
- PrometheusRule and ServiceMonitor (CRDs, no bundled schema) by structure: every expression
  parses (promql-parser), names only metrics escalator exports, links an existing runbook section;
- references between resources (selectors, named ports, ConfigMaps, claims, volumes), the
  restricted security context, and every ESCALATOR_* name against escalator.settings.Settings;
- deploy/settings.example.toml names every setting and its values load.
Exit status 1 lists every problem.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package ships no type hints
import promql_parser
import yaml

# The renderer beside this file, and the escalator package (for its settings) above it.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from kustomize import Doc, RenderError, render  # noqa: E402 - path set above

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
RUNBOOK = ROOT / "docs" / "runbook.md"
SETTINGS_EXAMPLE = ROOT / "deploy" / "settings.example.toml"
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")

# The metrics escalator exports (escalator/metrics: keep both lists in step).
COUNTERS = frozenset(
    {
        "escalator_mails_received_total", "escalator_smtp_replies_total",
        "escalator_decisions_total", "escalator_actions_total",
        "escalator_action_retries_total", "escalator_store_errors_total",
        "escalator_smtp_idle_shed_total", "escalator_smtp_rate_limited_total",
        "escalator_storm_joined_total", "escalator_pagerduty_throttled_total",
        "escalator_pagerduty_polls_total",
    }
)  # fmt: skip
GAUGES = frozenset(
    {
        "escalator_outbox_pending", "escalator_outbox_oldest_pending_seconds",
        "escalator_deferred_pages_waiting", "escalator_last_probe_success_timestamp_seconds",
        "escalator_pages_failing_seconds",
    }
)  # fmt: skip
HISTOGRAMS = frozenset({"escalator_accept_seconds", "escalator_accept_to_page_seconds"})
KNOWN_SERIES = (
    COUNTERS
    | GAUGES
    | {f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "count", "sum")}
    | {"up"}  # Prometheus's own scrape health
)
# The labels escalator puts on each metric; a matcher on any other finds nothing, silently.
METRIC_LABELS: dict[str, frozenset[str]] = {
    "escalator_smtp_replies_total": frozenset({"code"}),
    "escalator_smtp_rate_limited_total": frozenset({"scope"}),
    "escalator_decisions_total": frozenset({"verdict", "reason"}),
    "escalator_actions_total": frozenset({"kind", "outcome"}),
    "escalator_action_retries_total": frozenset({"kind"}),
    "escalator_outbox_pending": frozenset({"kind"}),
    "escalator_pagerduty_polls_total": frozenset({"outcome"}),
    "escalator_accept_seconds_bucket": frozenset({"le"}),
    "escalator_accept_to_page_seconds_bucket": frozenset({"le"}),
}
# Labels Prometheus adds to every scraped series (job, instance, and the Operator's targets).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "endpoint"})
SEVERITIES = frozenset({"critical", "warning", "info"})
# Settings read before pydantic runs (at import), so they are not fields.
PRE_SETTINGS = frozenset({"ESCALATOR_SECRETS_DIR"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job"})
CRD_GROUPS = frozenset({"monitoring.coreos.com"})


def rendered_variants() -> dict[str, list[Doc]]:
    """Each shipped way of deploying, rendered: base, example, example with secrets as files."""
    variants = {
        "base": render(K8S / "base"),
        "example": render(K8S / "overlays" / "example"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        variants["example+secrets-as-files"] = render(_secrets_as_files_overlay(Path(tmp)))
    return variants


def _secrets_as_files_overlay(tmp: Path) -> Path:
    """The example overlay with its commented-out secrets-as-files patch switched on."""
    # kustomize wants relative paths, even for a folder outside the kustomization.
    example = os.path.relpath(K8S / "overlays" / "example", tmp)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [example],
        "patches": [
            {
                "path": f"{example}/secrets-as-files.yaml",
                "target": {"kind": "Deployment", "name": "escalator"},
            }
        ],
    }
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return tmp


# ---- schema validation ---------------------------------------------------------------------


def check_schemas(docs: list[Doc]) -> list[str]:
    """Built-in kinds against the bundled OpenAPI schemas, strictly; CRDs are checked below."""
    problems: list[str] = []
    for doc in docs:
        if _group(doc) in CRD_GROUPS:
            continue
        for version in KUBERNETES_VERSIONS:
            problems.extend(_validate(doc, version))
    return problems


def _validate(doc: Doc, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{_name(doc)}: no schema for {doc['apiVersion']} in Kubernetes {version}"]
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return [f"{_name(doc)} (Kubernetes {version}): {where}: {exc.message}"]
    return []


def _group(doc: Doc) -> str:
    return str(doc["apiVersion"]).rpartition("/")[0]


def _name(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# ---- the Prometheus Operator resources ------------------------------------------------------


def check_prometheus_rules(docs: list[Doc], anchors: set[str]) -> list[str]:
    """Every alert parses, uses known metrics, has a severity, a summary and a runbook section."""
    problems: list[str] = []
    seen: set[str] = set()
    for doc in _of_kind(docs, "PrometheusRule"):
        groups = doc.get("spec", {}).get("groups") or []
        if not groups:
            problems.append(f"{_name(doc)}: no rule groups")
        for group in groups:
            for rule in group.get("rules") or []:
                problems.extend(_check_rule(rule, anchors, seen))
    return problems


def _check_rule(rule: Doc, anchors: set[str], seen: set[str]) -> list[str]:
    name = rule.get("alert") or rule.get("record") or "<unnamed rule>"
    problems = [f"rule {name}: {p}" for p in _expr_problems(str(rule.get("expr", "")))]
    if "for" in rule and not _is_duration(str(rule["for"])):
        problems.append(f"rule {name}: 'for: {rule['for']}' is not a duration")
    if "alert" in rule:
        problems.extend(f"alert {name}: {p}" for p in _alert_problems(rule, anchors))
        if name in seen:
            problems.append(f"alert {name} is defined twice")
        seen.add(name)
    return problems


def _expr_problems(expr: str) -> list[str]:
    try:
        tree = promql_parser.parse(expr)
    except ValueError as exc:
        return [f"expr does not parse: {exc}"]
    problems = []
    for name, labels in selectors(tree):
        if name not in KNOWN_SERIES:
            problems.append(f"unknown metric {name!r}")
            continue
        allowed = METRIC_LABELS.get(name, frozenset()) | TARGET_LABELS
        problems += [f"{name} has no label {label!r}" for label in sorted(labels - allowed)]
    return problems


def selectors(tree: Any) -> list[tuple[str, set[str]]]:
    """(metric name, labels matched on) for every selector in a parsed PromQL expression."""
    found: list[tuple[str, set[str]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.append((node.name, {m.name for m in node.matchers.matchers}))

    promql_parser.walk(tree, visit)
    return found


def _is_duration(text: str) -> bool:
    try:
        promql_parser.parse_duration(text)
    except ValueError:
        return False
    return True


def _alert_problems(rule: Doc, anchors: set[str]) -> Iterator[str]:
    if rule.get("labels", {}).get("severity") not in SEVERITIES:
        yield f"severity must be one of {sorted(SEVERITIES)}"
    annotations = rule.get("annotations", {})
    if not annotations.get("summary"):
        yield "no summary annotation"
    url = str(annotations.get("runbook_url", ""))
    anchor = url.partition("#")[2]
    if not url.startswith("https://") or "/docs/runbook.md#" not in url:
        yield "runbook_url must link a section of docs/runbook.md"
    elif anchor not in anchors:
        yield f"runbook_url anchor #{anchor} is not a heading of docs/runbook.md"
    elif anchor != str(rule["alert"]).lower():
        yield f"runbook_url anchor #{anchor} should be the alert's own section"


def runbook_anchors(text: str) -> set[str]:
    """GitHub's anchors for the Markdown headings of a document."""
    anchors: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(slug.replace(" ", "-"))
    return anchors


def check_service_monitors(docs: list[Doc]) -> list[str]:
    """Each endpoint names a port of a Service the monitor selects, with a path and interval."""
    problems: list[str] = []
    for doc in _of_kind(docs, "ServiceMonitor"):
        spec = doc.get("spec", {})
        services = [
            s for s in _of_kind(docs, "Service") if _matches(spec.get("selector"), _labels(s))
        ]
        if not services:
            problems.append(f"{_name(doc)}: selects no Service")
        problems.extend(f"{_name(doc)}: {p}" for p in _endpoint_problems(spec, services))
    return problems


def _endpoint_problems(spec: Doc, services: list[Doc]) -> Iterator[str]:
    ports = {p.get("name") for s in services for p in s["spec"].get("ports", [])}
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        yield "no endpoints"
    for endpoint in endpoints:
        if endpoint.get("port") not in ports:
            yield f"endpoint port {endpoint.get('port')!r} is not a port of a selected Service"
        if not str(endpoint.get("path", "")).startswith("/"):
            yield "endpoint path must start with /"
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint and not _is_duration(str(endpoint[key])):
                yield f"endpoint {key} {endpoint[key]!r} is not a duration"


# ---- references between resources -----------------------------------------------------------


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _labels(doc: Doc) -> dict[str, str]:
    return dict(doc.get("metadata", {}).get("labels") or {})


def _matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """matchLabels semantics (and a plain Service selector map); expressions are not used."""
    if not selector:
        return False
    wanted = selector.get("matchLabels", selector)
    return all(labels.get(k) == v for k, v in wanted.items())


def pod_templates(docs: list[Doc]) -> list[tuple[Doc, Doc]]:
    """(workload, pod template) for every workload resource."""
    templates = []
    for doc in docs:
        if doc["kind"] == "CronJob":
            templates.append((doc, doc["spec"]["jobTemplate"]["spec"]["template"]))
        elif doc["kind"] in WORKLOAD_KINDS:
            templates.append((doc, doc["spec"]["template"]))
    return templates


def check_references(docs: list[Doc]) -> list[str]:
    """Selectors select, named ports exist, referenced ConfigMaps/claims/volumes exist."""
    templates = pod_templates(docs)
    problems = _service_problems(docs, templates)
    problems += _selector_problems(docs, templates)
    problems += _ingress_problems(docs)
    for workload, template in templates:
        problems += [f"{_name(workload)}: {p}" for p in _pod_reference_problems(template, docs)]
    return problems


def _service_problems(docs: list[Doc], templates: list[tuple[Doc, Doc]]) -> list[str]:
    problems = []
    for service in _of_kind(docs, "Service"):
        selected = [
            t for _, t in templates if _matches(service["spec"].get("selector"), _labels(t))
        ]
        if not selected:
            problems.append(f"{_name(service)}: selector matches no pod template")
        ports = {p.get(k) for t in selected for c in _pod_containers(t) for p in c.get("ports", [])
                 for k in ("name", "containerPort")}  # fmt: skip
        for port in service["spec"].get("ports", []):
            if port.get("targetPort", port["port"]) not in ports:
                problems.append(f"{_name(service)}: targetPort {port.get('targetPort')} unknown")
    return problems


def _selector_problems(docs: list[Doc], templates: list[tuple[Doc, Doc]]) -> list[str]:
    problems = []
    for doc in _of_kind(docs, "PodDisruptionBudget") + _of_kind(docs, "NetworkPolicy"):
        selector = doc["spec"].get("selector") or doc["spec"].get("podSelector")
        if not any(_matches(selector, _labels(t)) for _, t in templates):
            problems.append(f"{_name(doc)}: selector matches no pod template")
    for workload, template in templates:
        selector = workload["spec"].get("selector")
        if selector is not None and not _matches(selector, _labels(template)):
            problems.append(f"{_name(workload)}: selector does not match its own template")
    return problems


def _ingress_problems(docs: list[Doc]) -> list[str]:
    ports = {
        (s["metadata"]["name"], p.get(key))
        for s in _of_kind(docs, "Service")
        for p in s["spec"].get("ports", [])
        for key in ("name", "port")
    }
    problems = []
    for ingress in _of_kind(docs, "Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                port = backend["port"].get("name", backend["port"].get("number"))
                if (backend["name"], port) not in ports:
                    problems.append(f"{_name(ingress)}: backend {backend['name']}:{port} unknown")
    return problems


def _pod_containers(template: Doc) -> list[Doc]:
    spec = template["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def _pod_reference_problems(template: Doc, docs: list[Doc]) -> Iterator[str]:
    spec = template["spec"]
    config_maps = {d["metadata"]["name"] for d in _of_kind(docs, "ConfigMap")}
    claims = {d["metadata"]["name"] for d in _of_kind(docs, "PersistentVolumeClaim")}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for volume in volumes.values():
        if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
            yield f"volume {volume['name']}: ConfigMap {volume['configMap']['name']} missing"
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim is not None and claim not in claims:
            yield f"volume {volume['name']}: claim {claim} missing"
    for container in _pod_containers(template):
        yield from _container_reference_problems(container, volumes, config_maps)


def _container_reference_problems(
    container: Doc, volumes: dict[str, Doc], config_maps: set[str]
) -> Iterator[str]:
    name = container["name"]
    for mount in container.get("volumeMounts", []):
        if mount["name"] not in volumes:
            yield f"container {name}: mounts unknown volume {mount['name']}"
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        if ref is not None and ref not in config_maps:
            yield f"container {name}: envFrom ConfigMap {ref} missing"
    port_names = {p.get("name") for p in container.get("ports", [])}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        port = container.get(probe, {}).get("httpGet", {}).get("port")
        if isinstance(port, str) and port not in port_names:
            yield f"container {name}: {probe} uses unknown port {port}"


def external_secrets(docs: list[Doc]) -> set[str]:
    """Secrets the manifests reference but do not ship (created by the operator)."""
    shipped = {d["metadata"]["name"] for d in _of_kind(docs, "Secret")}
    referenced = set()
    for _, template in pod_templates(docs):
        for volume in template["spec"].get("volumes", []):
            referenced.add(volume.get("secret", {}).get("secretName"))
        for container in _pod_containers(template):
            for env in container.get("env", []):
                referenced.add(env.get("valueFrom", {}).get("secretKeyRef", {}).get("name"))
    return {s for s in referenced if s} - shipped


# ---- security posture ----------------------------------------------------------------------


def check_security(docs: list[Doc]) -> list[str]:
    """The 'restricted' Pod Security profile, plus no API token and no service-link variables."""
    problems = []
    for workload, template in pod_templates(docs):
        problems += [f"{_name(workload)}: {p}" for p in _pod_security_problems(template)]
    return problems


def _pod_security_problems(template: Doc) -> Iterator[str]:
    spec = template["spec"]
    pod = spec.get("securityContext", {})
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        yield "pod seccompProfile must be RuntimeDefault"
    if spec.get("automountServiceAccountToken") is not False:
        yield "automountServiceAccountToken must be false (escalator needs no API access)"
    if spec.get("enableServiceLinks") is not False:
        yield "enableServiceLinks must be false (service variables collide with ESCALATOR_*)"
    for container in _pod_containers(template):
        yield from (
            f"container {container['name']}: {p}" for p in _container_security(container, pod)
        )


def _container_security(container: Doc, pod: Doc) -> Iterator[str]:
    context = container.get("securityContext", {})
    if not (context.get("runAsNonRoot") or pod.get("runAsNonRoot")):
        yield "runAsNonRoot must be true"
    if context.get("readOnlyRootFilesystem") is not True:
        yield "readOnlyRootFilesystem must be true"
    if context.get("allowPrivilegeEscalation") is not False:
        yield "allowPrivilegeEscalation must be false"
    if context.get("capabilities", {}).get("drop") != ["ALL"]:
        yield "capabilities must drop ALL"
    if "memory" not in container.get("resources", {}).get("limits", {}):
        yield "a memory limit is required"


# ---- settings names ------------------------------------------------------------------------


def setting_fields() -> dict[str, Any]:
    """The application's settings fields (escalator.settings.Settings)."""
    from escalator.settings import Settings

    return dict(Settings.model_fields)


def check_setting_names(docs: list[Doc], fields: dict[str, Any]) -> list[str]:
    """Every ESCALATOR_* name the manifests pass is a setting, and the values validate."""
    known = {f"ESCALATOR_{f.upper()}" for f in fields} | PRE_SETTINGS
    problems = []
    for where, name, _ in _escalator_variables(docs):
        if name not in known:
            problems.append(f"{where}: {name} is not an escalator setting")
    problems += _value_problems(docs)
    return problems


def _escalator_variables(docs: list[Doc]) -> Iterator[tuple[str, str, str | None]]:
    """(where, name, literal value or None) for each ESCALATOR_* variable, key or file."""
    for doc in _of_kind(docs, "ConfigMap"):
        for key, value in (doc.get("data") or {}).items():
            if key.startswith("ESCALATOR_"):
                yield _name(doc), key, str(value)
    for workload, template in pod_templates(docs):
        for container in _pod_containers(template):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
                for name in (env["name"], ref):
                    if name and name.startswith("ESCALATOR_"):
                        yield _name(workload), name, env.get("value")


def _value_problems(docs: list[Doc]) -> list[str]:
    """The ConfigMap values, as the application would read them, pass its validation."""
    from escalator.settings import Settings

    values = {
        name.removeprefix("ESCALATOR_").lower(): value
        for _, name, value in _escalator_variables(docs)
        if value is not None and name not in PRE_SETTINGS
    }
    try:
        Settings.model_validate(values)  # validation only: no environment or files mixed in
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return [f"settings in the manifests do not validate: {exc}"]
    return []


def check_settings_example(path: Path, fields: dict[str, Any]) -> list[str]:
    """Every setting appears (active or commented out) with a comment; active values load."""
    from escalator.settings import Settings

    text = path.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"^#?\s?([a-z_]+) = ", text, flags=re.MULTILINE))
    problems = [f"{path.name}: setting {f} is missing" for f in sorted(set(fields) - mentioned)]
    problems += [f"{path.name}: {k} is not a setting" for k in sorted(mentioned - set(fields))]
    try:
        Settings.model_validate(tomllib.loads(text))
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{path.name}: active values do not load: {exc}")
    return problems


def check_mounted_files(docs: list[Doc]) -> list[str]:
    """A file setting's path is a key of a mounted ConfigMap, and the application can parse it."""
    from escalator.core.cover import parse_extra_days
    from escalator.errors import ConfigError

    problems = []
    for workload, path, text in _files_named_by_settings(docs, "ESCALATOR_EXTRA_HOLIDAYS_FILE"):
        if text is None:
            problems.append(f"{_name(workload)}: {path} is not a key of a mounted ConfigMap")
            continue
        try:
            parse_extra_days(text, path)
        except ConfigError as exc:
            problems.append(f"{_name(workload)}: {exc}")
    return problems


def _files_named_by_settings(
    docs: list[Doc], setting: str
) -> Iterator[tuple[Doc, str, str | None]]:
    """(workload, path, file content or None) for each container given the setting."""
    config_maps = {d["metadata"]["name"]: d.get("data") or {} for d in _of_kind(docs, "ConfigMap")}
    for workload, template in pod_templates(docs):
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        for container in _pod_containers(template):
            path = _setting_value(container, config_maps, setting)
            if path is not None:
                yield workload, path, _mounted_text(container, volumes, config_maps, path)


def _setting_value(container: Doc, config_maps: dict[str, Any], setting: str) -> str | None:
    value = None
    for source in container.get("envFrom", []):
        data = config_maps.get(source.get("configMapRef", {}).get("name"), {})
        value = data.get(setting, value)
    for env in container.get("env", []):
        value = env.get("value", value) if env["name"] == setting else value
    return value


def _mounted_text(
    container: Doc, volumes: dict[str, Doc], config_maps: dict[str, Any], path: str
) -> str | None:
    folder, _, key = path.rpartition("/")
    for mount in container.get("volumeMounts", []):
        source = volumes.get(mount["name"], {}).get("configMap", {}).get("name")
        if mount["mountPath"].rstrip("/") == folder and source in config_maps:
            text = config_maps[source].get(key)
            return None if text is None else str(text)
    return None


# ---- the Dockerfile --------------------------------------------------------------------------


def check_dockerfile(path: Path) -> list[str]:
    """The promises hadolint cannot check: non-root, a healthcheck, the serve entrypoint."""
    text = path.read_text(encoding="utf-8")
    final = text[text.rindex("\nFROM ") :]
    problems = []
    user = re.findall(r"^USER\s+(\S+)", final, flags=re.MULTILINE)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        problems.append(f"{path.name}: the final stage must switch to a non-root USER")
    if "HEALTHCHECK" not in final or "/healthz" not in final:
        problems.append(f"{path.name}: the final stage needs a HEALTHCHECK on /healthz")
    if not re.search(r'^ENTRYPOINT \["escalator"\]', final, flags=re.MULTILINE):
        problems.append(f'{path.name}: ENTRYPOINT must be ["escalator"]')
    return problems


# ---- the whole run ---------------------------------------------------------------------------


def check_variant(docs: list[Doc], fields: dict[str, Any], anchors: set[str]) -> list[str]:
    """All resource-level checks of one rendering."""
    return (
        check_schemas(docs)
        + check_prometheus_rules(docs, anchors)
        + check_service_monitors(docs)
        + check_references(docs)
        + check_security(docs)
        + check_setting_names(docs, fields)
        + check_mounted_files(docs)
    )


def check_all() -> tuple[list[str], list[str]]:
    """(problems, notes) for everything under deploy/."""
    fields = setting_fields()
    anchors = runbook_anchors(RUNBOOK.read_text(encoding="utf-8"))
    problems = check_settings_example(SETTINGS_EXAMPLE, fields)
    problems += check_dockerfile(ROOT / "deploy" / "Dockerfile")
    notes = []
    for label, docs in rendered_variants().items():
        problems += [f"[{label}] {p}" for p in check_variant(docs, fields, anchors)]
        notes.append(f"[{label}] {len(docs)} resources; Secrets to create: "
                     f"{', '.join(sorted(external_secrets(docs))) or 'none'}")  # fmt: skip
    return problems, notes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", type=Path, help="write the example rendering here")
    args = parser.parse_args(argv)
    try:
        problems, notes = check_all()
    except (RenderError, OSError, yaml.YAMLError) as exc:
        problems, notes = [f"cannot render: {exc}"], []
    if args.render:
        args.render.write_text(yaml.safe_dump_all(render(K8S / "overlays" / "example")))
    for line in notes + problems:
        print(line)
    print(f"deploy_check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
