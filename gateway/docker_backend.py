"""The real TensorFlow Serving as a backend: ``tfgw serve PATH --backend docker``.

:func:`container_spec` turns a model path (or a ``models.config``) into everything needed
to run the official ``tensorflow/serving`` image: command line, read-only bind mounts,
published ports and the config files to copy in. It talks to no Docker engine, so it is
unit-tested everywhere. :class:`DockerTFServing` runs that spec through the Docker SDK
(``docker`` package, ``server`` extra), waits until every model has an AVAILABLE version
(TF Serving's own ``ModelService/GetModelStatus`` over gRPC) and removes the container on
:meth:`~DockerTFServing.stop`. Without a reachable engine it raises
:class:`DockerUnavailable` with a one-line message.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import grpc
from google.protobuf import text_format

from gateway.errors import BackendUnavailable, InvalidInput
from gateway.names import validate_model_name
from gateway.pb import (
    batching_parameters_pb2,
    get_model_status_pb2,
    model_pb2,
)
from gateway.repository.layout import is_savedmodel, model_name_for, read_model_config
from gateway.wire import METHODS

__all__ = [
    "GRPC_PORT",
    "REST_PORT",
    "TFSERVING_IMAGE",
    "ContainerFailed",
    "DockerTFServing",
    "DockerUnavailable",
    "container_spec",
    "model_status_problem",
]

log = logging.getLogger(__name__)

TFSERVING_IMAGE = "tensorflow/serving:2.19.1"
GRPC_PORT = 8500
REST_PORT = 8501
MODELS_DIR = PurePosixPath("/models")
CONFIG_DIR = PurePosixPath("/tfgw")
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


class DockerUnavailable(BackendUnavailable):
    """No Docker SDK or no reachable Docker engine."""


class ContainerFailed(BackendUnavailable):
    """The TF Serving container exited or did not become healthy in time."""


def container_spec(
    path: str | Path | None = None,
    *,
    model_name: str | None = None,
    model_config_file: str | Path | None = None,
    batching_parameters_file: str | Path | None = None,
    image: str = TFSERVING_IMAGE,
    host: str = "127.0.0.1",
    grpc_port: int = GRPC_PORT,
    rest_port: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Describe the TF Serving container for one model PATH or a ``models.config``.

    PATH is a model base path (numeric versions) or one SavedModel directory (mounted as
    version 1, or as its own number when the directory is named like a version). Model
    base paths in a ``models.config`` are host paths (relative ones are taken from the
    config file's directory); each is mounted read-only at ``/models/NAME`` and the config
    is rewritten to point there. Port 0 lets Docker pick a free host port.

    Returns ``image``, ``name``, ``command``, ``volumes`` and ``ports`` (keyword arguments
    of ``docker.containers.create``), ``labels``, ``files`` (container path → text, copied
    in before start), ``models`` (names to wait for) and ``host``/``grpc_port``.
    """
    if (path is None) == (model_config_file is None):
        raise InvalidInput("give either a model PATH or a models.config file (exactly one)")
    if model_config_file is not None and model_name is not None:
        raise InvalidInput("a models.config names its models: drop the model name")
    if path is not None:
        volumes, command, models = _single_model(Path(path), model_name)
        files: dict[str, str] = {}
    else:
        volumes, config_text, models = _config_models(Path(model_config_file))  # type: ignore[arg-type]
        config_path = CONFIG_DIR / "models.config"
        files = {str(config_path): config_text}
        command = [f"--model_config_file={config_path}"]
    if batching_parameters_file is not None:
        batching_path = CONFIG_DIR / "batching_parameters.txt"
        files[str(batching_path)] = _batching_text(Path(batching_parameters_file))
        command += ["--enable_batching=true", f"--batching_parameters_file={batching_path}"]
    ports: dict[str, tuple[str, int | None]] = {f"{GRPC_PORT}/tcp": (host, grpc_port or None)}
    if rest_port is not None:
        ports[f"{REST_PORT}/tcp"] = (host, rest_port or None)
    return {
        "image": image,
        "name": name,
        "command": [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}", *command],
        "volumes": volumes,
        "ports": ports,
        "labels": {
            "org.tfserving-gateway.role": "tfserving",
            "org.tfserving-gateway.models": ",".join(models),
        },
        "files": files,
        "models": models,
        "host": host,
        "grpc_port": grpc_port,
    }


def _single_model(path: Path, model_name: str | None) -> tuple[dict, list[str], list[str]]:
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise InvalidInput(f"model path {str(path)!r} is not a directory")
    name = validate_model_name(model_name_for(path) if model_name is None else model_name)
    base = MODELS_DIR / name
    target = base
    if is_savedmodel(path):  # one SavedModel: a version of its own (its number, or 1)
        target = base / (path.name if path.name.isdigit() else "1")
    volumes = {str(path): {"bind": str(target), "mode": "ro"}}
    return volumes, [f"--model_name={name}", f"--model_base_path={base}"], [name]


def _config_models(config_file: Path) -> tuple[dict, str, list[str]]:
    """Mount each model's host base path at ``/models/NAME`` and point the config there."""
    config = read_model_config(config_file.expanduser().resolve())
    if config.WhichOneof("config") != "model_config_list":
        raise InvalidInput(f"{str(config_file)!r} has no model_config_list")
    volumes: dict[str, dict[str, str]] = {}
    names: list[str] = []
    for model in config.model_config_list.config:
        host_base = Path(model.base_path).expanduser().resolve()
        if not host_base.is_dir():
            raise InvalidInput(f"base_path of model {model.name!r} is not a directory: "
                               f"{host_base}")
        model.base_path = str(MODELS_DIR / model.name)
        volumes[str(host_base)] = {"bind": model.base_path, "mode": "ro"}
        names.append(model.name)
    if not names:
        raise InvalidInput(f"{str(config_file)!r} lists no models")
    return volumes, text_format.MessageToString(config), names


