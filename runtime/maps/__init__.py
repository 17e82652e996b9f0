"""Pure array stages: image preparation, CAM weighting, filters, TTA plans and merging, colour,
seeds and boxes. NumPy and OpenCV only; no ONNX Runtime, no I/O.
"""
