"""Screenshots prepared for Claude's vision: size limits, aspect, format, byte cap."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from mcp_server.judge.images import (
    MAX_ENCODED_BYTES,
    MAX_LONG_EDGE,
    MAX_PIXELS,
    InvalidImage,
    encoded_size,
    fitted_size,
    image_tokens,
    prepare_image,
)
from tests.mcp_server.judge.conftest import png


def noise(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, format=fmt)
    return out.getvalue()


def decoded_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_a_large_screenshot_is_scaled_within_the_limits_keeping_its_aspect() -> None:
    prepared = prepare_image("dashboard", png(3000, 2000))

    assert max(prepared.width, prepared.height) <= MAX_LONG_EDGE
    assert prepared.width * prepared.height <= MAX_PIXELS
    assert prepared.width / prepared.height == pytest.approx(1.5, abs=0.01)
    assert decoded_size(prepared.data) == (prepared.width, prepared.height)
    assert (prepared.original_width, prepared.original_height) == (3000, 2000)
    assert prepared.media_type == "image/png"  # flat colour stays lossless


def test_a_tall_panel_is_limited_by_its_long_edge() -> None:
    assert fitted_size(400, 4000) == (156, 1568)
    prepared = prepare_image("tall panel", png(400, 4000))
    assert (prepared.width, prepared.height) == (156, 1568)


def test_a_small_screenshot_is_left_alone() -> None:
    original = png(800, 450)
    prepared = prepare_image("panel", original)
    assert (prepared.width, prepared.height) == (800, 450)
    assert prepared.tokens == image_tokens(800, 450) == 480


def test_a_dashboard_screenshot_costs_at_most_1600_tokens() -> None:
    assert prepare_image("dashboard", png(1600, 1000)).tokens <= 1600


def test_a_huge_noisy_image_becomes_a_jpeg_under_5_mb() -> None:
    prepared = prepare_image("heatmap", noise(2400, 1600))

    assert prepared.media_type == "image/jpeg"
    assert encoded_size(len(prepared.data)) <= MAX_ENCODED_BYTES
    assert prepared.width * prepared.height <= MAX_PIXELS
    assert decoded_size(prepared.data) == (prepared.width, prepared.height)


def test_quality_then_size_drop_until_it_fits_a_tight_cap() -> None:
    prepared = prepare_image("heatmap", noise(1200, 800), max_encoded_bytes=150_000)

    assert encoded_size(len(prepared.data)) <= 150_000
    assert prepared.media_type == "image/jpeg"
    assert prepared.width < 1200  # JPEG quality alone was not enough for noise


def test_transparency_and_palettes_are_handled() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (2000, 1000), (10, 20, 30, 128)).save(out, format="PNG")
    rgba = prepare_image("rgba", out.getvalue())
    assert rgba.media_type == "image/png"

    out = io.BytesIO()
    Image.new("P", (300, 200), 3).save(out, format="GIF")
    assert prepare_image("gif", out.getvalue()).media_type == "image/png"


def test_bytes_that_are_no_image_are_refused_with_the_label() -> None:
    with pytest.raises(InvalidImage, match="'GPU memory' cannot be read"):
        prepare_image("GPU memory", b"<html>not a screenshot</html>")
