"""Instructions per request, counted by callgrind inside one process (no server, no sockets).

    valgrind --tool=callgrind --dump-before=os_getppid --callgrind-out-file=DIR/cg \\
        python -m bench.instructions --requests N < requests.json

Each request of ``requests.json`` (``[{"name", "method", "path", "headers"}]``) goes to the WSGI
application a few times to warm up, then ``N`` times between two calls of ``os.getppid()``: callgrind
dumps its counters before each of those calls, so the dump taken at the second call holds exactly
the ``N`` requests. Prints, per request, the HTTP status and the body's length as JSON on stdout.
``read_counts`` turns the dumps into instructions per request. Run by bench/run.py (--instructions).
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WARM_UP = 3


def _environ(request: dict[str, object]) -> dict[str, object]:
    path, _, query = str(request["path"]).partition("?")
    environ: dict[str, object] = {
        "REQUEST_METHOD": request["method"],
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in dict(request.get("headers") or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _call(application, request: dict[str, object]) -> tuple[str, int]:
    status: list[str] = []
    response = application(_environ(request), lambda code, headers, exc_info=None: status.append(code))
    try:
        length = sum(len(chunk) for chunk in response)
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
    return status[0], length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    requests = json.load(sys.stdin)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    results = []
    for request in requests:
        for _ in range(WARM_UP):
            status, length = _call(application, request)
        os.getppid()  # dump: everything before this request's measured calls
        for _ in range(args.requests):
            _call(application, request)
        os.getppid()  # dump: exactly the measured calls
        results.append({"name": request["name"], "status": int(status.split()[0]), "bytes": length})
    json.dump(results, sys.stdout)


@contextmanager
def under_callgrind(argv: list[str], *, env: dict[str, str], stdin: str | None = None) -> Iterator[tuple[str, Path]]:
    """Runs ``python argv...`` (from the repository root) under callgrind, dumping before each
    ``os.getppid()``; yields its stdout and the directory of the dumps (``callgrind.out.N``)."""
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="staybase-callgrind-") as directory:
        completed = subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-before=os_getppid",
             f"--callgrind-out-file={directory}/callgrind.out", sys.executable, *argv],
            cwd=Path(__file__).resolve().parent.parent, env=env, input=stdin,
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        if completed.returncode:
            sys.exit(f"{' '.join(argv)} failed under callgrind:\n{completed.stderr[-3000:]}")
        yield completed.stdout, Path(directory)


def read_counts(directory: Path, prefix: str, names: list[str], requests: int) -> dict[str, float]:
    """Instructions per request from the dumps of one run: dump 2k+2 (1-based) is request k's."""
    totals = {}
    for path in directory.glob(f"{prefix}*"):
        number = path.name.rpartition(".")[2]
        if number.isdigit():
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("totals:") or line.startswith("summary:"):
                    totals[int(number)] = int(line.split()[1])
                    break
    return {name: totals.get(2 * index + 2, 0) / requests for index, name in enumerate(names)}


if __name__ == "__main__":
    main()
