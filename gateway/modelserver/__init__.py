"""The embedded TF-Serving-compatible gRPC model server (``tfgw modelserver``).

``options`` (settings → ModelServerConfig), ``server`` (the grpc.aio server, health,
reflection, polling), ``servicers`` (the official PredictionService/ModelService
servicers), ``manager`` (version lifecycle), ``versions`` (version policies), ``loader``
(TensorFlow loading), ``inference`` (predict/classify/regress on a loaded version) and
``tensors`` (TensorProto ↔ numpy with TensorFlow). TensorFlow is imported when the server
starts, not when this package is imported.
"""

from __future__ import annotations

from gateway.modelserver.options import ModelServerOptions
from gateway.modelserver.server import ModelServer

__all__ = ["ModelServer", "ModelServerOptions"]
