"""``labelcast serve``: run the ML backend under gunicorn (gthread workers that read each
request before a thread takes it, :mod:`backend.http_worker`).

Without ``REDIS_URL`` it is a complete backend on its own: a SQLite store in ``MODEL_DIR`` and
an in-process worker whose lanes (a project each) feed one training child process, so it runs
exactly one gunicorn worker process. With ``REDIS_URL`` it only serves requests (``--workers`` of them) and
``labelcast worker`` processes do the work.

Before it listens, the embedded mode checks that the encoder (``ENCODER``) resolves: its
weights are on this machine (or downloadable) and their config and tensor names are readable.
If not, it stops with the fix instead of answering /health while no refit can run;
``--lazy-encoder`` skips the check and loads the encoder at the first refit. With
``REDIS_URL`` the encoder is the workers' concern and is not checked here.
"""

from __future__ import annotations

import argparse

from backend.exceptions import CommandError

DEFAULT_THREADS = 8
"""Request threads per gunicorn worker: /predict and /webhook never wait on a refit."""

DEFAULT_TIMEOUT_S = 120
"""Gunicorn's worker timeout (seconds); requests themselves finish in milliseconds."""


def register(subparsers) -> None:
    from backend.settings import DEFAULT_PORT

    parser = subparsers.add_parser(
        "serve",
        help="run the Label Studio ML backend (HTTP)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="0.0.0.0", help="interface to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gunicorn worker processes; more than 1 needs REDIS_URL (default 1)",
    )
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help=f"threads per worker (default {DEFAULT_THREADS})"
    )
    parser.add_argument(
        "--lazy-encoder",
        action="store_true",
        help="start even if the encoder does not resolve; it is loaded at the first refit",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from gunicorn.app.base import BaseApplication

    from backend import gunicorn_config
    from backend.settings import Settings

    settings = Settings.from_env()
    if args.workers < 1 or args.threads < 1:
        raise CommandError("--workers and --threads must be at least 1")
    if args.workers > 1 and not settings.redis_url:
        raise CommandError("--workers > 1 needs REDIS_URL: the embedded SQLite mode trains in the one web process")
    if not args.lazy_encoder and not settings.redis_url:
        _check_encoder(settings.encoder)
    if not settings.public_url and (url := listen_url(args.host, args.port)):
        import dataclasses

        settings = dataclasses.replace(settings, public_url=url)  # report links (PUBLIC_URL)

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", gunicorn_config.worker_class)
            self.cfg.set("threads", args.threads)
            self.cfg.set("timeout", DEFAULT_TIMEOUT_S)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("accesslog", "-" if settings.log_level == "DEBUG" else None)
            self.cfg.set("post_worker_init", gunicorn_config.post_worker_init)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24: no shared ctl file
                self.cfg.set("control_socket_disable", True)

        def load(self):
            from backend.app import create_app

            return create_app({"LABELCAST_SETTINGS": settings})

    print(
        f"labelcast: serving on http://{args.host}:{args.port} "
        f"({'Redis store and RQ queue' if settings.redis_url else 'embedded SQLite store and trainer'}); "
        + (
            f"report links: {settings.public_url}/report"
            if settings.public_url
            else "no report link in messages (set PUBLIC_URL to the address browsers reach this at)"
        ),
        flush=True,
    )
    _Server().run()
    return 0


def listen_url(host: str, port: int) -> str | None:
    """``http://host:port`` when ``host`` is one concrete address or name (the report link
    then points there); None for a wildcard (``0.0.0.0``, ``::``), which names no address a
    browser could use."""
    import ipaddress

    name = host.strip().strip("[]")
    if name in ("", "*"):
        return None
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return f"http://{name}:{int(port)}"  # a host name
    if address.is_unspecified:
        return None
    return f"http://[{name}]:{int(port)}" if address.version == 6 else f"http://{name}:{int(port)}"


def _check_encoder(spec: str) -> None:
    """Stop with the fix when the encoder spec does not resolve (see the module docstring)."""
    from backend.encoders import check_encoder
    from backend.exceptions import EncoderLoadError

    try:
        found = check_encoder(spec)
    except EncoderLoadError as exc:
        raise CommandError(
            f"the encoder ENCODER={spec!r} does not resolve, so no refit could run: "
            f"{str(exc).rstrip('.')}. Fix ENCODER (`labelcast encoders` lists the presets and "
            "spec forms) or provide the weights as said, then start again; or start with "
            "--lazy-encoder to serve now and load the encoder at the first refit (refits fail "
            "until it resolves)."
        ) from None
    print(f"labelcast: encoder {spec}: {found}", flush=True)
