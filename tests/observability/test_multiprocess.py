import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from observability.multiprocess import archive_dead_process, directory_lock
from tests.observability.conftest import parse_metrics

COUNTER = ("requests_total", (("view", "home"),))
BUCKET = ("latency_seconds_bucket", (("le", "0.5"), ("view", "home")))


def write_worker(directory: Path, pid: int, requests: float, fast: float) -> None:
    counter = MmapedDict(str(directory / f"counter_{pid}.db"))
    counter.write_value(mmap_key("requests", "requests_total", ["view"], ["home"], "Requests."), requests, 0)
    counter.close()
    histogram = MmapedDict(str(directory / f"histogram_{pid}.db"))
    histogram.write_value(
        mmap_key("latency_seconds", "latency_seconds_bucket", ["view", "le"], ["home", "0.5"], "Latency."), fast, 0
    )
    histogram.close()
    gauge = MmapedDict(str(directory / f"gauge_livesum_{pid}.db"))
    gauge.write_value(mmap_key("busy", "busy", [], [], "Busy."), 1, 0)
    gauge.close()


def scrape(directory: Path) -> dict:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return parse_metrics(generate_latest(registry).decode())


def test_dead_workers_fold_into_one_archive_and_totals_stay(tmp_path):
    for pid in range(100, 150):  # fifty recycled workers
        write_worker(tmp_path, pid, requests=10, fast=7)
    write_worker(tmp_path, 999, requests=3, fast=1)  # the live one
    before = scrape(tmp_path)

    for pid in range(100, 150):
        archive_dead_process(pid, tmp_path)

    after = scrape(tmp_path)
    assert before[COUNTER] == after[COUNTER] == 503
    assert before[BUCKET] == after[BUCKET] == 351
    assert after[("busy", ())] == 1  # only the live worker's gauge is left
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_999.db",
        "counter_archive.db",
        "gauge_livesum_999.db",
        "histogram_999.db",
        "histogram_archive.db",
    ]


def test_archiving_twice_or_a_worker_without_files_changes_nothing(tmp_path):
    write_worker(tmp_path, 7, requests=4, fast=2)
    archive_dead_process(7, tmp_path)
    archive_dead_process(7, tmp_path)
    archive_dead_process(8, tmp_path)

    assert scrape(tmp_path)[COUNTER] == 4


def test_compaction_waits_for_a_scrape_in_progress(tmp_path):
    write_worker(tmp_path, 7, requests=4, fast=2)
    done = threading.Event()

    with directory_lock(tmp_path, exclusive=False):
        worker = threading.Thread(target=lambda: (archive_dead_process(7, tmp_path), done.set()))
        worker.start()
        assert not done.wait(0.3)  # blocked behind the scrape's shared lock
        assert (tmp_path / "counter_7.db").exists()
    worker.join(5)

    assert done.is_set()
    assert not (tmp_path / "counter_7.db").exists()
    assert scrape(tmp_path)[COUNTER] == 4
