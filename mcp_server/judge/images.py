"""Screenshots made ready for Claude's vision: small enough to cost little and to be accepted.

Claude downsizes any image whose long edge exceeds 1568 px or whose area exceeds ~1.15 MP, so
sending more pixels only costs upload time; tokens are about width * height / 750. The API
refuses images over 5 MB, which we count after base64 encoding, as they travel.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError

from mcp_server.judge.errors import JudgeError

MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000
MAX_ENCODED_BYTES = 5 * 1024 * 1024
# Screenshots are mostly text and flat colour, where PNG stays sharp; past this size (noisy
# heatmaps, photos) JPEG is used when it is smaller.
PNG_SIZE_CAP = 1024 * 1024
TOKENS_PER_PIXEL = 1 / 750
_JPEG_QUALITIES = (90, 80, 70, 60, 50, 40)
_MAX_SHRINKS = 8

MediaType = Literal["image/png", "image/jpeg"]


class InvalidImage(JudgeError):
    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"screenshot {label!r} cannot be read as an image: {reason}")


@dataclass(frozen=True)
class PreparedImage:
    label: str
    media_type: MediaType
    data: bytes
    width: int
    height: int
    original_width: int
    original_height: int

    @property
    def tokens(self) -> int:
        return image_tokens(self.width, self.height)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def image_tokens(width: int, height: int) -> int:
    """Claude's estimate of what an image of this size costs in input tokens."""
    return math.ceil(width * height * TOKENS_PER_PIXEL)


def fitted_size(width: int, height: int) -> tuple[int, int]:
    """The largest size with the same aspect that meets the long-edge and pixel limits."""
    scale = min(1.0, MAX_LONG_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    if scale >= 1.0:
        return width, height
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def encoded_size(raw_bytes: int) -> int:
    return 4 * math.ceil(raw_bytes / 3)


def prepare_image(
    label: str, data: bytes, *, max_encoded_bytes: int = MAX_ENCODED_BYTES
) -> PreparedImage:
    """``data`` (any format Pillow reads) resized and encoded within Claude's limits."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = opened.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise InvalidImage(label, str(error)) from None
    original = image.size
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    for _ in range(_MAX_SHRINKS):
        size = fitted_size(*image.size)
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        encoded = _smallest_fitting(image, max_encoded_bytes)
        if encoded is not None:
            media_type, payload = encoded
            return PreparedImage(label, media_type, payload, *image.size, *original)
        # Even the lowest JPEG quality is too big: fewer pixels.
        image = image.resize(
            (max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)),
            Image.Resampling.LANCZOS,
        )
    raise InvalidImage(label, f"it does not fit in {max_encoded_bytes} bytes")


def _smallest_fitting(image: Image.Image, max_encoded: int) -> tuple[MediaType, bytes] | None:
    """PNG while it is small; past the cap, JPEG at the best quality that fits (or the PNG, if
    that is smaller still); None when nothing fits at this size."""
    png = _encode(image, "PNG")
    png_fits = encoded_size(len(png)) <= max_encoded
    if png_fits and len(png) <= PNG_SIZE_CAP:
        return "image/png", png
    rgb = _flatten(image)
    for quality in _JPEG_QUALITIES:
        jpeg = _encode(rgb, "JPEG", quality=quality)
        if encoded_size(len(jpeg)) <= max_encoded:
            if png_fits and len(png) <= len(jpeg):
                return "image/png", png
            return "image/jpeg", jpeg
    return None


def _flatten(image: Image.Image) -> Image.Image:
    """JPEG has no alpha; browser screenshots are opaque, so this rarely matters."""
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


def _encode(image: Image.Image, kind: str, **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind, **options)
    return out.getvalue()
