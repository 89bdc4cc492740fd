"""The evaluator's parts (``sal_ext.evaluate`` is the API and the command line).

``loading`` (ground truth, predictions, ambiguous segments), ``thresholds`` (defaults,
``--tiou``, named averages), ``activitynet``, ``wtalc``, ``thumos14`` (one protocol each),
``summary`` (the result dict), ``table`` (printing), ``proposals`` (AR@AN). Nothing here
imports torch, the model, the data loaders or the trainer: numpy, and the kernels through
``sal_ext.numpy_ops``.
"""
