"""How many bytes ``tools/list`` costs every client: total, and per tool with and without its
output schema (the input part is what a model reads on every turn).

Run: ``.venv/bin/python -m tests.mcp_server.tools_list_size``
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp import Client

from mcp_server.server import build_server
from tests.mcp_server.support import make_settings


def wire_size(value: Any) -> int:
    """Bytes of compact JSON, as a client receives it."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def measure() -> dict[str, Any]:
    async with Client(build_server(make_settings())) as client:
        listing = await client.list_tools()
    tools = {}
    for tool in listing.tools:
        wire = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        without_output = {key: value for key, value in wire.items() if key != "outputSchema"}
        tools[tool.name] = {"bytes": wire_size(wire), "without_output": wire_size(without_output)}
    total = wire_size(listing.model_dump(mode="json", by_alias=True, exclude_none=True))
    return {"total": total, "tools": tools}


def report(sizes: dict[str, Any]) -> str:
    lines = [f"{'tool':<22}{'bytes':>8}{'no outputSchema':>18}"]
    for name, size in sizes["tools"].items():
        lines.append(f"{name:<22}{size['bytes']:>8}{size['without_output']:>18}")
    lines.append(f"{'tools/list result':<22}{sizes['total']:>8}")
    return "\n".join(lines)


def main() -> None:
    print(report(anyio.run(measure)))


if __name__ == "__main__":
    main()