def _batching_text(path: Path) -> str:
    try:
        text = path.read_text()
        text_format.Parse(text, batching_parameters_pb2.BatchingParameters())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as exc:
        raise InvalidInput(f"cannot read batching parameters {str(path)!r}: {exc}") from None
    return text


def model_status_problem(target: str, models: Sequence[str], timeout: float) -> str | None:
    """``None`` when every model has an AVAILABLE version at ``target``, else why not."""
    with grpc.insecure_channel(target) as channel:
        get_status = METHODS["GetModelStatus"].bind(channel)
        for name in models:
            request = get_model_status_pb2.GetModelStatusRequest(
                model_spec=model_pb2.ModelSpec(name=name)
            )
            try:
                response = get_status(request, timeout=timeout)
            except grpc.RpcError as exc:
                return f"model {name!r}: {exc.code().name}: {exc.details()}"
            states = [s.state for s in response.model_version_status]
            if _AVAILABLE not in states:
                named = [get_model_status_pb2.ModelVersionStatus.State.Name(s) for s in states]
                return f"model {name!r} has no AVAILABLE version (states: {named or 'none'})"
    return None


class DockerTFServing:
    """One ``tensorflow/serving`` container run from a :func:`container_spec` dict."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._client: Any = None
        self._container: Any = None

    def start(self) -> None:
        """Create the container (pulling the image if needed), copy files in, start it.

        Any Docker failure removes what was created and raises a one-line
        :class:`DockerUnavailable` (no engine) or :class:`ContainerFailed`.
        """
        import docker  # present: _connect() checked

        self._client = _connect()
        create = {k: self.spec[k] for k in ("image", "command", "volumes", "ports", "labels")}
        if self.spec.get("name"):
            create["name"] = self.spec["name"]
        try:
            self._container = self._create(create)
            if self.spec["files"]:
                self._container.put_archive("/", _tar(self.spec["files"]))
            self._container.start()
        except docker.errors.DockerException as exc:
            self.stop()
            raise ContainerFailed(f"cannot start TF Serving container: {_line(exc)}") from None
        log.info("started %s (container %s)", self.spec["image"], self._container.short_id)

    def _create(self, kwargs: dict[str, Any]) -> Any:
        import docker

        try:
            return self._client.containers.create(detach=True, **kwargs)
        except docker.errors.ImageNotFound:
            log.info("pulling %s (first use)", kwargs["image"])
            self._client.images.pull(kwargs["image"])
            return self._client.containers.create(detach=True, **kwargs)

    @property
    def target(self) -> str:
        """``host:port`` of TF Serving's gRPC API on this machine."""
        port = self.spec["grpc_port"]
        if not port:
            port = self._published_port(f"{GRPC_PORT}/tcp")
        return f"{self.spec['host']}:{port}"

    def _published_port(self, container_port: str) -> int:
        import docker

        if self._container is None:
            raise ContainerFailed("TF Serving container is not started")
        try:
            self._container.reload()
        except docker.errors.DockerException as exc:
            raise ContainerFailed(f"TF Serving container lost: {_line(exc)}") from None
        bindings = self._container.attrs["NetworkSettings"]["Ports"].get(container_port)
        if not bindings:
            raise ContainerFailed(f"Docker published no host port for {container_port}")
        return int(bindings[0]["HostPort"])

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Block until every model has an AVAILABLE version; raise ``ContainerFailed``."""
        if self._container is None:
            raise ContainerFailed("TF Serving container is not started")
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            remaining = deadline - time.monotonic()
            problem = model_status_problem(
                self.target, self.spec["models"], timeout=min(2.0, max(1.0, remaining))
            )
            if problem is None:
                return
            if remaining <= 0:
                raise ContainerFailed(f"TF Serving not healthy after {timeout:g}s: {problem}")
            time.sleep(min(0.5, max(0.0, remaining)))

    def _check_running(self) -> None:
        import docker

        try:
            self._container.reload()
            if self._container.status not in ("exited", "dead"):
                return
            logs = self._container.logs(tail=5).decode(errors="replace").strip()
        except docker.errors.DockerException as exc:
            raise ContainerFailed(f"TF Serving container lost: {_line(exc)}") from None
        raise ContainerFailed(f"TF Serving container exited: {_line(logs) or 'no logs'}")

    def stop(self) -> None:
        """Remove the container (killing it if needed); safe to call twice."""
        container, self._container = self._container, None
        if container is not None:
            import docker

            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                log.warning("could not remove container %s: %s", container.short_id, exc)
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> DockerTFServing:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _connect() -> Any:
    """A Docker client that answered a ping, or ``DockerUnavailable``."""
    try:
        import docker
    except ImportError:
        raise DockerUnavailable(
            "Docker SDK not installed: pip install 'tfserving-gateway[server]'"
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker wraps some failures, requests/OSError leak others
        raise DockerUnavailable(f"Docker engine not reachable: {_line(exc)}") from None
    return client


def _tar(files: dict[str, str]) -> bytes:
    """A tar archive (for ``put_archive('/')``) holding ``files`` at their absolute paths."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in sorted({str(PurePosixPath(p).parent) for p in files}):
            info = tarfile.TarInfo(directory.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for container_path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(container_path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _line(exc: object) -> str:
    """Collapse a (possibly multi-line) error text to one line."""
    return " ".join(str(exc).split())
