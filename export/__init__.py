"""cam-rt export: Keras classifiers to optimized ONNX files with scores and CAMs.

Importing this package does not import TensorFlow; the functions do, when called
(``pip install 'cam-rt[export]'``).
"""

from __future__ import annotations

from .api import ExportReport, export_model
from .config import DEFAULT_CHECK_SIZES, ExportConfig
from .preprocess import PREPROCESSING
from .resnet38d import RESNET38D_PARAMS_20, build_resnet38d, load_resnet38d_weights
from .verify import Parity

__all__ = [
    "DEFAULT_CHECK_SIZES",
    "PREPROCESSING",
    "RESNET38D_PARAMS_20",
    "ExportConfig",
    "ExportReport",
    "Parity",
    "build_resnet38d",
    "export_model",
    "load_resnet38d_weights",
]
