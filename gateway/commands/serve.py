"""``tfgw serve PATH``: the embedded model server and the gateway in one process.

Like tfdeploy's ``serve_savedmodel()``: REST on 127.0.0.1:8089 by default, gRPC on 8500,
both on one event loop. PATH is a SavedModel directory or a model base path; a
``models.config`` next to the base path that names the model contributes its version
labels. ``--backend docker`` runs the real ``tensorflow/serving`` image instead.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shlex
import sys
import tempfile
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import GatewayConfig, add_arguments
from gateway.errors import GatewayError, UsageError
from gateway.repository.layout import (
    CONFIG_FILE,
    ModelConfigError,
    ModelServerConfig,
    is_savedmodel,
    model_labels,
    model_name_for,
    read_model_config,
    write_model_config,
)

if TYPE_CHECKING:
    from gateway.http import GatewayServer
    from gateway.runtime import DockerBackend, EmbeddedBackend, StopSignals

__all__ = ["configure", "run"]



def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="a SavedModel directory or a model base path (numeric versions)")
    parser.add_argument("--model-name", default=None, help="model name (default: from PATH)")
    parser.add_argument("--model-config-file", "--model_config_file", default=None,
                        help="serve the models a TF Serving models.config lists")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="REST port (default 8089)")
    parser.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default 8500)")
    parser.add_argument("--browse", action="store_true", help="open the docs page")
    parser.add_argument("--backend", default="embedded", choices=("embedded", "docker"),
                        help="embedded model server (default) or docker tensorflow/serving")
    add_arguments(parser, serve=True)


def _model_sources(args: argparse.Namespace) -> tuple[str | None, str | None, list[str]]:
    """(model name, models.config path, model names); validates PATH vs config."""
    if (args.path is None) == (args.model_config_file is None):
        raise UsageError("give a model PATH or --model-config-file FILE (exactly one)")
    try:
        if args.model_config_file:
            config = read_model_config(args.model_config_file)
            return None, args.model_config_file, list(model_labels(config))
        path = Path(args.path)
        if not path.is_dir():
            raise UsageError(f"no such model directory: {path}")
        name = args.model_name or model_name_for(path)
        return name, _labels_config(path, name), [name]
    except ModelConfigError as exc:
        raise UsageError(exc.message) from None


def _labels_config(path: Path, name: str) -> str | None:
    """A one-model config with the labels of a ``models.config`` beside PATH, if any."""
    if is_savedmodel(path):
        return None
    config = read_model_config(path.resolve().parent / CONFIG_FILE, missing_ok=True)
    for entry in config.model_config_list.config:
        if entry.name == name:
            one = ModelServerConfig()
            model = one.model_config_list.config.add()
            model.CopyFrom(entry)
            model.base_path = str(path.resolve())
            fd, name = tempfile.mkstemp(prefix="tfgw-serve-", suffix=".config")
            os.close(fd)
            write_model_config(name, one)
            return name
    return None


def run(args: argparse.Namespace) -> int:
    name, config_file, names = _model_sources(args)
    try:
        config = GatewayConfig.from_args(args)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    config = dataclasses.replace(
        config, host=args.host, port=args.port, models=tuple(names),
        default_model=args.default_model or (names[0] if len(names) == 1 else None),
    )
    if config_file:
        config = config.with_model_config(config_file)
    try:
        return asyncio.run(_main(args, config, name, config_file))
    except GatewayError as exc:
        sys.stderr.write(f"tfgw serve: error: {exc.message}\n")
        return 1
    except TimeoutError as exc:
        sys.stderr.write(f"tfgw serve: error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"tfgw serve: error: {exc}\n")
        return 1
    finally:
        if config_file and config_file != args.model_config_file:
            Path(config_file).unlink(missing_ok=True)


async def _main(args: argparse.Namespace, config: GatewayConfig, name: str | None,
                config_file: str | None) -> int:
    from gateway.runtime import Stopped, StopSignals

    backend = _backend(args, name, config_file)
    with StopSignals() as signals:
        what = config_file if name is None else f"{name} from {args.path}"
        print(f"tfgw serve: loading {what} ({args.backend} backend)", flush=True)
        try:
            target = await signals.guard(backend.start())
            await _serve_gateway(args, config, target, signals)
        except Stopped:
            pass
        finally:
            await backend.stop()
    print("tfgw serve: stopped", flush=True)
    return 0


def _backend(args: argparse.Namespace, name: str | None, config_file: str | None
             ) -> EmbeddedBackend | DockerBackend:
    from gateway.config import display_host
    from gateway.runtime import DockerBackend, EmbeddedBackend

    if args.backend == "docker":
        try:
            from gateway import docker_backend
        except ImportError:
            raise UsageError("--backend docker is not available in this installation") from None
        spec = docker_backend.container_spec(
            args.path, model_name=None if args.model_config_file else name,
            model_config_file=args.model_config_file, host=display_host(args.host),
            grpc_port=args.grpc_port,
        )
        return DockerBackend(spec)
    from gateway.modelserver import ModelServerOptions

    options = ModelServerOptions(
        model_name=None if config_file else name,
        model_base_path=None if config_file else str(Path(args.path).resolve()),
        model_config_file=config_file, host=args.host, port=args.grpc_port,
    )
    return EmbeddedBackend(options)


async def _serve_gateway(args: argparse.Namespace, config: GatewayConfig, target: str,
                         signals: StopSignals) -> None:
    from gateway.runtime import start_gateway

    server = await start_gateway(dataclasses.replace(config, backends=(target,)))
    try:
        example = await signals.guard(_example_body(server, config.default_model))
        _announce(server.url, target, config, example)
        if args.browse:
            webbrowser.open(f"{server.url}/docs")
        await signals.wait()
    finally:
        await server.stop()


def _announce(url: str, target: str, config: GatewayConfig, example: str | None) -> None:
    from gateway.runtime import describe_urls

    print(f"tfgw serve: gRPC {target}", flush=True)
    print(describe_urls(url, config.known_models()), flush=True)
    if config.default_model and example:
        endpoint = f"{url}/v1/models/{config.default_model}:predict"
        print(f"  example  curl -s -X POST {endpoint} -H 'Content-Type: application/json' "
              f"-d {shlex.quote(example)}", flush=True)


async def _example_body(server: GatewayServer, name: str | None) -> str | None:
    """A request body for ``name``'s default signature (the docs page's example)."""
    from gateway.codec.samples import example_request
    from gateway.http.keys import SERVICE_KEY
    from gateway.signatures import DEFAULT_SIGNATURE

    entries = await server.app[SERVICE_KEY].list_models()
    entry = next((e for e in entries if e.name == name), None)
    signature = entry.signatures.get(DEFAULT_SIGNATURE) if entry else None
    if signature is None or not signature.inputs:
        return None
    return json.dumps(example_request(signature), separators=(",", ":"))
