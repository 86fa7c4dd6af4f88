"""``tfgw inspect PATH``: signatures, dtypes, shapes and example requests of a SavedModel.

PATH is a SavedModel directory or a model base path (its latest version is shown).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from gateway.errors import UsageError

if TYPE_CHECKING:
    from gateway.repository.savedmodel import SavedModelInfo
    from gateway.signatures import TensorSpec


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="SavedModel dir or model base path")
    parser.add_argument("--graph", metavar="LOGDIR",
                        help="also write a TensorBoard log of the graph to LOGDIR")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _as_json(info: SavedModelInfo) -> bytes:
    import orjson

    from gateway.codec.samples import example_request

    def spec(s: TensorSpec) -> dict[str, Any]:
        return {"name": s.name, "dtype": s.dtype_name,
                "shape": None if s.shape is None else list(s.shape)}

    signatures = {
        name: {
            "method_name": sig.method_name,
            "inputs": {a: spec(s) for a, s in sig.inputs.items()},
            "outputs": {a: spec(s) for a, s in sig.outputs.items()},
            "example_request": example_request(sig),
        }
        for name, sig in info.signatures.items()
        if not name.startswith("__")
    }
    doc = {"path": str(info.path), "tag_sets": info.tag_sets,
           "tensorflow_version": info.tensorflow_version, "signatures": signatures}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def run(args: argparse.Namespace) -> int:
    from gateway.errors import GatewayError
    from gateway.repository.savedmodel import describe, read_savedmodel, resolve_savedmodel_dir

    try:
        info = read_savedmodel(resolve_savedmodel_dir(args.path))
    except GatewayError as exc:
        raise UsageError(exc.message) from None
    if args.json:
        sys.stdout.write(_as_json(info).decode() + "\n")
    else:
        sys.stdout.write(describe(info) + "\n")
    if args.graph:
        from gateway.repository.savedmodel import write_graph_log

        logdir = write_graph_log(info.path, args.graph)
        sys.stderr.write(f"graph written to {logdir} (view: tensorboard --logdir {logdir})\n")
    return 0
