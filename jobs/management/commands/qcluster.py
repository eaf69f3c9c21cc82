"""python manage.py qcluster: django-q2's cluster, with a stop that hands work on.

django-q2 stops a cluster by letting each worker finish its task; for the
dispatcher that means waiting for every request in flight, up to
FLEX_REQUEST_TIMEOUT. This cluster first tells its processes that it is
stopping (SIGUSR1, whose handler every process forked from here inherits:
jobs.engine.dispatch.request_stop), so a running dispatcher hands its requests
on to another cluster and exits at once; then django-q2 stops as usual. While
it runs, its main process starts a dispatcher the moment work is due and none
is running (a retry after the last one went idle, a dead one's slot lapsed),
instead of at the minute Schedule. The options are django-q2's own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import psutil
from django.conf import settings
from django.db import connection
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from jobs.engine import dispatch

logger = logging.getLogger(__name__)


class HandingOnCluster(Cluster):
    def sig_handler(self, signum, frame):
        tell_processes_stopping()
        super().sig_handler(signum, frame)


def tell_processes_stopping() -> None:
    """SIGUSR1 to every process this cluster started (sentinel, pusher,
    monitor, workers): each only sets its stop flag."""
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # gone already
            process.send_signal(signal.SIGUSR1)


class Command(qcluster.Command):
    help = qcluster.Command.help + " On SIGTERM or Ctrl-C its dispatchers hand their work on."

    def handle(self, *args, **options):
        # As django-q2's own command does, with this cluster in its place.
        settings.SECRET_KEY  # noqa: B018 (it must be set: tasks are signed with it)
        # A cluster renders no page, so DEBUG (on for a laptop) would only make
        # Django log every query it runs: on SQLite that quotes each parameter
        # through the database again (2.5 % of a busy dispatcher's samples in
        # py-spy, besides the log itself).
        settings.DEBUG = False
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        # Installed before the cluster forks, so every one of its processes has it.
        signal.signal(signal.SIGUSR1, dispatch.request_stop)
        cluster = HandingOnCluster()
        cluster.start()
        if options.get("run_once", False):
            cluster.stop()
            return
        watch(cluster)


# How often the main process looks for due work that no dispatcher is running for.
WATCH_SECONDS = 1.0
WAKE_QUIET_SECONDS = 5.0


def watch(cluster: Cluster) -> None:
    """Until the cluster has stopped: every WATCH_SECONDS, wake a dispatcher
    when work is due and none is running (dispatch.wake_when_due). The
    cluster's processes were forked before this opens a database connection,
    so none of them shares it."""
    quiet_until = 0.0
    while cluster.sentinel.is_alive():
        # After a wake-up, give its dispatcher time to start and take its slot.
        if time.monotonic() >= quiet_until:
            try:
                if dispatch.wake_when_due():
                    logger.info("Work is due and no dispatcher is running: woke one")
                    quiet_until = time.monotonic() + WAKE_QUIET_SECONDS
            except Exception:
                logger.exception("Looking for due work failed; trying again")
                connection.close()  # a fresh one next time, should this one be broken
        time.sleep(WATCH_SECONDS)
