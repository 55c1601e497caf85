"""What "the same model" means: the settings every parity check of an exported model shares.

The exporter (edgecnn.training.export), the three-way checker (edgecnn.reference.check),
the INT8 step check (edgecnn.reference.quant_check), edgecnn-export's defaults and the
tests all read them here.
"""

TOLERANCE = 1e-5  # max |difference| of class probabilities: Keras vs onnxruntime vs the C reference
BATCH_SIZES = (1, 8)  # the batch sizes parity is checked at (a dynamic batch axis must work for both)
OPSET = 17  # the ONNX opset the exporter writes by default (onnxruntime >= 1.14 runs it)
MIN_OPSET = 13  # the first opset with every op these models need in its current form (Softmax on any axis)
