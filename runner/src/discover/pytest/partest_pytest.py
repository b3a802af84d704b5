"""partest's pytest plugin: one long-lived pytest worker per partest slot.

partest starts one pytest process per slot with this plugin loaded
(`-p partest_pytest`) and pytest-xdist blocked (`-p no:xdist`, partest is the
scheduler). The worker collects once, tells partest what it collected, then
runs the tests partest sends it, addressed by their index in the collection,
as an xdist worker does.

The protocol runs over two pipes whose fds are in `PARTEST_PYTEST_FDS`
("read,write"), never over stdout or stderr, which tests write to:

- worker -> partest, one JSON object a line: first
  `{"t": "files", "files": [...], "errors": [...]}`, the test files found
  (their node ids) without importing any; then a
  `{"t": "collected", "files": [{"f": F, "ids": [...], "markers": [...],
  "secs": S}], "errors": [...]}` per `collect` command (`secs`: how long the
  file took to import and collect, when this worker imported it then) and a `{"t": "result", "f": F,
  "o": O, ...}` per `run` command;
- partest -> worker, one command a line: `collect F...` imports and collects
  those files (by their index in the file list); `run F O NF NO ATTEMPT`
  runs test O of file F with test NO of file NF (-1 -1: none) as pytest's
  `nextitem`, so module and class fixtures that the next test shares live
  on; `stop` ends the worker.

By default (`[pytest] collect = "all"`) every worker collects everything at
the start, as pytest and pytest-xdist do, and `collect` only reports files'
tests. With `collect = "share"` (`PARTEST_PYTEST_COLLECT=share`) a worker
imports only the files partest has it collect: its share at the start, and
the files of the tests it is later given, so each module is imported by
about one worker; `pytest_collection_modifyitems` then runs per file. When
an argument names tests inside a file (`test_x.py::test_y`), pytest must
import the file to find them, and the worker collects everything.

Without `PARTEST_PYTEST_FDS` the plugin only keeps conftests written for
xdist working (below). It also does so inside partest:

- xdist's command-line options are accepted and ignored, so `addopts` that
  name them (`-n auto`) still parse;
- `config.workerinput` is set as on an xdist worker, so code that reads it
  (pytest-django's per-worker database suffix, `xdist.get_xdist_worker_id`)
  sees the slot;
- the `worker_id` and `testrun_uid` fixtures return the slot and the run id.
"""

import atexit
import json
import os
import socket
import sys
import time

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


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    # Registered before any plugin's own cleanup, so it runs after them all.
    if os.environ.get("PARTEST_PYTEST_FDS"):
        config.add_cleanup(lambda: _exit_now(config))


def _exit_now(config):
    """A worker's last step, once pytest has finished and unconfigured:
    what the interpreter would still run at exit (atexit handlers, which
    include coverage's and logging's, and weakref finalizers), then exit
    without tearing down every module and object the session made, which
    takes a large suite's worker a few tenths of a second that partest (and
    the slot's teardown) would wait for."""
    status = getattr(config, "_partest_exitstatus", 0)
    if status in (3, 4):
        # An internal or usage error: pytest says why once the config is
        # gone ("ERROR: file or directory not found: ..."), so let it.
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status)


