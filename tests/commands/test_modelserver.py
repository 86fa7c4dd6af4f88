"""``tfgw modelserver`` as a process: flags, environment, URL, bad arguments, SIGTERM drain."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.paths import REPO_ROOT

from gateway.cli import build_parser
from gateway.commands.modelserver import options_from_args
from gateway.errors import UsageError


def parse(*argv: str) -> object:
    return build_parser().parse_args(["modelserver", *argv])


def test_underscore_and_dash_spellings_are_the_same_flags() -> None:
    dashed = parse(
        "--model-name",
        "m",
        "--model-base-path",
        "/b",
        "--port",
        "9000",
        "--file-system-poll-wait-seconds",
        "3",
        "--max-message-bytes",
        "1024",
    )
    underscored = parse(
        "--model_name",
        "m",
        "--model_base_path",
        "/b",
        "--port",
        "9000",
        "--file_system_poll_wait_seconds",
        "3",
        "--max_message_bytes",
        "1024",
    )
    assert vars(dashed) == vars(underscored)
    options = options_from_args(dashed, environ={})
    assert (options.model_name, options.model_base_path, options.port) == ("m", "/b", 9000)
    assert options.file_system_poll_wait_seconds == 3.0
    assert options.max_message_bytes == 1024


def test_defaults_match_tf_serving() -> None:
    options = options_from_args(parse("--model_base_path", "/b"), environ={})
    assert options.port == 8500
    assert options.host == "0.0.0.0"
    assert options.file_system_poll_wait_seconds == 1.0
    assert options.model_name == "default"
    assert options.max_message_bytes >= 64 * 1024 * 1024


def test_docker_image_environment() -> None:
    environ = {"MODEL_NAME": "digits", "MODEL_BASE_PATH": "/srv/models"}
    options = options_from_args(parse(), environ=environ)
    assert (options.model_name, options.model_base_path) == ("digits", "/srv/models/digits")
    options = options_from_args(parse(), environ={"MODEL_NAME": "digits"})
    assert options.model_base_path == "/models/digits"
    flagged = options_from_args(parse("--model_base_path", "/x"), environ=environ)
    assert (flagged.model_name, flagged.model_base_path) == ("digits", "/x")


def test_conflicting_sources_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot be combined"):
        options_from_args(parse("--model_config_file", "c", "--model_base_path", "/b"), {})
    with pytest.raises(UsageError, match="required"):
        options_from_args(parse(), environ={})


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "one of --model-base-path or --model-config-file is required"),
        (["--model-config-file", "/nonexistent/models.config"], "model config file not found"),
        (["--model_base_path", "/x", "--port", "70000"], "not a TCP port"),
        (["--model_base_path", "/x", "--max-message-bytes", "0"], "must be positive"),
    ],
    ids=["nothing", "missing-config", "port", "size"],
)
def test_bad_arguments_one_line_nonzero(argv: list[str], fragment: str) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "modelserver", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def test_malformed_models_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "a" base_path: "/x" } bogus: 1 }')
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "modelserver", "--model_config_file", str(config)],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "invalid ModelServerConfig" in result.stderr and "bogus" in result.stderr


def test_serves_prints_url_and_drains_on_sigterm(model_base: Path, tmp_path: Path) -> None:
    import tensorflow as tf
    from support.servers import modelserver_process, write_models_config
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    config = tmp_path / "models.config"
    write_models_config(config, model_base, ["mnist", "slow"])
    args = ["--model_config_file", str(config), "--file_system_poll_wait_seconds", "0.5"]
    with modelserver_process(args, wait_models=["mnist", "slow"]) as (process, port):
        log_path = process.log_path  # type: ignore[attr-defined]
        assert f"grpc://127.0.0.1:{port}" in Path(log_path).read_text()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "mnist"
            request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 784), np.float32)))
            assert stub.Predict(request, timeout=30).model_spec.version.value == 1

            slow = predict_pb2.PredictRequest()
            slow.model_spec.name = "slow"
            slow.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([7.0], np.float32)))
            with ThreadPoolExecutor(1) as pool:
                in_flight = pool.submit(stub.Predict, slow, timeout=60)
                time.sleep(1.0)  # let the call reach the server (the model sleeps 2 s)
                assert not in_flight.done()
                process.send_signal(signal.SIGTERM)
                response = in_flight.result(timeout=60)
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [7.0])
        assert process.wait(timeout=60) == 0
        output = Path(log_path).read_text()
        assert "shutting down" in output
        assert "Traceback" not in output
