"""`python -m agent.simulator`: run the simulated stack until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from agent.simulator.config import DEFAULT_VLLM_INSTANCES, SimulatorConfig, VLLMInstanceSpec
from agent.simulator.simulator import Simulator


def instances(count: int) -> tuple[VLLMInstanceSpec, ...]:
    """The default instances first, then more of the default kind with their own model names."""
    extra = (
        VLLMInstanceSpec(model=f"simulated/model-{index}")
        for index in range(len(DEFAULT_VLLM_INSTANCES), count)
    )
    return (*DEFAULT_VLLM_INSTANCES[:count], *extra)


def parse_args(argv: list[str] | None = None) -> SimulatorConfig:
    parser = argparse.ArgumentParser(prog="python -m agent.simulator", description=__doc__)
    parser.add_argument(
        "--vllm",
        type=int,
        default=len(DEFAULT_VLLM_INSTANCES),
        metavar="N",
        help="number of vLLM servers (default: %(default)s)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds added to every response (default: 0)",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=None,
        metavar="P",
        help="LiteLLM on P, vLLM servers on P+1..P+N (default: ephemeral ports)",
    )
    args = parser.parse_args(argv)
    return SimulatorConfig(
        vllm=instances(args.vllm), latency_seconds=args.latency, port_base=args.port_base
    )


async def serve(config: SimulatorConfig) -> None:
    async with Simulator(config) as simulator:
        print(f"litellm  {simulator.litellm_url}  (master key {simulator.litellm_master_key})")
        for spec, url in zip(config.vllm, simulator.vllm_urls, strict=True):
            print(f"vllm     {url}  ({spec.model}, vLLM {spec.version})")
        print("Ctrl-C stops.", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
