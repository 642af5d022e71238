"""Prometheus multiprocess files that do not pile up as gunicorn recycles its workers.

In multiprocess mode every worker process writes ``counter_<pid>.db``, ``histogram_<pid>.db``
(and gauge files). A worker's counters must outlive it, or totals would drop at every
restart; but ``max_requests`` replaces a worker every few thousand requests, and a scrape
reads every file: left alone, the directory grows by thousands of files a day and scrapes
slow down with it. So when gunicorn reports a worker dead (``child_exit``), its counter,
histogram and summary values are added into one ``<kind>_archive.db`` per kind and its files
are removed; live gauges of the dead worker are dropped as prometheus_client does.

A scrape holds a shared lock on the directory while it reads and the compaction an
exclusive one, so a scrape never sees a worker's values twice (archive and own file) or not
at all (between the two). Only stdlib and prometheus_client: the gunicorn master imports it
without Django. prometheus_client documents no API for merging a dead process's files, so this
reads and writes them with ``MmapedDict``, the class its multiprocess mode writes them with
(the tests pin the round trip against ``MultiProcessCollector``, so an upgrade that changes the
format fails there, not in production).
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import mark_process_dead

LOCK_FILE = ".compaction.lock"
SUMMED_KINDS = ("counter", "histogram", "summary")


@contextmanager
def directory_lock(directory: str | os.PathLike[str], *, exclusive: bool) -> Iterator[None]:
    with open(Path(directory) / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def archive_dead_process(pid: int, directory: str | os.PathLike[str]) -> None:
    """Fold a dead process's counters into the archive files and remove its files."""
    mark_process_dead(pid, str(directory))
    with directory_lock(directory, exclusive=True):
        for kind in SUMMED_KINDS:
            dead = Path(directory) / f"{kind}_{pid}.db"
            if not dead.exists():
                continue
            archive = MmapedDict(str(Path(directory) / f"{kind}_archive.db"))
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(dead)):
                    current, _ = archive.read_value(key)
                    archive.write_value(key, current + value, timestamp)
            finally:
                archive.close()
            dead.unlink()
