"""`medfed serve`: check the options, load the model, run the app on uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from medfed.serve.app import DEFAULT_MAX_BODY, create_app
from medfed.serve.bundle import load_bundle
from medfed.shared.errors import ConfigError


@dataclass(frozen=True)
class ServeOptions:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key_file: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    threshold: float = 0.5
    max_body_bytes: int = DEFAULT_MAX_BODY
    torch_threads: int = 1


def read_api_key(path: Path) -> str:
    """The key on the file's first line.

    Raises:
        ConfigError: the file is missing, unreadable or holds a key under 16 characters.
    """
    try:
        key = path.read_text(encoding="utf-8").strip().splitlines()[0].strip()
    except (OSError, UnicodeDecodeError, IndexError):
        raise ConfigError(f"--api-key-file {path}: missing, unreadable or empty") from None
    if len(key) < 16:
        raise ConfigError(f"--api-key-file {path}: the key has {len(key)} characters; use ≥ 16")
    return key


def check_options(options: ServeOptions) -> str | None:
    """The API key (or None). Raises ConfigError naming the bad option."""
    if not 0 < options.threshold < 1:
        raise ConfigError(f"--threshold {options.threshold}: use a probability in (0, 1)")
    if (options.ssl_certfile is None) != (options.ssl_keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together: pass both or neither")
    files = (("--ssl-certfile", options.ssl_certfile), ("--ssl-keyfile", options.ssl_keyfile))
    for option, path in files:
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} {path}: file not found")
    if options.torch_threads < 1:
        raise ConfigError(f"--torch-threads {options.torch_threads}: use at least 1")
    if options.max_body_bytes < 1024:
        raise ConfigError(f"--max-body-bytes {options.max_body_bytes}: use at least 1024")
    return read_api_key(options.api_key_file) if options.api_key_file else None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(options: ServeOptions) -> None:
    """Load the model and serve it until interrupted."""
    import torch
    import uvicorn

    api_key = check_options(options)
    # Requests run one at a time on the event loop; for these small models extra intra-op
    # threads only contend for the cores (docs/benchmarks.md, serving).
    torch.set_num_threads(options.torch_threads)
    bundle = load_bundle(options.directory)
    app = create_app(bundle, options.threshold, api_key, options.max_body_bytes)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("medfed.serve", "medfed.serve.access"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False
    missing = [
        what
        for what, absent in (("an API key", api_key is None), ("TLS", options.ssl_certfile is None))
        if absent
    ]
    if not _is_loopback(options.host) and missing:
        print(
            f"warning: serving on {options.host} without {' or '.join(missing)}: anyone who "
            "can reach this port can query the model",
            file=sys.stderr,
        )
    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        access_log=False,  # the guard logs method, path, status and latency only
        ssl_certfile=str(options.ssl_certfile) if options.ssl_certfile else None,
        ssl_keyfile=str(options.ssl_keyfile) if options.ssl_keyfile else None,
        log_level="info",
    )
