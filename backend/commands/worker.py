"""``labelcast worker``: process refit and embedding jobs from the Redis queue (needs REDIS_URL).

Run one per GPU. The encoder is loaded once and stays warm across jobs (RQ SimpleWorker).
The worker lowers its own CPU priority (``backend.jobs.TRAINING_NICE_INCREMENT``): where it
shares cores with the web processes and Redis, their requests go first.
"""

from __future__ import annotations

import argparse
import os

from backend.exceptions import CommandError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="process training jobs from the Redis queue (REDIS_URL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.jobs import TRAINING_NICE_INCREMENT, run_worker
    from backend.settings import Settings, configure_logging
    from backend.store import open_store

    settings = Settings.from_env()
    if not settings.redis_url:
        raise CommandError("labelcast worker needs REDIS_URL (without it, `labelcast serve` trains on its own)")
    configure_logging(settings.log_level)
    os.nice(TRAINING_NICE_INCREMENT)
    run_worker(settings, open_store(settings), burst=args.burst)
    return 0
