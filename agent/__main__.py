"""``inferwatch-agent``: poll the serving stack and serve it to Prometheus."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.app import Agent
from agent.demo import demo_stack
from agent.memory import collect_garbage_less_often, release_big_blocks_promptly
from agent.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch-agent",
        description="Poll LiteLLM, vLLM and the GPU host, and serve it all as Prometheus metrics.",
    )
    parser.add_argument(
        "--once", action="store_true", help="poll every source once, print the exposition, exit 0"
    )
    parser.add_argument(
        "--demo", action="store_true", help="start the built-in simulated stack and watch it"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="env file with settings (like .env)"
    )
    parser.add_argument("--listen", metavar="HOST:PORT", help="overrides INFERWATCH_LISTEN")
    parser.add_argument("--log-level", default=os.environ.get("INFERWATCH_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"inferwatch {__version__}")
    return parser


async def _serve(agent: Agent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await agent.serve(stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    release_big_blocks_promptly()
    collect_garbage_less_often()
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: one line per upstream call is noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        demo = stack.enter_context(demo_stack()) if args.demo else None
        try:
            settings = Settings(
                env_file=args.config, agent={"listen": args.listen} if args.listen else {}
            )
        except ValueError as exc:  # pydantic's ValidationError names every bad setting
            print(f"inferwatch-agent: invalid settings:\n{exc}", file=sys.stderr)
            return 2
        agent = (
            Agent(settings, nvml_binding=demo.nvml, container_for_pid=demo.container_for_pid)
            if demo is not None
            else Agent(settings)
        )
        if args.once:
            asyncio.run(agent.run_once())
            sys.stdout.buffer.write(agent.exposition.page.text)
            sys.stdout.flush()
            return 0
        asyncio.run(_serve(agent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
