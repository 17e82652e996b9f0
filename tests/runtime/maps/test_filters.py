"""Known answers for the filters, resizing and CAM weighting."""

from __future__ import annotations

import numpy as np
import pytest

from cam_rt.runtime import (
    InputError,
    max_normalize,
    normalize,
    positive_normalize,
    probabilities,
    weight_features,
)
from cam_rt.runtime.maps.tta import resize_maps


def _one(values: list[list[float]]) -> np.ndarray:
    return np.asarray(values, np.float32)[None, :, :, None]  # (1, 2, 2, 1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[-1, 2], [3, 0.5]], [[0, 2 / 3], [1, 1 / 6]]),
        ([[1, 2], [3, 5]], [[0, 0.25], [0.5, 1]]),
        ([[-1, -2], [-3, -5]], [[0, 0], [0, 0]]),
        ([[2, 2], [2, 2]], [[0, 0], [0, 0]]),
    ],
)
def test_positive_normalize_vectors(values: list[list[float]], expected: list[list[float]]) -> None:
    np.testing.assert_allclose(positive_normalize(_one(values))[0, :, :, 0], expected, atol=1e-6)


def test_normalize_is_per_sample_and_channel() -> None:
    x = np.zeros((2, 2, 2, 2), np.float32)
    x[0, :, :, 0] = [[1, 2], [3, 5]]
    x[0, :, :, 1] = [[10, 10], [10, 30]]
    x[1, :, :, 0] = [[-4, 0], [0, 4]]
    out = normalize(x)
    np.testing.assert_allclose(out[0, :, :, 0], [[0, 0.25], [0.5, 1]])
    np.testing.assert_allclose(out[0, :, :, 1], [[0, 0], [0, 1]])
    np.testing.assert_allclose(out[1, :, :, 0], [[0, 0.5], [0.5, 1]])
    np.testing.assert_array_equal(out[1, :, :, 1], 0)  # constant -> 0, no NaN
    # (H, W, C) works too.
    np.testing.assert_allclose(normalize(x[0]), out[0])


def test_max_normalize_occse() -> None:
    x = _one([[0, 1], [2, 4]])
    np.testing.assert_allclose(
        max_normalize(x)[0, :, :, 0], [[0, 1 / 4.00001], [2 / 4.00001, 1 / 1.0000025]], rtol=1e-6
    )
    with pytest.raises(InputError, match="expected"):
        max_normalize(np.zeros(3))


def test_resize_toy_values() -> None:
    up = resize_maps(np.asarray([[0, 1], [2, 3]], np.float32)[:, :, None], (4, 4))[:, :, 0]
    np.testing.assert_allclose(up[0], [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(up[1], [0.5, 0.75, 1.25, 1.5])
    down = resize_maps(np.arange(16, dtype=np.float32).reshape(4, 4, 1), (2, 2))[:, :, 0]
    np.testing.assert_allclose(down, [[2.5, 4.5], [10.5, 12.5]])


def test_resize_many_channels_in_chunks() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 7, 1100)).astype(np.float32)
    out = resize_maps(maps, (11, 13))
    assert out.shape == (11, 13, 1100)
    single = resize_maps(maps[..., 700:701], (11, 13))[..., 0]
    np.testing.assert_allclose(out[..., 700], single, atol=1e-5)


def test_weight_features_known_answer() -> None:
    a = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    w = np.asarray([[1, 0], [0, 1], [1, -1]], np.float32)
    out = weight_features(a, w)
    np.testing.assert_array_equal(out[0, 0, 0], [0 + 2, 1 - 2])
    np.testing.assert_array_equal(out[0, 1, 1], [9 + 11, 10 - 11])
    with pytest.raises(InputError, match="do not fit"):
        weight_features(a, w.T)


def test_probabilities() -> None:
    np.testing.assert_allclose(
        probabilities(np.asarray([0.0, 2.0]), "sigmoid"), [0.5, 0.880797], rtol=1e-5
    )
    p = probabilities(np.asarray([[1.0, 1.0, 1000.0]]), "softmax")
    np.testing.assert_allclose(p, [[0, 0, 1]], atol=1e-7)
    with pytest.raises(InputError):
        probabilities(np.zeros(2), "relu")