def _coverage_asked(config):
    """What pytest-cov was asked for in this worker, so that partest can
    combine the workers' data and write the reports once the run is over,
    as its master does under xdist: None when it is not measuring."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    if plugin is None or getattr(plugin, "_disabled", True) or controller is None:
        return None
    options = plugin.options
    reports = options.cov_report
    if not isinstance(reports, dict):
        reports = {kind: None for kind in (reports or [])}
    return {
        "data_file": os.path.abspath(controller.cov.config.data_file),
        "rcfile": getattr(options, "cov_config", None),
        "reports": {kind: value for kind, value in reports.items()},
        "fail_under": getattr(options, "cov_fail_under", None),
        "precision": getattr(options, "cov_precision", None),
    }


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    worker = _worker()
    if worker and not hasattr(config, "workerinput"):
        config.workerinput = {
            "workerid": worker,
            "workercount": int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
            "testrunuid": os.environ.get("PARTEST_RUN_ID", ""),
            "mainargv": [],
            # pytest-cov takes anything with a workerinput for an xdist
            # worker and reads these: same host and folder, so each worker
            # saves its own .coverage.* file, for `coverage combine`.
            "cov_master_host": socket.gethostname(),
            "cov_master_topdir": os.getcwd(),
            "cov_master_rsync_roots": [],
        }
        if not hasattr(config, "workeroutput"):
            config.workeroutput = {}
    fds = os.environ.get("PARTEST_PYTEST_FDS")
    if fds:
        config.pluginmanager.register(_Worker(config, fds), "partest-worker")
    # Registered last, so its fixture overrides pytest-django's own (a
    # conftest's django_db_setup still overrides both).
    if os.environ.get("PARTEST_PYTEST_DJANGO_DB") == "slot" and config.pluginmanager.hasplugin("django"):
        config.pluginmanager.register(_DjangoSlotDatabase(), "partest-django")


@pytest.fixture(scope="session")
def worker_id():
    return _worker() or "master"


@pytest.fixture(scope="session")
def testrun_uid():
    return os.environ.get("PARTEST_RUN_ID", "")


class _DjangoSlotDatabase:
    """pytest-django on partest's postgres plugin in template mode.

    The slot's database (DATABASE_URL, read by the settings at import) is
    already a clone of the template that `[setup] commands` migrated once, made
    for this slot alone and dropped after the run. So it is the test database
    as it stands: pytest-django neither creates nor migrates one per worker.
    """

    @pytest.fixture(scope="session")
    def django_db_setup(self):
        # The clone is the test database only if the settings point at it.
        # Settings that read another variable would otherwise run the
        # tests, flushes included, on whatever database they name, with no
        # test_ prefix to protect it.
        from django.db import connections

        expected = os.environ.get("PGDATABASE")
        name = connections["default"].settings_dict.get("NAME")
        if expected and name != expected:
            raise pytest.UsageError(
                f"partest: Django's default database is {name!r}, not this slot's clone "
                f"{expected!r}: the settings do not read the postgres plugin's URL "
                "(DATABASE_URL, or the name its `var` setting gives) nor the PG* variables; "
                "no test was run on it"
            )
        yield


class _Worker:
    """The worker side of the protocol, registered only under partest."""

    def __init__(self, config, fds):
        read_fd, write_fd = (int(fd) for fd in fds.split(","))
        self.config = config
        self.commands = os.fdopen(read_fd, "rb", buffering=65536)
        self.out = write_fd
        self.collect_errors = []
        self.deselected = 0
        self.reports = []
        # Lazy when asked for, unless an argument names tests inside a file.
        self.lazy = os.environ.get("PARTEST_PYTEST_COLLECT") == "share" and not any(
            "::" in str(arg) for arg in config.args
        )
        self.discovering = self.lazy
        self.file_ids = []
        # Lazy: each file's collector, not yet collected; eager: its items.
        self.file_nodes = []
        self.eager_items = []
        self.items = {}

    def send(self, message):
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.out, data):]

    @pytest.hookimpl(tryfirst=True)
    def pytest_make_collect_report(self, collector):
        # While the worker looks for files, a file is found, not imported.
        if self.discovering and isinstance(collector, pytest.File) and not isinstance(collector, pytest.Package):
            if collector.nodeid not in self.file_ids:
                self.file_ids.append(collector.nodeid)
                self.file_nodes.append(collector)
            return pytest.CollectReport(collector.nodeid, "passed", None, [])
        return None

    def pytest_collection_finish(self, session):
        self.discovering = False
        if not self.lazy:
            by_file = {}
            for item in session.items:
                by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
            self.file_ids = list(by_file)
            self.eager_items = list(by_file.values())

    def pytest_deselected(self, items):
        self.deselected += len(items)

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append({"id": report.nodeid, "text": str(report.longrepr)})

    def pytest_runtest_logreport(self, report):
        self.reports.append(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        self.config._partest_exitstatus = int(exitstatus)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        self.send({"t": "files", "files": self.file_ids, "errors": self.collect_errors,
                   "deselected": self.deselected, "coverage": _coverage_asked(self.config)})
        if self.collect_errors:
            return True
        for line in self.commands:
            words = line.split()
            if words and words[0] == b"collect":
                self.collect(session, [int(w) for w in words[1:]])
            elif words and words[0] == b"run":
                f, o, nf, no = (int(w) for w in words[1:5])
                os.environ["PARTEST_ATTEMPT"] = words[5].decode()
                nextitem = self.items[nf][no] if nf >= 0 else None
                self.run(session, self.items[f][o], nextitem, f, o)
            else:
                break
        return True

    def collect(self, session, files):
        errors_before = len(self.collect_errors)
        deselected_before = self.deselected
        collected = []
        secs = {}
        for f in files:
            if f not in self.items:
                if self.lazy:
                    start = time.perf_counter()
                    items = list(session.genitems(self.file_nodes[f]))
                    secs[f] = time.perf_counter() - start
                    # Deselection (-k, -m, --deselect) and plugins' ordering, per file.
                    self.config.hook.pytest_collection_modifyitems(session=session, config=self.config, items=items)
                    session.items.extend(items)
                else:
                    items = self.eager_items[f]
                self.items[f] = items
            items = self.items[f]
            entry = {
                "f": f,
                "ids": [item.nodeid for item in items],
                "markers": [sorted({m.name for m in item.iter_markers()}) for item in items],
            }
            if f in secs:
                # How long importing and collecting it took: shares are balanced on it.
                entry["secs"] = secs[f]
            rank = self.django_rank()
            if rank is not None:
                entry["ranks"] = [rank(item) for item in items]
            collected.append(entry)
        self.send({"t": "collected", "files": collected, "errors": self.collect_errors[errors_before:],
                   "deselected": self.deselected - deselected_before})

    def django_rank(self):
        """pytest-django's order, which it sorts the items by and partest
        keeps on every worker: a transactional test flushes the database,
        so the tests that need its migrated data run before any of them."""
        if not hasattr(self, "_django_rank"):
            self._django_rank = _django_order(self.config)
        return self._django_rank

    def run(self, session, item, nextitem, f, o):
        self.reports = []
        os.environ["PARTEST_TEST_NAME"] = item.nodeid
        start = time.perf_counter()
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        duration = time.perf_counter() - start
        message = _outcome(self.reports)
        message.update(t="result", f=f, o=o, duration=duration)
        # `-x` / `--maxfail`: pytest asks to stop; partest decides (fail-fast),
        # and this worker stays usable for whatever partest sends next.
        if session.shouldfail or session.shouldstop:
            message["stop"] = True
            session.shouldfail = session.shouldstop = False
        self.send(message)


def _django_order(config):
    """pytest-django's order number of an item, as its own
    `pytest_collection_modifyitems` computes it (Django's order: database
    tests 0, transactional ones 1, the rest 2), or None without it."""
    if not config.pluginmanager.hasplugin("django"):
        return None
    try:
        from pytest_django.plugin import django_settings_is_configured, validate_django_db

        if not django_settings_is_configured():
            return None
        from django.test import TestCase, TransactionTestCase
    except Exception:
        return None

    def order(item):
        cls = getattr(item, "cls", None)
        if cls and issubclass(cls, TransactionTestCase):
            uses_db, transactional = True, not issubclass(cls, TestCase)
        else:
            marker = item.get_closest_marker("django_db")
            if marker:
                transaction, reset_sequences = validate_django_db(marker)[:2]
                uses_db, transactional = True, bool(transaction or reset_sequences)
            else:
                uses_db = transactional = False
            fixtures = getattr(item, "fixturenames", [])
            transactional = transactional or "transactional_db" in fixtures or "live_server" in fixtures
            uses_db = uses_db or "db" in fixtures
        return 1 if transactional else 0 if uses_db else 2

    return order


def _outcome(reports):
    """One test's outcome from its setup, call and teardown reports."""
    failed = [r for r in reports if r.failed]
    skipped = [r for r in reports if r.skipped]
    call = next((r for r in reports if r.when == "call"), None)
    if failed:
        first = failed[0]
        # A failing call is a failure; a failing setup or teardown an error.
        call_failed = any(r.when == "call" for r in failed)
        outcome, when = ("failed", "call") if call_failed else ("error", first.when)
        text = [r.longreprtext if r is first else f"---- error in {r.when} ----\n{r.longreprtext}" for r in failed]
        text.extend(f"---- {title} ----\n{content}" for title, content in first.sections)
        return {"outcome": outcome, "when": when, "text": "\n".join(text)}
    if call is not None and hasattr(call, "wasxfail"):
        return {"outcome": "xfailed" if call.skipped else "xpassed", "when": "call", "text": call.wasxfail}
    if skipped:
        first = skipped[0]
        if hasattr(first, "wasxfail"):
            return {"outcome": "xfailed", "when": first.when, "text": first.wasxfail}
        reason = first.longrepr[2] if isinstance(first.longrepr, tuple) else str(first.longrepr)
        return {"outcome": "skipped", "when": first.when, "text": reason}
    return {"outcome": "passed", "when": "call"}
