"""Model files on disk: a TF Serving model base path and the SavedModels in it.

``layout`` (version directories, ``models.config``: the only place either is read or
written), ``savedmodel`` (signatures read without TensorFlow, ``tfgw inspect``),
``export`` (Keras/tf.Module → SavedModel, TensorFlow), ``publish`` (atomic versions,
labels, pruning, ``tfgw versions``) and ``warmup`` (TF Serving warmup records).
"""
