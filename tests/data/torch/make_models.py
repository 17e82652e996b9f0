"""Make the small ONNX files of tests/data/torch with PyTorch's own exporters (not run in CI).

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.13.0 onnx onnxscript numpy
    /tmp/tv/bin/python tests/data/torch/make_models.py

Each model is a tiny torchvision/timm-style classifier with seeded random weights, exported by
``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``, and the dynamo exporter where
noted). Beside each ``NAME.onnx`` goes ``NAME.npz``: an input ``x`` (N, 3, H, W), PyTorch's
``logits`` and ``features`` (the map the head pools) for it, and the last Linear's ``weight``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    """conv body; head: ``avgpool`` (torchvision) or ``mean`` (timm), Linear or an MLP."""

    def __init__(self, act: type[nn.Module], head: str, pool: str, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            Block(3, 8, 2, act), Block(8, 8, 1, act), Block(8, 16, 2, act), Block(16, 16, 2, act)
        )
        self.pool = pool
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        if head == "mlp":
            self.classifier = nn.Sequential(
                nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.2), nn.Linear(12, classes)
            )
        else:
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, classes))
        self.softmax = head == "mlp"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        z = torch.flatten(self.avgpool(f), 1) if self.pool == "avgpool" else f.mean((2, 3))
        logits = self.classifier(z)
        return logits.softmax(-1) if self.softmax else logits


MODELS = {
    # name: (activation, head, pool, dynamic batch, exporter)
    "resnet_style": (nn.ReLU, "linear", "avgpool", True, "torchscript"),
    "mobilenet_style": (nn.ReLU6, "linear", "avgpool", True, "torchscript"),
    "efficientnet_style": (nn.SiLU, "linear", "avgpool", False, "torchscript"),
    "timm_mean": (nn.Hardswish, "linear", "mean", False, "torchscript"),
    "mlp_softmax": (nn.ReLU, "mlp", "avgpool", True, "torchscript"),
    "resnet_style_dynamo": (nn.ReLU, "linear", "avgpool", True, "dynamo"),
}


def main() -> None:
    for index, (name, (act, head, pool, dynamic, exporter)) in enumerate(MODELS.items()):
        torch.manual_seed(index)
        model = Net(act, head, pool, classes=5)
        for m in model.modules():  # non-trivial BatchNorm statistics, folded on export
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        model.eval()
        x = torch.randn(2 if dynamic else 1, 3, 64, 64)
        out = HERE / f"{name}.onnx"
        kwargs: dict[str, object] = {"input_names": ["input"], "output_names": ["output"]}
        if exporter == "dynamo":
            kwargs["dynamo"] = True
            kwargs["dynamic_shapes"] = {"x": {0: torch.export.Dim("batch")}}
            del kwargs["input_names"]
        else:
            kwargs["dynamo"] = False
            kwargs["opset_version"] = 17
            if dynamic:
                kwargs["dynamic_axes"] = {"input": {0: "batch_size"}, "output": {0: "batch_size"}}
        torch.onnx.export(model, (x,), str(out), **kwargs)  # type: ignore[arg-type]
        with torch.no_grad():
            features = model.features(x)
            logits = model.classifier(
                torch.flatten(model.avgpool(features), 1)
                if pool == "avgpool"
                else features.mean((2, 3))
            )
        np.savez_compressed(
            HERE / f"{name}.npz",
            x=x.numpy(),
            logits=logits.numpy(),
            features=features.numpy(),
            weight=model.classifier[-1].weight.detach().numpy(),
        )
        print(name, out.stat().st_size, "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
