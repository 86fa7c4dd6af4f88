"""Deployment files: Dockerfile, compose.yaml, deploy/tf_serving, deploy/prometheus, deploy/k8s.

No Docker engine or cluster here, so each file is checked the way its consumer would
read it: compose with Debian's ``docker-compose config`` and the Compose Specification
schema, TF Serving's config files with the project's (and the official) protos,
Kubernetes manifests with ``kubernetes-validate``'s offline schemas (strict) and, where
``kubectl`` is installed, on ``kubectl kustomize`` output; the healthcheck and entrypoint
commands are executed against real local HTTP servers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from google.protobuf import text_format
from support.net import free_port
from support.paths import REPO_ROOT

from gateway.docker_backend import TFSERVING_IMAGE
from gateway.pb import batching_parameters_pb2, model_server_config_pb2, monitoring_config_pb2

REPO = REPO_ROOT
TF_SERVING_DIR = REPO / "deploy" / "tf_serving"
K8S_DIR = REPO / "deploy" / "k8s"
COMPOSE_SCHEMA = REPO / "tests" / "data" / "deploy" / "compose_spec.json"
PINNED_TFSERVING = re.compile(r"tensorflow/serving:\d+\.\d+\.\d+")


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource in deploy/k8s by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in _load_yaml_docs(path):
            if doc["kind"] != "Kustomization":
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


# --- local HTTP servers the healthcheck commands are run against ----------------------


@pytest.fixture
def http_server() -> Iterator[tuple[int, dict[str, tuple[int, str]]]]:
    """A loopback HTTP server answering ``routes[path] = (status, body)``, else 404."""
    routes: dict[str, tuple[int, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, body = routes.get(self.path, (404, '{"error": "not found"}'))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kwargs)


def _status_body(*states: str) -> str:
    versions = [
        {"version": str(i), "state": s, "status": {"error_code": "OK", "error_message": ""}}
        for i, s in enumerate(states, start=1)
    ]
    return json.dumps({"model_version_status": versions}, indent=1)


# --- compose.yaml -------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="Debian's docker-compose is not installed (.ci/run installs it); "
    "the Compose-schema test below still checks the file",
)
def test_docker_compose_accepts_the_file() -> None:
    result = _run(["docker-compose", "-f", "compose.yaml", "config", "-q"], cwd=REPO)
    assert result.returncode == 0, result.stderr
    profiles = _run(
        ["docker-compose", "-f", "compose.yaml", "--profile", "monitoring", "config", "--services"],
        cwd=REPO,
    )
    assert sorted(profiles.stdout.split()) == ["gateway", "prometheus", "tfserving"]


def test_compose_file_matches_the_compose_schema(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    assert [e.message for e in validator.iter_errors(compose)] == []
    broken = {**compose, "services": {**compose["services"], "gateway": {"imag": "x"}}}
    assert any("imag" in e.message for e in validator.iter_errors(broken))


def test_tfserving_service(compose: dict[str, Any]) -> None:
    tfs = compose["services"]["tfserving"]
    assert PINNED_TFSERVING.fullmatch(tfs["image"]) and tfs["image"] == TFSERVING_IMAGE
    assert "./models:/models:ro" in tfs["volumes"]
    assert "./deploy/tf_serving:/config:ro" in tfs["volumes"]
    assert sorted(tfs["ports"]) == ["8500:8500", "8501:8501"]
    flags = dict(flag.removeprefix("--").split("=", 1) for flag in tfs["command"])
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    assert flags["enable_batching"] == "true"
    # Every config file a flag names is mounted from deploy/tf_serving and parses.
    parsers = {
        "model_config_file": model_server_config_pb2.ModelServerConfig,
        "batching_parameters_file": batching_parameters_pb2.BatchingParameters,
        "monitoring_config_file": monitoring_config_pb2.MonitoringConfig,
    }
    for flag, message in parsers.items():
        host_file = TF_SERVING_DIR / Path(flags[flag]).relative_to("/config")
        assert text_format.Parse(host_file.read_text(), message()).ByteSize() > 0, flag
    assert tfs["healthcheck"]["test"][:2] == ["CMD", "bash"]
    assert "/v1/models/digits " in tfs["healthcheck"]["test"][-1]


@pytest.mark.parametrize(
    ("states", "healthy"),
    [(("AVAILABLE",), True), (("LOADING",), False), (("END", "AVAILABLE"), True), ((), False)],
)
def test_tfserving_healthcheck_command_needs_an_available_version(
    compose: dict[str, Any], http_server, states: tuple[str, ...], healthy: bool
) -> None:
    port, routes = http_server
    if states:
        routes["/v1/models/digits"] = (200, _status_body(*states))
    script = compose["services"]["tfserving"]["healthcheck"]["test"][-1]
    assert "/dev/tcp/127.0.0.1/8501" in script
    result = _run(["bash", "-c", script.replace("127.0.0.1/8501", f"127.0.0.1/{port}")])
    assert (result.returncode == 0) is healthy, result.stderr


def test_tfserving_healthcheck_command_fails_when_nothing_listens(compose: dict[str, Any]) -> None:
    script = compose["services"]["tfserving"]["healthcheck"]["test"][-1]
    result = _run(["bash", "-c", script.replace("127.0.0.1/8501", f"127.0.0.1/{free_port()}")])
    assert result.returncode != 0


def test_gateway_service(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["build"] == "." and (REPO / "Dockerfile").is_file()
    assert gateway["environment"]["TFGW_BACKEND"] == "tfserving:8500"
    assert gateway["ports"] == ["8080:8080"]
    assert gateway["depends_on"] == {"tfserving": {"condition": "service_healthy"}}
    assert "profiles" not in gateway and "profiles" not in compose["services"]["tfserving"]
    # The gateway is told the model TF Serving loads (no model listing API in TF Serving).
    assert gateway["command"] == ["--model", _served_model_name()]


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_gateway_healthcheck_command_needs_readyz(
    compose: dict[str, Any], http_server, status: int, healthy: bool
) -> None:
    port, routes = http_server
    routes["/readyz"] = (status, "{}")
    test = compose["services"]["gateway"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and "127.0.0.1:8080/readyz" in test[3]
    result = _run([sys.executable, "-c", test[3].replace(":8080/", f":{port}/")])
    assert (result.returncode == 0) is healthy


def test_monitoring_profile_scrapes_both(compose: dict[str, Any]) -> None:
    prom = compose["services"]["prometheus"]
    assert prom["profiles"] == ["monitoring"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prom["image"])
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    monitoring = text_format.Parse(
        (TF_SERVING_DIR / "monitoring.config").read_text(), monitoring_config_pb2.MonitoringConfig()
    )
    assert monitoring.prometheus_config.enable
    assert jobs["tfserving"]["metrics_path"] == monitoring.prometheus_config.path
    assert jobs["tfserving"]["static_configs"][0]["targets"] == ["tfserving:8501"]
    assert jobs["gateway"]["metrics_path"] == "/metrics"
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:8080"]


# --- deploy/tf_serving ----------------------------------------------------------------


def _served_model_name() -> str:
    config = text_format.Parse(
        (TF_SERVING_DIR / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (model,) = config.model_config_list.config
    return model.name


def test_models_config_is_wire_identical_with_the_official_proto() -> None:
    from tensorflow_serving.config import model_server_config_pb2 as official

    text = (TF_SERVING_DIR / "models.config").read_text()
    ours = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    theirs = text_format.Parse(text, official.ModelServerConfig())
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    (model,) = theirs.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        "digits",
        "/models/digits",
        "tensorflow",
    )
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"


def test_batching_parameters_follow_tf_serving_rules() -> None:
    params = text_format.Parse(
        (TF_SERVING_DIR / "batching_parameters.txt").read_text(),
        batching_parameters_pb2.BatchingParameters(),
    )
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches"):
        assert params.HasField(field), field
    assert params.num_batch_threads.value >= 1
    sizes = list(params.allowed_batch_sizes)
    # BatchingSession: strictly increasing, last entry equal to max_batch_size.
    assert sizes == sorted(set(sizes)) and sizes[-1] == params.max_batch_size.value


def test_new_protos_keep_upstream_field_numbers_and_types() -> None:
    """Field numbers/types as in tensorflow_serving's monitoring_config.proto and
    session_bundle_config.proto (BatchingParameters), so the text files mean the same."""

    def fields(message: Any) -> dict[str, tuple[int, str]]:
        return {
            f.name: (f.number, f.message_type.full_name if f.message_type else f.type)
            for f in message.DESCRIPTOR.fields
        }

    int64, string = "google.protobuf.Int64Value", "google.protobuf.StringValue"
    assert fields(batching_parameters_pb2.BatchingParameters) == {
        "max_batch_size": (1, int64),
        "batch_timeout_micros": (2, int64),
        "max_enqueued_batches": (3, int64),
        "num_batch_threads": (4, int64),
        "thread_pool_name": (5, string),
        "allowed_batch_sizes": (6, 3),  # TYPE_INT64
        "pad_variable_length_inputs": (7, 8),  # TYPE_BOOL
    }
    assert fields(monitoring_config_pb2.MonitoringConfig) == {
        "prometheus_config": (1, "tfgw.tensorflow.serving.PrometheusConfig")
    }
    assert fields(monitoring_config_pb2.PrometheusConfig) == {"enable": (1, 8), "path": (2, 9)}


# --- Dockerfile -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[dict[str, Any]]:
    return DockerfileParser(path=str(REPO / "Dockerfile")).structure


def _final_stage(structure: list[dict[str, Any]]) -> list[dict[str, Any]]:
    starts = [i for i, item in enumerate(structure) if item["instruction"] == "FROM"]
    return structure[starts[-1] :]


def _one(stage: list[dict[str, Any]], instruction: str) -> str:
    (value,) = [item["value"] for item in stage if item["instruction"] == instruction]
    return value


def test_dockerfile_runs_as_non_root_with_healthcheck(dockerfile) -> None:
    args = dict(i["value"].split("=", 1) for i in dockerfile if i["instruction"] == "ARG")
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    final = _final_stage(dockerfile)
    user = _one(final, "USER").split(":")[0]
    assert user not in {"root", "0"}
    # Kubernetes runAsNonRoot can only verify a numeric USER; the manifest uses the same.
    gateway = yaml.safe_load((K8S_DIR / "gateway-deployment.yaml").read_text())
    assert gateway["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)
    assert _one(final, "EXPOSE") == "8080"
    healthcheck = _one(final, "HEALTHCHECK")
    assert "127.0.0.1:{port}/healthz" in healthcheck and "curl" not in healthcheck


def test_dockerfile_installs_no_tensorflow(dockerfile) -> None:
    runs = [i["value"] for i in dockerfile if i["instruction"] == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs, "the Dockerfile installs the project with pip"
    for command in installs:
        assert re.search(r"pip install \.(\s|$)", command), command  # no [extras]
        assert not re.search(r"pip install[^&]*tensorflow", command), command
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in core if d.lower().startswith("tensorflow")]
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert {".venv", "models", "tests", ".git"} <= set(ignored)
    assert not {"gateway", "pyproject.toml", "README.md"} & set(ignored)


def test_dockerfile_healthcheck_command_hits_healthz(dockerfile, http_server) -> None:
    port, routes = http_server
    command = json.loads(_one(_final_stage(dockerfile), "HEALTHCHECK").split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    probe = command[2]
    env = {"PATH": "/usr/bin:/bin", "TFGW_PORT": str(port)}
    assert _run([sys.executable, "-c", probe], env=env).returncode == 1  # no /healthz: 404
    routes["/healthz"] = (200, '{"status": "ok"}')
    assert _run([sys.executable, "-c", probe], env=env).returncode == 0
    vertex = {**env, "TFGW_PORT": "1", "AIP_HTTP_PORT": str(port)}  # Vertex AI's port wins
    assert _run([sys.executable, "-c", probe], env=vertex).returncode == 0


def test_dockerfile_entrypoint_runs_tfgw_gateway(dockerfile, tmp_path: Path) -> None:
    """Run the real ENTRYPOINT with a stand-in ``tfgw`` that prints its arguments."""
    entrypoint = json.loads(_one(_final_stage(dockerfile), "ENTRYPOINT"))
    assert "TFGW_PORT=8080" in _one(_final_stage(dockerfile), "ENV")  # port via env: AIP wins
    fake = tmp_path / "tfgw"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TFGW_BACKEND": "dns:///tfserving:8500"}
    result = _run([*entrypoint, "--model", "digits"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "gateway",
        "--backend",
        "dns:///tfserving:8500",
        "--host",
        "0.0.0.0",
        "--model",
        "digits",
    ]


# --- deploy/k8s -----------------------------------------------------------------------


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_every_manifest_is_valid_kubernetes(manifests) -> None:
    assert {kind for kind, _ in manifests} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    }
    for doc in manifests.values():
        _validate(doc)


def test_strict_validation_rejects_a_misspelled_field(manifests) -> None:
    container = manifests[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    broken = json.loads(json.dumps(manifests[("Deployment", "gateway")]))
    broken["spec"]["template"]["spec"]["containers"][0] = {
        **container,
        "readinesProbe": container["readinessProbe"],
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files | {"../tf_serving"}
    base = yaml.safe_load((TF_SERVING_DIR / "kustomization.yaml").read_text())
    (generator,) = base["configMapGenerator"]
    assert generator["name"] == "tfserving-config"
    assert sorted(generator["files"]) == [
        "batching_parameters.txt",
        "models.config",
        "monitoring.config",
    ]


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not installed: the rendered kustomization is not checked "
    "(every manifest file is still validated on its own)",
)
def test_kustomize_output_is_valid_and_wires_the_generated_configmap() -> None:
    result = _run(["kubectl", "kustomize", str(K8S_DIR)])
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in docs:
        _validate(doc)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tfserving-gateway"
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"].startswith("tfserving-config-")  # content hash
    for name, text in configmap["data"].items():
        assert text == (TF_SERVING_DIR / name).read_text()
    (tfs,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "tfserving"]
    volumes = {v["name"]: v for v in tfs["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _selects(selector: dict[str, Any], deployment: dict[str, Any]) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return selector.items() <= labels.items()


def test_tfserving_deployment(manifests, compose: dict[str, Any]) -> None:
    deployment = manifests[("Deployment", "tfserving")]
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == compose["services"]["tfserving"]["image"] == TFSERVING_IMAGE
    assert container["args"] == compose["services"]["tfserving"]["command"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    model = _served_model_name()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == "http" and get["path"].startswith(f"/v1/models/{model}"), probe
    # Status answers 200 while a version is still LOADING; metadata only once loaded.
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{model}/metadata"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert mounts["config"]["mountPath"] == "/config" and mounts["config"]["readOnly"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["models"]["persistentVolumeClaim"]
    assert claim == {"claimName": "tfserving-models", "readOnly": True}
    assert ("PersistentVolumeClaim", "tfserving-models") in manifests
    assert volumes["config"]["configMap"]["name"] == "tfserving-config"


def test_tfserving_service_is_headless(manifests) -> None:
    service = manifests[("Service", "tfserving")]
    assert service["spec"]["clusterIP"] == "None"
    assert _selects(service["spec"]["selector"], manifests[("Deployment", "tfserving")])
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"grpc": (8500, "grpc"), "http": (8501, "http")}


def test_gateway_deployment_balances_over_tfserving_pods(manifests) -> None:
    deployment = manifests[("Deployment", "gateway")]
    container = _container(deployment)
    assert container["image"] == "tfserving-gateway:latest"
    assert container["args"] == ["--model", _served_model_name()]
    assert "replicas" not in deployment["spec"]  # owned by the HPA
    env = [e["name"] for e in container["env"]]
    values = {e["name"]: e for e in container["env"]}
    target = values["TFGW_BACKEND"]["value"]
    # dns:/// resolver + headless Service name → every pod IP, for gRPC round_robin.
    match = re.fullmatch(
        r"dns:///tfserving(\.\$\(POD_NAMESPACE\)\.svc\.cluster\.local)?:8500", target
    )
    assert match, target
    if match.group(1):  # $(VAR) expands only from variables defined earlier in the list
        assert env.index("POD_NAMESPACE") < env.index("TFGW_BACKEND")
        assert values["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert "cpu" in container["resources"]["requests"]  # the HPA's utilisation base
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    service = manifests[("Service", "gateway")]
    assert _selects(service["spec"]["selector"], deployment)
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_gateway_autoscaler_and_disruption_budgets(manifests) -> None:
    hpa = manifests[("HorizontalPodAutoscaler", "gateway")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    for name, least in (("tfserving", 2), ("gateway", hpa["spec"]["minReplicas"])):
        pdb = manifests[("PodDisruptionBudget", name)]
        assert _selects(pdb["spec"]["selector"]["matchLabels"], manifests[("Deployment", name)])
        assert 1 <= pdb["spec"]["minAvailable"] < least
