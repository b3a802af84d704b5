"""partest's stand-in for pytest-xdist inside one partest slot.

partest runs pytest itself, one process (a batch) at a time per slot, with
pytest-xdist blocked (`-p no:xdist`) so that an `addopts = -n auto` cannot
fork workers inside partest's workers. This plugin keeps what conftests
written for xdist rely on working, per slot:

- xdist's command-line options are accepted and ignored, so `addopts` that
  name them still parse;
- `config.workerinput` is set as on an xdist worker, so code that reads it
  (pytest-django's per-worker database suffix, `xdist.get_xdist_worker_id`)
  sees the slot;
- the `worker_id` and `testrun_uid` fixtures return the slot and the run id.
"""

import os

import pytest

_IGNORED = (
    (("-n", "--numprocesses"), {}),
    (("--maxprocesses",), {}),
    (("--max-worker-restart",), {}),
    (("--dist",), {}),
    (("--loadgroup",), {"action": "store_true"}),
    (("--tx",), {"action": "append"}),
    (("--px",), {"action": "append"}),
    (("--rsyncdir",), {"action": "append"}),
    (("--rsyncignore",), {"action": "append"}),
    (("--boxed",), {"action": "store_true"}),
)


def pytest_addoption(parser):
    group = parser.getgroup("partest", "pytest-xdist options, accepted and ignored under partest")
    for names, kwargs in _IGNORED:
        dest = "partest_ignored_" + names[-1].lstrip("-").replace("-", "_")
        try:
            # _addoption: xdist's own way to register the lowercase -n.
            group._addoption(*names, dest=dest, default=None, help="ignored: partest schedules the tests", **kwargs)
        except ValueError:
            pass  # another plugin owns the name


def _worker():
    return os.environ.get("PYTEST_XDIST_WORKER")


# Last, because pytest's own JUnit writer (which partest reads) turns itself
# off when it sees `workerinput` at configure time, as on a real xdist worker.
@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    worker = _worker()
    if worker and not hasattr(config, "workerinput"):
        config.workerinput = {
            "workerid": worker,
            "workercount": int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
            "testrunuid": os.environ.get("PARTEST_RUN_ID", ""),
            "mainargv": [],
        }


@pytest.fixture(scope="session")
def worker_id():
    return _worker() or "master"


@pytest.fixture(scope="session")
def testrun_uid():
    return os.environ.get("PARTEST_RUN_ID", "")
