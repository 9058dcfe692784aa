"""inferwatch host agent: polls the serving stack and serves it to Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("inferwatch")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
