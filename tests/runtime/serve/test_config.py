"""ServeConfig's checks and the parsing of a request's query options."""

from __future__ import annotations

import pytest

from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.explain import ClassSelection
from cam_rt.runtime.serve.config import RequestOptions, ServeConfig


def test_defaults_and_body_bytes() -> None:
    config = ServeConfig()
    assert (config.host, config.port, config.max_body_mb) == ("127.0.0.1", 8000, 32.0)
    assert config.max_body_bytes == 32 * 1024 * 1024
    assert ServeConfig(max_body_mb=0.5).max_body_bytes == 524288


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"port": 70000}, "--port 70000 must be 0..65535"),
        ({"max_batch": 0}, "--max-batch 0 must be an integer >= 1"),
        ({"max_queue": 2.5}, "--max-queue 2.5 must be an integer >= 1"),
        ({"max_wait_ms": -1}, "--max-wait-ms -1 must be a number >= 0"),
        ({"timeout_s": 0}, "--timeout-s must be above 0"),
        ({"max_body_mb": 0}, "--max-body-mb must be above 0"),
        ({"max_pixels": 0}, "--max-pixels 0 must be an integer >= 1"),
        ({"name": "a/b"}, "--name 'a/b' may not hold"),
        ({"host": ""}, "--host is empty"),
        ({"bg_threshold": 2.0}, "--bg-threshold 2.0 is outside"),
    ],
)
def test_bad_settings_are_one_line_errors(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServeConfig(**fields)  # type: ignore[arg-type]


def test_query_options() -> None:
    parsed = RequestOptions.parse(
        {"classes": "cat,3", "tta": "off", "outputs": "overlay, maps,overlay", "maps": "float16"},
        tta=True,
        threshold=0.3,
    )
    assert parsed == RequestOptions(
        tta=False,
        classes=ClassSelection("fixed", labels=("cat", 3), threshold=0.3),
        outputs=("overlay", "maps"),
        maps="float16",
    )
    assert RequestOptions.parse({}, tta=True) == RequestOptions(tta=True)
    assert RequestOptions.parse({"tta": "ON", "classes": "top-2"}, tta=False).tta is True
    assert RequestOptions.parse({"classes": "top-2"}, tta=False).classes == ClassSelection(
        "top-k", k=2
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"class": "cat"}, "query option 'class' is unknown: use classes, tta, outputs, maps"),
        ({"tta": "maybe"}, "tta=maybe is not on or off"),
        ({"outputs": "overlay,masks"}, "outputs=masks is unknown"),
        ({"maps": "npy"}, "maps=npy is unknown: use npz or float16"),
        ({"classes": "top-0"}, "top-k needs k >= 1"),
    ],
)
def test_bad_query_options(query: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RequestOptions.parse(query, tta=False)
