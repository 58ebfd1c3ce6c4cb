"""Lesson 3: graceful shutdown – a batch job finishes its wrap-up before the process exits.

    PROPYLON_LOG=info python examples/03_graceful_shutdown.py
    kill -TERM <pid>    # "Finishing Job #1 before exiting..." then a clean exit
    kill -INT <pid>     # (or Ctrl+C) exits at once, the job is abandoned

BATCH_JOB_SECONDS and BATCH_WRAPUP_SECONDS shorten the simulated work (defaults 20 and 10).
"""

import asyncio
import logging
import os

from propylon.server import Server, ShutdownWatch
from propylon.services import BackgroundService, background_service

log = logging.getLogger("batch")

JOB_SECONDS = float(os.environ.get("BATCH_JOB_SECONDS", "20"))
WRAPUP_SECONDS = float(os.environ.get("BATCH_WRAPUP_SECONDS", "10"))


class BatchJobService(BackgroundService):
    """Runs long jobs one after another; on shutdown, finishes the current one."""

    async def start(self, shutdown: ShutdownWatch) -> None:
        log.info("BatchJob Service started. Waiting for jobs")
        job_id = 0
        while not shutdown:
            job_id += 1
            log.info("Starting Job #%d (simulated %gs duration)...", job_id, JOB_SECONDS)
            try:
                # Run the job, but hear the shutdown signal while it runs.
                await asyncio.wait_for(shutdown.wait(), timeout=JOB_SECONDS)
            except asyncio.TimeoutError:
                log.info("Job #%d completed successfully.", job_id)
            else:
                log.warning("Shutdown signal received while Job #%d is running!", job_id)
                log.warning("Finishing Job #%d before exiting...", job_id)
                # Wrapping up critical work (flushing buffers, committing writes).
                await asyncio.sleep(WRAPUP_SECONDS)
                log.info("Job #%d completed gracefully during shutdown.", job_id)
                break
            await asyncio.sleep(1)
        log.info("BatchJob Service has stopped cleanly.")


def main() -> None:
    server = Server.from_args()
    # Wait at most 10 s for the job (then 5 s more before it is cancelled).
    server.configuration.grace_period_seconds = 10
    server.bootstrap()
    server.add_service(background_service("BatchJobService", BatchJobService()))
    log.info("Server running. Send SIGTERM to trigger graceful shutdown (pid %d).", os.getpid())
    server.run_forever()


if __name__ == "__main__":
    main()
