"""What one judged screenshot costs: image tokens after preparation for Claude's vision.

A synthetic Grafana-like screenshot (dark background, panel frames, lines, text) at the sizes
the harness takes: a 1600x1000 dashboard (the default viewport), the same at device scale 2,
a 1920x1080 one, and a single 800x400 panel. Goal: at most 1,600 tokens per screenshot.
"""

from __future__ import annotations

import io
import math
import random
import time

from PIL import Image, ImageDraw

from bench.common import table
from mcp_server.judge.images import prepare_image

GOAL_TOKENS = 1600
_REPEAT = 3


def screenshot(width: int, height: int, *, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (17, 18, 23))
    draw = ImageDraw.Draw(image)
    columns, rows = 3, 3
    pad = max(4, width // 200)
    panel_w, panel_h = width // columns, (height - height // 12) // rows
    draw.rectangle((0, 0, width, height // 12), fill=(24, 27, 31))
    draw.text((pad * 2, pad * 2), "Inferwatch / GPUs    Last 1 hour", fill=(204, 204, 220))
    for row in range(rows):
        for column in range(columns):
            left = column * panel_w + pad
            top = height // 12 + row * panel_h + pad
            box = (left, top, left + panel_w - 2 * pad, top + panel_h - 2 * pad)
            draw.rectangle(box, fill=(24, 27, 31), outline=(44, 50, 53))
            draw.text(
                (left + pad, top + pad),
                f"GPU {row * columns + column} utilization",
                fill=(204, 204, 220),
            )
            for series in range(4):
                colour = ((115, 191, 105), (242, 204, 12), (87, 148, 242), (255, 120, 10))[series]
                points = []
                for step in range(60):
                    x = box[0] + (box[2] - box[0]) * step / 59
                    level = 0.5 + 0.3 * math.sin(step / 7 + series) + rng.uniform(-0.05, 0.05)
                    y = box[3] - (box[3] - box[1] - 20) * level
                    points.append((x, y))
                draw.line(points, fill=colour, width=max(1, width // 800))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def run() -> str:
    rows = []
    worst = 0
    for label, (width, height) in (
        ("dashboard 1600x1000 (default viewport)", (1600, 1000)),
        ("dashboard 3200x2000 (device scale 2)", (3200, 2000)),
        ("dashboard 1920x1080", (1920, 1080)),
        ("one panel 800x400", (800, 400)),
    ):
        original = screenshot(width, height)
        timings = []
        for _ in range(_REPEAT):
            started = time.perf_counter()
            prepared = prepare_image(label, original)
            timings.append(time.perf_counter() - started)
        worst = max(worst, prepared.tokens)
        rows.append(
            (
                label,
                f"{prepared.width}x{prepared.height}",
                prepared.media_type.removeprefix("image/"),
                f"{len(prepared.data) / 1024:.0f}",
                f"{prepared.tokens:,}",
                f"{min(timings) * 1000:.0f}",
            )
        )
    return "\n".join(
        [
            "### Judge: image tokens per judged screenshot (prepared for Claude's vision)",
            "",
            table(("screenshot", "sent as", "format", "KiB", "image tokens", "prep ms"), rows),
            "",
            f"Goal: at most {GOAL_TOKENS:,} image tokens per judged screenshot -> {worst:,}"
            " (tokens = width x height / 750).",
        ]
    )


if __name__ == "__main__":
    print(run())
