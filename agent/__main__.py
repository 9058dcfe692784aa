"""``inferwatch-agent``: poll the serving stack and serve it to Prometheus."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent import __version__
from agent.app import Agent
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


@contextlib.contextmanager
def _demo_environment() -> Iterator[None]:
    """Start the simulator and point every source at it through the environment."""
    from agent.simulator import SimulatorThread

    with SimulatorThread() as simulator:
        overrides = {
            "LITELLM_URL": simulator.litellm_url,
            "LITELLM_API_KEY": simulator.litellm_master_key,
            "VLLM_URLS": ",".join(simulator.vllm_urls),
        }
        saved = {name: os.environ.get(name) for name in overrides}
        os.environ.update(overrides)
        logging.getLogger("agent").info(
            "demo: simulated LiteLLM at %s, vLLM at %s",
            simulator.litellm_url,
            ", ".join(simulator.vllm_urls),
        )
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


async def _serve(agent: Agent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await agent.serve(stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: one line per upstream call is noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with _demo_environment() if args.demo else contextlib.nullcontext():
        try:
            settings = Settings(env_file=args.config)
        except ValueError as exc:  # pydantic's ValidationError names every bad setting
            print(f"inferwatch-agent: invalid settings:\n{exc}", file=sys.stderr)
            return 2
        if args.listen:
            settings = Settings(env_file=args.config, agent={"listen": args.listen})
        agent = Agent(settings)
        if args.once:
            asyncio.run(agent.run_once())
            sys.stdout.buffer.write(agent.exposition.page.text)
            sys.stdout.flush()
            return 0
        asyncio.run(_serve(agent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
