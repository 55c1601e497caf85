"""edgecnn: a small Keras CNN from training to fast ONNX inference on edge devices.

`import edgecnn` never imports TensorFlow; only `edgecnn.training` does.
"""

__version__ = "0.1.0"
