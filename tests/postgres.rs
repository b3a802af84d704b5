//! The built-in postgres plugin against the real server on 127.0.0.1:5432
//! (user postgres, trust auth), through `psql`: a database per slot cloned
//! from a template migrated once, schema mode, teardown on success, failure
//! and SIGINT, `partest clean` after kill -9, and the marker rule.
//! Without a server (or psql) the tests skip with a note; with CI=true they fail.

use std::process::Command;

use partest_e2e::*;

const URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn psql(sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([URL, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Whether the server answers; skips (or, in CI, fails) when it does not.
fn server() -> bool {
    match psql("SELECT 1") {
        Ok(_) => true,
        Err(e) => {
            assert!(
                !in_ci(),
                "CI=true but PostgreSQL at {URL} is not usable: {e}"
            );
            eprintln!(
                "skipping: PostgreSQL at {URL} is not usable ({e}); run scripts/services.sh postgres"
            );
            false
        }
    }
}

fn databases(like: &str) -> Vec<String> {
    psql(&format!(
        "SELECT datname FROM pg_database WHERE datname LIKE '{like}' ORDER BY 1"
    ))
    .expect("list databases")
    .lines()
    .map(str::to_string)
    .collect()
}

/// A project whose tests read their slot's database through psql: each
/// adds its name to the migrated table and records the names it sees.
fn project(tests: usize, body: &str, extra: &str) -> Project {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            r#"[command]
tests = ["tests/*.sh"]
run = "sh {{}}"

[setup]
commands = ["psql \"$DATABASE_URL\" -XAtq -v ON_ERROR_STOP=1 -f migrate.sql && echo \"$PGDATABASE\" >> {log}/migrations"]

[plugins.postgres]
url = "{URL}"
{extra}
"#,
            log = log.display()
        ),
    );
    p.file(
        "migrate.sql",
        "CREATE TABLE items (id serial PRIMARY KEY, name text);\nINSERT INTO items (name) VALUES ('migrated');\n",
    );
    for i in 0..tests {
        p.file(
            &format!("tests/t{i}.sh"),
            &format!(
                r#"set -e
db=$(psql "$DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 -c "INSERT INTO items (name) VALUES ('t{i}'); SELECT current_database() || ' ' || current_schema() || ' ' || (SELECT string_agg(name, ',' ORDER BY id) FROM items)")
echo "t{i} $PARTEST_WORKER $db $PGDATABASE" > {log}/t{i}.seen
echo "$DATABASE_URL" > {log}/t{i}.url
{body}
"#,
                log = log.display()
            ),
        );
    }
    p
}

/// The migrated row (made once, before any slot) and rows of tests on the
/// same slot only: nothing another slot wrote.
fn assert_isolated(seen: &[Vec<String>], row: &[String]) {
    let names: Vec<&str> = row[4].split(',').collect();
    assert_eq!(
        names[0], "migrated",
        "the template's row was cloned: {row:?}"
    );
    assert!(names.contains(&row[0].as_str()), "{row:?}");
    for name in &names[1..] {
        let other = seen.iter().find(|r| r[0] == *name).expect("a test's row");
        assert_eq!(
            other[1], row[1],
            "{name} ran on another slot but is in {row:?}"
        );
    }
}

/// The run id of the human output's "Starting … [run <id>]" line.
fn run_id_of(db: &str) -> String {
    db.split('_').nth(1).expect("partest_<run>_...").to_string()
}

#[test]
fn each_slot_gets_its_own_clone_of_the_template_migrated_once_and_nothing_is_left() {
    if !server() {
        return;
    }
    let p = project(6, "sleep 0.3", "");
    let out = p.run(&["run", "-n", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let migrations = std::fs::read_to_string(p.log_dir().join("migrations")).unwrap();
    assert_eq!(migrations.lines().count(), 1, "migrated once: {migrations}");
    let template = migrations.trim();
    assert!(
        template.starts_with("partest_") && template.ends_with("_template"),
        "{template}"
    );
    let seen = seen(&p.log_dir());
    assert_eq!(seen.len(), 6, "{seen:?}");
    let mut by_worker = std::collections::BTreeMap::new();
    for row in &seen {
        let (worker, db, rows, pgdatabase) = (&row[1], &row[2], &row[4], &row[5]);
        assert_isolated(&seen, row);
        let _ = rows;
        assert_eq!(db, pgdatabase, "PGDATABASE matches DATABASE_URL");
        assert_eq!(db, &format!("partest_{}_{worker}", run_id_of(template)));
        let url = std::fs::read_to_string(p.log_dir().join(format!("{}.url", row[0]))).unwrap();
        let url = url.trim();
        // postgresql://: SQLAlchemy 1.4+ refuses postgres://.
        assert!(url.starts_with("postgresql://"), "{url}");
        if let Some((backend, database)) = sqlalchemy_reads(url) {
            assert_eq!(
                (backend.as_str(), database.as_str()),
                ("postgresql", db.as_str())
            );
        }
        by_worker.insert(worker.clone(), db.clone());
    }
    assert!(
        by_worker.len() >= 2,
        "more than one slot ran: {by_worker:?}"
    );
    let left = databases(&format!("partest\\_{}\\_%", run_id_of(template)));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_failed_run_drops_its_databases_too() {
    if !server() {
        return;
    }
    let p = project(2, "exit 1", "");
    let out = p.run(&["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    let seen = seen(&p.log_dir());
    assert!(!seen.is_empty());
    let left = databases(&format!("partest\\_{}\\_%", run_id_of(&seen[0][2])));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn schema_mode_gives_each_slot_a_schema_cloned_from_the_migrated_one() {
    if !server() {
        return;
    }
    let p = project(4, "sleep 0.2", "mode = \"schema\"");
    let out = p.run(&["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let seen = seen(&p.log_dir());
    assert_eq!(seen.len(), 4);
    let mut schemas = std::collections::BTreeSet::new();
    for row in &seen {
        assert_eq!(row[2], "postgres", "one database: {row:?}");
        assert_eq!(row[3], format!("partest_{}_{}", run_id_of(&row[3]), row[1]));
        assert_isolated(&seen, row);
        schemas.insert(row[3].clone());
    }
    assert!(schemas.len() >= 2, "{schemas:?}");
    let id = run_id_of(seen[0][3].as_str());
    let left = psql(&format!(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'partest\\_{id}\\_%'"
    ))
    .unwrap();
    assert!(left.is_empty(), "left behind: {left}");
}

#[test]
fn sigint_mid_run_drops_every_database_of_the_run() {
    if !server() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    let p = project(2, "sleep 30", "");
    let (mut child, rows) = start_long_run(&p, runs.path(), 2);
    let id = run_id_of(&rows[0][2]);
    assert_eq!(
        databases(&format!("partest\\_{id}\\_%")).len(),
        3,
        "template + 2 slots"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let left = databases(&format!("partest\\_{id}\\_%"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn kill_9_then_partest_clean_leaves_nothing() {
    if !server() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    let p = project(2, "sleep 20", "");
    let (mut child, rows) = start_long_run(&p, runs.path(), 2);
    let id = run_id_of(&rows[0][2]);
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert_eq!(
        databases(&format!("partest\\_{id}\\_%")).len(),
        3,
        "the crash left them"
    );
    let tmp = runs.path().join("tmp").join(format!("partest-{id}"));
    assert!(tmp.exists(), "the crash left its temp dir");

    let dry = partest(p.path())
        .args(["clean", "--dry-run"])
        .env("PARTEST_RUNS_DIR", runs.path())
        .env("TMPDIR", runs.path().join("tmp"))
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(0), "{}", both(&dry));
    let text = stdout(&dry);
    assert!(text.contains(&format!("partest_{id}_gw0")), "{text}");
    assert!(text.contains(&format!("partest-{id}")), "{text}");
    assert_eq!(
        databases(&format!("partest\\_{id}\\_%")).len(),
        3,
        "dry run removes nothing"
    );

    let clean = partest(p.path())
        .args(["clean", "--force"])
        .env("PARTEST_RUNS_DIR", runs.path())
        .env("TMPDIR", runs.path().join("tmp"))
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    let left = databases(&format!("partest\\_{id}\\_%"));
    assert!(left.is_empty(), "left behind: {left:?}\n{}", both(&clean));
    assert!(!tmp.exists(), "temp dir removed");
    assert!(!runs.path().join(&id).exists(), "the dead run is forgotten");
}

#[test]
fn clean_never_drops_a_database_without_our_marker_nor_a_live_runs() {
    if !server() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    // A dead run (its pid cannot exist) and names like ours.
    let dead = "dead0c1e";
    std::fs::write(runs.path().join(dead), "4194303 5\n").unwrap();
    let unmarked = format!("partest_{dead}_gw0");
    let other_marker = format!("partest_{dead}_gw1");
    let ours = format!("partest_{dead}_gw2");
    for db in [&unmarked, &other_marker, &ours] {
        let _ = psql(&format!("DROP DATABASE IF EXISTS {db}"));
        psql(&format!("CREATE DATABASE {db}")).unwrap();
    }
    psql(&format!(
        "COMMENT ON DATABASE {other_marker} IS 'made by hand'"
    ))
    .unwrap();
    psql(&format!(
        "COMMENT ON DATABASE {ours} IS 'partest run {dead}'"
    ))
    .unwrap();
    // A live run's database: this test process stands in for the run.
    let live = "a11ve0c1";
    std::fs::write(runs.path().join(live), live_run_entry()).unwrap();
    let live_db = format!("partest_{live}_gw0");
    let _ = psql(&format!("DROP DATABASE IF EXISTS {live_db}"));
    psql(&format!("CREATE DATABASE {live_db}")).unwrap();
    psql(&format!(
        "COMMENT ON DATABASE {live_db} IS 'partest run {live}'"
    ))
    .unwrap();

    let p = Project::new();
    p.file(
        "partest.toml",
        &format!("[command]\ntests = [\"*.sh\"]\n\n[plugins.postgres]\nurl = \"{URL}\"\n"),
    );
    // A TMPDIR of its own: this clean must not sweep other tests' temp dirs.
    let out = partest(p.path())
        .args(["clean", "--force"])
        .env("PARTEST_RUNS_DIR", runs.path())
        .env("TMPDIR", runs.path())
        .output()
        .unwrap();
    let left = databases(&format!("partest\\_{dead}\\_%"));
    let live_left = databases(&format!("partest\\_{live}\\_%"));
    for db in [&unmarked, &other_marker, &live_db] {
        let _ = psql(&format!("DROP DATABASE IF EXISTS {db}"));
    }
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(
        left,
        [unmarked.clone(), other_marker.clone()],
        "{}",
        both(&out)
    );
    assert_eq!(
        live_left,
        std::slice::from_ref(&live_db),
        "a live run's database stays"
    );
    assert!(stdout(&out).contains(&ours), "{}", both(&out));
}

#[test]
fn report_shows_the_slot_limit_the_server_allows() {
    if !server() {
        return;
    }
    let p = project(1, "true", "connections-per-worker = 4");
    let out = p.run(&["report"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let max: i64 = psql("SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int")
        .unwrap()
        .parse()
        .unwrap();
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("postgres"))
        .unwrap_or_else(|| panic!("no postgres line: {text}"));
    let n: i64 = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number: {line}"));
    assert!(
        n >= 1 && n <= max / 5,
        "{line} (max {max}, 5 connections a slot)"
    );
}

#[test]
fn the_postgres_example_passes_with_migrations_run_once() {
    if !server() {
        return;
    }
    if !python_has(
        "pytest, psycopg",
        "pytest 'psycopg[binary]'",
        "examples/postgres",
    ) {
        return;
    }
    let dir = workspace().join("examples/postgres");
    let run = Run::parse(
        partest(&dir)
            .args(json_args(&["run", "--plugins", "postgres", "-n", "3"]))
            .output()
            .unwrap(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert_eq!(run.passed_and_failed(), (19, 0), "{}", run.both());
    let setups = run.of_type("setup-command").count();
    assert_eq!(setups, 1, "migrated once: {}", run.both());
    let id = run.started().run_id;
    let left = databases(&format!("partest\\_{id}\\_%"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_django_example_uses_each_slots_clone_without_glue() {
    if !django_ready() {
        return;
    }
    let dir = workspace().join("examples/django");
    let run = Run::parse(
        partest(&dir)
            .args(json_args(&["run", "-n", "2"]))
            .output()
            .unwrap(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.both());
    // 13 tests, one of which checks that the test database is the slot's
    // clone (not a test_* database pytest-django made) and is migrated.
    assert_eq!(run.passed_and_failed(), (13, 0), "{}", run.both());
    let setups = run.of_type("setup-command").count();
    assert_eq!(setups, 1, "migrated once: {}", run.both());
    let id = run.started().run_id;
    assert!(databases(&format!("%{id}%")).is_empty(), "left behind");
    assert!(
        databases("test_partest%").is_empty(),
        "pytest-django made its own"
    );
}

/// Whether the Django examples can run here: PostgreSQL and Django with
/// pytest-django and psycopg; skips (in CI: fails) when not.
fn django_ready() -> bool {
    server()
        && python_has(
            "pytest, pytest_django, django, psycopg",
            "django pytest-django 'psycopg[binary]'",
            "examples/django",
        )
}

#[test]
fn django_settings_that_miss_the_slots_clone_stop_before_any_test_touches_their_database() {
    if !django_ready() {
        return;
    }
    // The example, but with settings that read another variable than the
    // plugin's (as projects with POSTGRES_DB-style settings do): the tests
    // would run on that database, which no test_ prefix protects.
    let p = django_example();
    let settings = std::fs::read_to_string(p.path().join("shop/settings.py"))
        .unwrap()
        .replace(
            "os.environ.get(\"DATABASE_URL\"",
            "os.environ.get(\"APP_DATABASE_URL\"",
        );
    p.file("shop/settings.py", &settings);
    let decoy = format!("partest_e2e_decoy_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {decoy}")).unwrap();
    psql(&format!("CREATE DATABASE {decoy}")).unwrap();
    let decoy_url = format!("postgresql://postgres@127.0.0.1:5432/{decoy}");
    let keep = |sql: &str| {
        Command::new("psql")
            .args([&decoy_url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap()
    };
    // The decoy is migrated and holds a customer; a transactional test
    // would flush it.
    p.file(
        "tests/test_flush.py",
        "import pytest\n\n@pytest.mark.django_db(transaction=True)\ndef test_flushes_at_the_end():\n    pass\n",
    );
    let migrated = Command::new("python3")
        .args(["manage.py", "migrate", "--noinput"])
        .current_dir(p.path())
        .env("APP_DATABASE_URL", &decoy_url)
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", both(&migrated));
    keep("INSERT INTO orders_customer (email) VALUES ('kept@example.com')");
    let run = || {
        Run::parse(
            partest(p.path())
                .args(json_args(&["run", "-n", "2"]))
                .env("APP_DATABASE_URL", &decoy_url)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .output()
                .unwrap(),
        )
    };
    let out = run();
    let kept = keep("SELECT count(*) FROM orders_customer");
    // `[env]` points the project's own variable at the slot's clone: then
    // it runs, with no change to the project.
    let toml = std::fs::read_to_string(p.path().join("partest.toml")).unwrap();
    p.file(
        "partest.toml",
        &format!("{toml}\n[env]\nAPP_DATABASE_URL = \"${{DATABASE_URL}}\"\n"),
    );
    let mapped = run();
    let kept_after = keep("SELECT count(*) FROM orders_customer");
    let _ = psql(&format!("DROP DATABASE IF EXISTS {decoy} WITH (FORCE)"));
    assert_ne!(out.code(), Some(0), "{}", out.both());
    // The tests that met the decoy say why they failed.
    assert!(
        out.attempts()
            .iter()
            .any(|a| a.status == Status::Fail && a.text().contains("not this slot's clone")),
        "{}",
        out.both()
    );
    assert_eq!(kept, "1", "{}", out.both());
    assert_eq!(mapped.code(), Some(0), "{}", mapped.both());
    assert_eq!(mapped.counts().passed, 14, "{}", mapped.both());
    assert_eq!(kept_after, "1", "{}", mapped.both());
}

#[test]
fn django_database_tests_run_before_transactional_ones_on_every_worker() {
    if !django_ready() {
        return;
    }
    // A data migration seeds a row that a TestCase relies on; a slower
    // TransactionTestCase flushes every table when it ends. Django and
    // pytest-django run TestCases first; partest's longest-first order must
    // not put the flush before them (the second run has the history).
    let p = django_example();
    // The example's own tests count the customers; this suite seeds one.
    std::fs::remove_file(p.path().join("tests/test_orders.py")).unwrap();
    p.file(
        "shop/orders/migrations/0002_seed.py",
        "from django.db import migrations\n\n\ndef seed(apps, schema_editor):\n    apps.get_model(\"orders\", \"Customer\").objects.create(email=\"seeded@example.com\")\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"orders\", \"0001_initial\")]\n    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]\n",
    );
    p.file(
        "tests/test_a_transactional.py",
        "import time\nfrom django.test import TransactionTestCase\n\n\nclass Flushes(TransactionTestCase):\n    def test_writes_then_flushes(self):\n        time.sleep(0.5)\n",
    );
    p.file(
        "tests/test_b_seeded.py",
        "from django.test import TestCase\nfrom shop.orders.models import Customer\n\n\nclass SeededData(TestCase):\n    def test_seed_is_there(self):\n        assert Customer.objects.filter(email=\"seeded@example.com\").exists()\n",
    );
    for round in 1..=2 {
        let out = partest(p.path())
            .args(["run", "-n", "1"])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "run {round}: {}", both(&out));
    }
}

#[test]
fn classes_and_modules_stay_whole_run_after_run_as_plain_pytest_runs_them() {
    if !django_ready() {
        return;
    }
    // Two Django TestCase classes whose rows come from setUpTestData and
    // whose state comes from setUpClass, and a pytest class with a
    // class-scoped fixture: each test checks that its class ran alone, in
    // order, with its set-up once. Slow tests in the middle of each class
    // are what a longest-first order inside a module would pull forward.
    let p = django_example();
    std::fs::remove_file(p.path().join("tests/test_orders.py")).unwrap();
    let class = |name: &str, slow: &str| {
        format!(
            "class {name}(TestCase):\n    @classmethod\n    def setUpClass(cls):\n        super().setUpClass()\n        cls.ran = []\n\n    @classmethod\n    def setUpTestData(cls):\n        Customer.objects.create(email=\"{name}@example.com\")\n\n    def check(self, step):\n        assert self.ran == list(range(1, step)), self.ran\n        self.ran.append(step)\n        assert list(Customer.objects.values_list(\"email\", flat=True)) == [\"{name}@example.com\"]\n\n    def test_1(self):\n        {}self.check(1)\n\n    def test_2(self):\n        {}self.check(2)\n\n    def test_3(self):\n        self.check(3)\n\n",
            if slow == "1" {
                "time.sleep(0.4)\n        "
            } else {
                ""
            },
            if slow == "2" {
                "time.sleep(0.4)\n        "
            } else {
                ""
            },
        )
    };
    let module = format!(
        "import time\n\nimport pytest\nfrom django.test import TestCase\n\nfrom shop.orders.models import Customer\n\n{}{}SETUPS = []\nORDER = []\n\n\n@pytest.fixture(scope=\"class\")\ndef resource():\n    SETUPS.append(1)\n    yield\n\n\nclass TestPlain:\n    def test_a(self, resource):\n        assert SETUPS == [1] and ORDER == []\n        ORDER.append(\"a\")\n\n    def test_b(self, resource):\n        time.sleep(0.4)\n        assert SETUPS == [1] and ORDER == [\"a\"]\n        ORDER.append(\"b\")\n\n    def test_c(self, resource):\n        assert SETUPS == [1] and ORDER == [\"a\", \"b\"]\n",
        class("Alpha", "2"),
        class("Beta", "1"),
    );
    p.file("tests/test_units.py", &module);
    let others: String = (0..6)
        .map(|i| {
            format!(
                "def test_other_{i}():\n    time.sleep(0.{})\n\n\n",
                1 + i % 3
            )
        })
        .collect();
    p.file(
        "tests/test_others.py",
        &format!("import time\n\n\n{others}"),
    );

    // Plain pytest, serially, on a test database of its own.
    let db = format!("partest_e2e_units_{}", std::process::id());
    let plain_xml = p.path().join("plain.xml");
    let out = Command::new("python3")
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
        ])
        .arg(format!("--junitxml={}", plain_xml.display()))
        .env(
            "DATABASE_URL",
            format!("postgresql://postgres@127.0.0.1:5432/{db}"),
        )
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(p.path())
        .output()
        .unwrap();
    let plain = junit_outcomes(&plain_xml);
    assert_eq!(plain.len(), 15, "{}", both(&out));
    assert!(
        plain.values().all(|o| o == "passed"),
        "the suite passes under plain pytest: {plain:?}\n{}",
        both(&out)
    );
    for round in 1..=3 {
        let xml = p.path().join(format!("run{round}.xml"));
        let out = partest(p.path())
            .args(["run", "-n", "2", "--junit"])
            .arg(&xml)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        assert_eq!(
            junit_outcomes(&xml),
            plain,
            "run {round} differs from plain pytest: {}",
            both(&out)
        );
        assert_eq!(out.status.code(), Some(0), "run {round}: {}", both(&out));
    }
}

/// Each test case of a JUnit file, `classname::name`, and how it ended.
fn junit_outcomes(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let xml = std::fs::read_to_string(path).unwrap_or_default();
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return Default::default();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let outcome = case
                .children()
                .find_map(|c| match c.tag_name().name() {
                    "failure" | "error" => Some("failed"),
                    "skipped" => Some("skipped"),
                    _ => None,
                })
                .unwrap_or("passed");
            (
                format!(
                    "{}::{}",
                    case.attribute("classname").unwrap_or_default(),
                    case.attribute("name").unwrap_or_default()
                ),
                outcome.to_string(),
            )
        })
        .collect()
}

/// A copy of examples/django to change.
fn django_example() -> Project {
    let p = Project::new();
    let example = workspace().join("examples/django");
    for path in files_under(&example) {
        let rel = path
            .strip_prefix(&example)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !rel.contains("__pycache__") && !rel.starts_with(".partest") {
            p.file(&rel, &std::fs::read_to_string(&path).unwrap());
        }
    }
    p
}

/// `[setup] inputs`: the first run migrates and keeps its template as
/// `partest_setup_<key>`; the next clones it without migrating; `clean`
/// leaves it and `clean --templates` drops it. In both modes.
#[test]
fn a_kept_template_is_cloned_by_the_next_run_and_dropped_only_by_clean_templates() {
    if !server() {
        return;
    }
    for mode in ["database", "schema"] {
        let p = project(2, "", &format!("mode = \"{mode}\""));
        let toml = std::fs::read_to_string(p.path().join("partest.toml")).unwrap();
        p.file(
            "partest.toml",
            &toml.replace("[setup]\n", "[setup]\ninputs = [\"migrate.sql\"]\n"),
        );
        let migrations = || {
            std::fs::read_to_string(p.log_dir().join("migrations"))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let outcome = |run: &Run| {
            let e: Vec<_> = run.of_type("setup").collect();
            assert_eq!(e.len(), 1, "{}", run.both());
            (
                e[0]["outcome"].as_str().unwrap().to_string(),
                e[0]["key"].as_str().unwrap().to_string(),
            )
        };
        let first = p.run_json(&["run", "-n", "2"]);
        assert_eq!(first.passed().len(), 2, "{mode}: {}", first.both());
        let (built, key) = outcome(&first);
        assert_eq!(built, "built", "{mode}");
        let kept = format!("partest_setup_{key}");
        let kept_here = || match mode {
            "database" => databases(&kept),
            _ => psql(&format!(
                "SELECT nspname FROM pg_namespace WHERE nspname = '{kept}'"
            ))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect(),
        };
        assert_eq!(kept_here(), std::slice::from_ref(&kept), "{mode}");

        let second = p.run_json(&["run", "-n", "2"]);
        assert_eq!(second.passed().len(), 2, "{mode}: {}", second.both());
        assert_eq!(outcome(&second), ("reused".into(), key.clone()), "{mode}");
        assert_eq!(migrations(), 1, "{mode}: the second run migrated again");
        // Each slot still saw the migrated row, in its own clone.
        let seen = seen(&p.log_dir());
        for row in &seen {
            assert_isolated(&seen, row);
        }

        let cleaned = p.run(&["clean", "--yes"]);
        assert_eq!(cleaned.status.code(), Some(0), "{}", both(&cleaned));
        assert_eq!(
            kept_here(),
            std::slice::from_ref(&kept),
            "{mode}: clean dropped it"
        );
        let removed = p.run(&["clean", "--yes", "--templates"]);
        assert_eq!(removed.status.code(), Some(0), "{}", both(&removed));
        assert!(kept_here().is_empty(), "{mode}: {}", both(&removed));
    }
}

/// A custom plugin through the real binary: a database renamed into the
/// run's names (by dynamic SQL) is renamed back, the call fails, and the
/// plugin does not reach it; the set-up commands get what the host said.
#[test]
fn a_custom_plugin_reaches_no_database_renamed_into_the_runs_names() {
    if !server() {
        return;
    }
    let victim = format!("pte2e{}_victim", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {victim}")).unwrap();
    psql(&format!("CREATE DATABASE {victim}")).unwrap();
    let guest =
        target_dir().join("partest-guests/wasm32-wasip2/release/test_hostile_services.wasm");
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            "[command]\ntests = [\"t/*.sh\"]\n\n[setup]\ncommands = [\"sh say.sh\"]\n\n\
             [plugins.evil]\npath = {:?}\nmode = \"pg-rename-into-reach\"\n\
             database = {victim:?}\nallow-superuser = true\n\
             allow = {{ postgres = {URL:?}, redis = \"redis://127.0.0.1:1\", env = [{}] }}\n",
            guest.display().to_string(),
            [
                "EVAL",
                "EVAL_RO",
                "EVALSHA",
                "FCALL",
                "FUNCTION",
                "SCRIPT",
                "MIGRATE",
                "SWAPDB",
                "CLIENT_PAUSE",
                "CLIENT_KILL",
                "CONFIG",
                "MODULE",
                "DEBUG",
                "SAVE",
                "BGSAVE",
                "SHUTDOWN",
                "REPLICAOF",
                "FLUSHALL",
                "RESULT",
                "IN_MULTI",
                "APPENDED",
                "STOPPED",
                "REACHED",
                "COPIED",
            ]
            .map(|n| format!("{n:?}"))
            .join(", ")
        ),
    );
    p.file("t/a.sh", "true\n");
    p.file(
        "say.sh",
        &format!(
            "printf '%s\\n%s\\n' \"$RESULT\" \"$REACHED\" > {}/said\n",
            log.display()
        ),
    );
    let out = partest(p.path()).args(["run", "-n", "1"]).output().unwrap();
    let left = databases(&format!("{victim}%"));
    for db in &left {
        let _ = psql(&format!("DROP DATABASE IF EXISTS {db}"));
    }
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let said = std::fs::read_to_string(log.join("said")).unwrap();
    let mut lines = said.lines();
    let (renamed, reached) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    assert!(
        renamed.starts_with("refused") && renamed.contains("renamed back"),
        "{said}"
    );
    assert!(!reached.starts_with("allowed"), "{said}");
    assert_eq!(left, vec![victim], "the victim keeps its name");
}
