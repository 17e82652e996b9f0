"""The flat, replayed graph: nested models inlined, the same values, layers found by path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cam_rt.runtime.errors import ExportError
from tests.conftest import images

pytest.importorskip("tensorflow")


def _nested(keras: Any, size: tuple[int, int]) -> Any:
    """Input(size) -> Sequential(conv stack) -> Functional(classifier: GAP -> Dense)."""
    keras.utils.set_random_seed(4)
    base = keras.Sequential(
        [
            keras.Input((*size, 3)),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="top"),
        ],
        name="base",
    )
    head_in = keras.Input((None, None, 8))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(head_in)
    head = keras.Model(head_in, keras.layers.Dense(3, name="fc")(x), name="classifier")
    inp = keras.Input((*size, 3))
    return keras.Model(inp, keras.layers.Activation("softmax")(head(base(inp))), name="outer")


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_replay_inlines_nested_models_and_keeps_values(flavour: str) -> None:
    from cam_rt.export._deps import import_keras, import_tf_keras
    from cam_rt.export.keras_graph import replay

    module = import_keras() if flavour == "keras" else import_tf_keras()
    model = _nested(module, (48, 64))
    graph = replay(model, module, (None, None))
    paths = [op.path for op in graph.ops]
    assert paths[:4] == ["base/conv", "base/top", "classifier/pool", "classifier/fc"]
    assert len(paths) == 5 and graph.ops[4].kind == "Activation"
    top = graph.find("top", "feature layer").outputs[0]
    flat = module.Model(graph.input, [top, graph.output])
    x = images(2, 48, 64, seed=1)
    features, out = (np.asarray(t) for t in flat(x))
    np.testing.assert_array_equal(out, np.asarray(model(x)))
    # The replayed graph runs at a size the original refuses (its input is 48x64).
    features, out = (np.asarray(t) for t in flat(images(1, 37, 91)))
    assert features.shape == (1, 19, 46, 8) and out.shape == (1, 3)


def test_find_by_path_and_ambiguous_names() -> None:
    from cam_rt.export._deps import import_keras
    from cam_rt.export.keras_graph import replay

    keras = import_keras()
    keras.utils.set_random_seed(0)

    def block(name: str) -> Any:
        inp = keras.Input((None, None, 4))
        return keras.Model(inp, keras.layers.Conv2D(4, 1, name="conv")(inp), name=name)

    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 1, name="stem")(inp)
    x = block("b2")(block("b1")(x))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    graph = replay(model, keras, (None, None))
    assert graph.find("b2/conv", "feature layer").path == "b2/conv"
    assert graph.find("stem", "feature layer").path == "stem"
    with pytest.raises(ExportError, match=r"'conv' names 2 layers \(b1/conv, b2/conv\)"):
        graph.find("conv", "feature layer")
    with pytest.raises(ExportError, match=r"'stme' is not a layer of the model \(closest: stem"):
        graph.find("stme", "feature layer")


def test_multi_output_model_is_refused() -> None:
    from cam_rt.export._deps import import_keras
    from cam_rt.export.keras_graph import replay

    keras = import_keras()
    inp = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    model = keras.Model(inp, [keras.layers.Dense(2)(x), keras.layers.Dense(3)(x)])
    with pytest.raises(ExportError, match="has 2 outputs"):
        replay(model, keras, (None, None))
