"""The Open Inference Protocol (KServe v2) dialect, transport-free.

``tensors`` (v2 datatypes ↔ TF DataTypes and numpy, shapes, binary framing, JSON data),
``rest`` (REST bodies with the binary tensor data extension, metadata documents) and
``proto`` (the gRPC messages of ``inference.GRPCInferenceService``, generated under the
project's own package ``tfgw.inference``). Both edges build the same ``InferRequest``.
"""
