//! Beyond one machine, end to end: `--shard K/N` as three processes whose
//! merged JUnit is the whole suite, the balance of a skewed suite with
//! timings, `--shard auto` from CI variables, and `--shard queue` on a real
//! Redis (127.0.0.1:6379) with one of three machines killed mid-run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use partest_e2e::*;

const CONFIG: &str =
    "[command]\ntests = [\"t/**/*.sh\"]\nrun = \"sh {}\"\n[serial]\nfilter = [\"t/serial/**\"]\n";

/// A test that sleeps `secs`, then appends `name PARTEST_SHARD` to log/ended.
fn sleeper(log: &Path, name: &str, secs: f64, exit: i32) -> String {
    format!(
        "sleep {secs}\necho \"{name} $PARTEST_SHARD\" >> {log}/ended\nexit {exit}\n",
        log = log.display()
    )
}

/// Each `<testcase>`'s name in a JUnit file, and its time.
fn testcases(path: &Path) -> Vec<(String, f64)> {
    read_junit(path)
        .cases()
        .map(|c| {
            let time = c.time.as_deref().and_then(|t| t.parse().ok());
            (c.name.clone(), time.unwrap_or(0.0))
        })
        .collect()
}

fn ended(log: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(log.join("ended"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn spawn(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Child {
    partest(p.path())
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting partest")
}

#[test]
fn three_shards_as_processes_merge_into_the_whole_suite() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    let mut all = Vec::new();
    for i in 0..11 {
        let name = format!("t/a{i:02}.sh");
        p.file(
            &name,
            &sleeper(&log, &name, 0.05 * f64::from(i % 4), i32::from(i == 3)),
        );
        all.push(name);
    }
    p.file("t/serial/s.sh", &sleeper(&log, "t/serial/s.sh", 0.1, 0));
    all.push("t/serial/s.sh".into());
    // The cache every machine restores: some tests known, others new.
    let base = r#"{"t/a00.sh": 0.5, "t/a01.sh": 0.2, "t/a02.sh": 0.1, "t/serial/s.sh": 0.3}"#;
    p.file("timings.json", base);
    let shards: Vec<Child> = (1..=3)
        .map(|k| {
            // Each machine's own copy of the cache, as CI restores it.
            p.file(&format!("m{k}/timings.json"), base);
            spawn(
                &p,
                &[
                    "run",
                    "-n",
                    "2",
                    "--shard",
                    &format!("{k}/3"),
                    "--timings",
                    &format!("m{k}/timings.json"),
                    "--junit",
                    &format!("m{k}/junit.xml"),
                ],
                &[],
            )
        })
        .collect();
    let mut codes = Vec::new();
    for (k, child) in shards.into_iter().enumerate() {
        let out = child.wait_with_output().expect("partest ends");
        assert!(
            stderr(&out).contains(&format!("shard {}/3:", k + 1)),
            "{}",
            both(&out)
        );
        codes.push(out.status.code());
    }
    // The failing test's shard exits 100, the others 0.
    assert_eq!(
        codes.iter().filter(|c| **c == Some(100)).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        2,
        "{codes:?}"
    );

    // Every test ran once, and saw its shard.
    let ended = ended(&log);
    let names: Vec<&str> = ended.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(names, expected, "{ended:?}");
    let per_shard: BTreeMap<&str, usize> = ended.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.split(' ').nth(1).unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        per_shard.keys().copied().collect::<Vec<_>>(),
        ["1/3", "2/3", "3/3"]
    );

    let out = p.run(&[
        "merge",
        "--junit",
        "merged.xml",
        "--timings",
        "timings.json",
        "m1/junit.xml",
        "m2/junit.xml",
        "m3/junit.xml",
        "m1/timings.json",
        "m2/timings.json",
        "m3/timings.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let merged: Vec<String> = {
        let mut v: Vec<String> = testcases(&p.path().join("merged.xml"))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        v.sort();
        v
    };
    assert_eq!(merged, expected);
    let merged = read_junit(&p.path().join("merged.xml"));
    assert_eq!(
        (merged.tests, merged.failures, merged.errors),
        (12, 1, 0),
        "{}",
        merged.xml
    );
    assert_eq!(merged.with_result(CaseResult::Failed).len(), 1);
    // The merged timings know every test, measured on whichever machine ran it.
    let timings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("timings.json")).unwrap())
            .unwrap();
    let keys: Vec<&String> = timings.as_object().unwrap().keys().collect();
    assert_eq!(keys, expected.iter().collect::<Vec<_>>());
    // t/a00.sh sleeps 0 s but was recorded at 0.5: it moved halfway.
    let a00 = timings["t/a00.sh"].as_f64().unwrap();
    assert!(a00 < 0.4, "{a00}");

    // The same inputs, the same split: `list` agrees with what ran.
    for k in 1..=3 {
        let out = p.run(&[
            "list",
            "--shard",
            &format!("{k}/3"),
            "--timings",
            &format!("m{k}/timings.json"),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    }
}

#[test]
fn a_skewed_suite_with_timings_is_balanced_within_ten_percent() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    // 24 tests: most short, a few long (0.05 s … 0.9 s), their timings known.
    let mut timings = serde_json::Map::new();
    for i in 0..24u32 {
        let secs = if i % 8 == 0 {
            0.9
        } else {
            0.05 + 0.03 * f64::from(i % 5)
        };
        let name = format!("t/k{i:02}.sh");
        p.file(&name, &sleeper(&log, &name, secs, 0));
        timings.insert(name, serde_json::json!(secs));
    }
    p.file(
        "timings.json",
        &serde_json::Value::Object(timings.clone()).to_string(),
    );
    let total: f64 = timings.values().map(|v| v.as_f64().unwrap()).sum();
    // What the split expects, from `list`.
    let mut expected_loads = Vec::new();
    for k in 1..=3 {
        let out = p.run(&[
            "list",
            "--shard",
            &format!("{k}/3"),
            "--timings",
            "timings.json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
        let load: f64 = stdout(&out)
            .lines()
            .filter_map(|l| timings.get(l.trim()).and_then(|v| v.as_f64()))
            .sum();
        expected_loads.push(load);
    }
    let ideal = total / 3.0;
    let slowest = expected_loads.iter().copied().fold(0.0, f64::max);
    assert!(
        slowest <= ideal * 1.10,
        "{expected_loads:?} vs ideal {ideal}"
    );
    // And what it measured: each shard on one worker, side by side.
    let children: Vec<Child> = (1..=3)
        .map(|k| {
            spawn(
                &p,
                &[
                    "run",
                    "-n",
                    "1",
                    "--shard",
                    &format!("{k}/3"),
                    "--timings",
                    "timings.json",
                    "--junit",
                    &format!("j{k}.xml"),
                ],
                &[],
            )
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    }
    let loads: Vec<f64> = (1..=3)
        .map(|k| {
            testcases(&p.path().join(format!("j{k}.xml")))
                .iter()
                .map(|(_, t)| t)
                .sum()
        })
        .collect();
    let measured_ideal = loads.iter().sum::<f64>() / 3.0;
    let measured_slowest = loads.iter().copied().fold(0.0, f64::max);
    assert!(
        measured_slowest <= measured_ideal * 1.10,
        "measured {loads:?} vs ideal {measured_ideal}"
    );
}

#[test]
fn shard_auto_reads_the_ci_engine_and_report_shows_it() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    for i in 0..6 {
        p.file(&format!("t/x{i}.sh"), "true\n");
    }
    let run = |args: &[&str], env: &[(&str, &str)]| {
        partest(p.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(
        &["report"],
        &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stdout(&out)
            .contains("--shard auto finds 2/3 from GitLab CI (CI_NODE_INDEX=2, CI_NODE_TOTAL=3)"),
        "{}",
        both(&out)
    );
    let out = run(&["report"], &[]);
    assert!(
        stdout(&out).contains("--shard auto finds nothing"),
        "{}",
        both(&out)
    );

    let listed = |env: &[(&str, &str)]| {
        let listed = Listed::parse(&run(&json_args(&["list", "--shard", "auto"]), env));
        listed
            .0
            .into_iter()
            .map(|e| e.test)
            .collect::<BTreeSet<String>>()
    };
    // Kubernetes: 0-based index, total from PARTEST_SHARD_TOTAL; the same
    // share as --shard 1/2 and as PARTEST_SHARD=1/2.
    let k8s = listed(&[("JOB_COMPLETION_INDEX", "0"), ("PARTEST_SHARD_TOTAL", "2")]);
    assert_eq!(k8s.len(), 3);
    assert_eq!(k8s, listed(&[("PARTEST_SHARD", "1/2")]));
    let other = listed(&[("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "2")]);
    assert!(k8s.is_disjoint(&other) && k8s.len() + other.len() == 6);
    let bk = listed(&[
        ("BUILDKITE_PARALLEL_JOB", "1"),
        ("BUILDKITE_PARALLEL_JOB_COUNT", "2"),
    ]);
    assert_eq!(bk, other);
    // Nothing found: the whole selection, said on stderr.
    let out = run(&["run", "--shard", "auto"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stderr(&out).contains("running the whole selection"),
        "{}",
        both(&out)
    );
    // An index without its total is a usage error naming the variable.
    let out = run(
        &["run", "--shard", "auto"],
        &[("JOB_COMPLETION_INDEX", "1")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains("PARTEST_SHARD_TOTAL"),
        "{}",
        both(&out)
    );
    let out = run(&["run", "--shard", "4/3"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
}

const REDIS: &str = "127.0.0.1:6379";

fn redis_up(test: &str) -> bool {
    match TcpStream::connect_timeout(&REDIS.parse().unwrap(), Duration::from_secs(1)) {
        Ok(_) => true,
        Err(e) if in_ci() => panic!("{test}: CI=true but Redis at {REDIS} is unreachable: {e}"),
        Err(e) => {
            eprintln!(
                "skipping {test}: no Redis at {REDIS} ({e}); start one with scripts/services.sh"
            );
            false
        }
    }
}

#[test]
fn queue_mode_ends_every_test_once_when_a_machine_is_killed() {
    if !redis_up("queue_mode_ends_every_test_once_when_a_machine_is_killed") {
        return;
    }
    let p = Project::new();
    let log = p.log_dir();
    std::fs::create_dir_all(log.join("started")).unwrap();
    p.file("partest.toml", CONFIG);
    let mut all = Vec::new();
    for i in 0..24 {
        let name = format!("t/q{i:02}.sh");
        // Started 0.2 s in (so that the test before it is long recorded),
        // then 0.4 s more.
        p.file(
            &name,
            &format!(
                "sleep 0.2\necho $$ > {log}/started/q{i:02}.$MACHINE\nsleep 0.4\necho \"{name} $MACHINE $PARTEST_SHARD\" >> {log}/ended\n",
                log = log.display()
            ),
        );
        all.push(name);
    }
    let run_id = format!(
        "e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let url = format!("redis://{REDIS}/0");
    let machine = |m: &str| {
        spawn(
            &p,
            &[
                "run",
                "-n",
                "1",
                "--shard",
                "queue",
                "--queue",
                &url,
                "--queue-run",
                &run_id,
                "--queue-lease",
                "1s",
                "--junit",
                &format!("{m}.xml"),
            ],
            &[("MACHINE", m)],
        )
    };
    let mut client = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let foreign_key = format!("not-partest:{run_id}");
    let _: () = redis::cmd("SET")
        .arg(&foreign_key)
        .arg("mine")
        .query(&mut client)
        .unwrap();

    let a = machine("A");
    let b = machine("B");
    let mut c = machine("C");
    // Kill C once it has ended two tests and is inside its third. Its
    // run's guard ends that test with it (nothing here kills it): so the
    // test that C's lease hands to another machine ends once, there.
    let started_on_c = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(log.join("started"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "C"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while started_on_c().len() < 3 {
        assert!(Instant::now() < deadline, "machine C never started 3 tests");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(c.id() as i32, libc::SIGKILL);
    }
    let _ = c.wait();
    // Within 2 s of the kill, no test process of C is alive.
    std::thread::sleep(Duration::from_secs(2));
    for path in started_on_c() {
        if let Ok(pid) = std::fs::read_to_string(&path)
            .unwrap()
            .trim()
            .parse::<i32>()
        {
            assert!(!pid_alive(pid), "C's test {pid} outlived C by 2 s");
        }
    }
    let mut outputs = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
        outputs.push(out);
    }
    // Every test ended exactly once, over the three machines.
    let ended = ended(&log);
    let names: Vec<&str> = ended.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(names, expected, "{ended:?}");
    assert!(ended.iter().all(|l| l.ends_with(" queue")), "{ended:?}");
    let on_c = ended.iter().filter(|l| l.contains(" C ")).count();
    assert!(
        on_c >= 2,
        "C ended {on_c} tests before it was killed: {ended:?}"
    );
    // The survivors' JUnit, merged: the whole suite, C's results adopted.
    let out = p.run(&["merge", "--junit", "merged.xml", "A.xml", "B.xml"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        !stderr(&out).contains("more than one file"),
        "{}",
        both(&out)
    );
    let mut merged: Vec<String> = testcases(&p.path().join("merged.xml"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    merged.sort();
    assert_eq!(merged, expected);
    // Whichever machine filled the queue (C, perhaps), both survivors say so.
    for out in &outputs {
        let said = stderr(out);
        assert!(
            said.contains("this one filled it") || said.contains("this one joined it"),
            "{said}"
        );
    }

    // The queue's keys carry the run id and expire; nothing else was touched.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("partest:queue:{run_id}:*"))
        .query(&mut client)
        .unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut client).unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
    let mine: String = redis::cmd("GET")
        .arg(&foreign_key)
        .query(&mut client)
        .unwrap();
    assert_eq!(mine, "mine");
    let _: () = redis::cmd("DEL")
        .arg(&foreign_key)
        .arg(&keys)
        .query(&mut client)
        .unwrap();
}

#[test]
fn queue_mode_needs_a_url_and_a_run_id() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    p.file("t/x.sh", "true\n");
    let out = p.run(&["run", "--shard", "queue"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("--queue redis://"), "{}", both(&out));
    let out = p.run(&[
        "run",
        "--shard",
        "queue",
        "--queue",
        "redis://127.0.0.1:6379/0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("--queue-run"), "{}", both(&out));
    // A queue that cannot be reached ends the run with exit 3, saying where.
    let out = p.run(&[
        "run",
        "--shard",
        "queue",
        "--queue",
        "redis://:secret@127.0.0.1:1/0",
        "--queue-run",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", both(&out));
    assert!(!both(&out).contains("secret"), "{}", both(&out));
}

/// A pytest project of 6 modules × 3 tests, each test writing
/// `node-id worker PARTEST_SHARD` into log/seen-<id>.
fn pytest_project() -> (Project, Vec<String>) {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", "[run]\nadapter = \"pytest\"\n");
    p.file(
        "conftest.py",
        &format!(
            "import os\nimport pytest\n\n@pytest.fixture(autouse=True)\ndef trace(request):\n    yield\n    name = request.node.nodeid.replace('/', '_').replace(':', '_')\n    with open(os.path.join({log:?}, 'seen-' + name), 'w') as f:\n        f.write(request.node.nodeid + ' ' + os.environ['PARTEST_WORKER'] + ' ' + os.environ.get('PARTEST_SHARD', '-'))\n",
            log = log.display().to_string()
        ),
    );
    let mut all = Vec::new();
    for m in 0..6 {
        let mut body = String::new();
        for t in 0..3 {
            body.push_str(&format!("def test_{t}():\n    pass\n\n"));
            all.push(format!("tests/test_m{m}.py::test_{t}"));
        }
        p.file(&format!("tests/test_m{m}.py"), &body);
    }
    all.sort();
    (p, all)
}

fn seen_rows(log: &Path) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seen-")
        })
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn pytest_shards_keep_modules_together_and_cover_the_suite() {
    if !have_pytest() {
        return;
    }
    let (p, all) = pytest_project();
    let log = p.path().join("log");
    for k in 1..=2 {
        let out = p.run(&["run", "-n", "2", "--shard", &format!("{k}/2")]);
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    }
    let rows = seen_rows(&log);
    let ran: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ran, all.iter().map(String::as_str).collect::<Vec<_>>());
    // No timings: counts balanced, each module on one shard.
    let mut shard_of_module: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &rows {
        let module = r[0].split("::").next().unwrap();
        shard_of_module
            .entry(module)
            .or_default()
            .insert(r[2].as_str());
    }
    assert!(
        shard_of_module.values().all(|s| s.len() == 1),
        "{shard_of_module:?}"
    );
    let per_shard = rows.iter().filter(|r| r[2] == "1/2").count();
    assert_eq!(per_shard, 9, "{rows:?}");
}

#[test]
fn pytest_queue_mode_runs_every_test_once_over_two_machines() {
    if !have_pytest() || !redis_up("pytest_queue_mode_runs_every_test_once_over_two_machines") {
        return;
    }
    let (p, all) = pytest_project();
    let log = p.path().join("log");
    let run_id = format!(
        "e2e-py-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let url = format!("redis://{REDIS}/0");
    let machines: Vec<Child> = ["a", "b"]
        .iter()
        .map(|m| {
            spawn(
                &p,
                &[
                    "run",
                    "-n",
                    "2",
                    "--shard",
                    "queue",
                    "--queue",
                    &url,
                    "--queue-run",
                    &run_id,
                    "--junit",
                    &format!("{m}.xml"),
                ],
                &[],
            )
        })
        .collect();
    for child in machines {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    }
    let rows = seen_rows(&log);
    let ran: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ran, all.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r[2] == "queue"), "{rows:?}");
    let out = p.run(&["merge", "--junit", "all.xml", "a.xml", "b.xml"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(testcases(&p.path().join("all.xml")).len(), 18);
    // Every key the run left on the shared Redis expires, those written
    // last (results, done, ended) included.
    assert_eq!(keys_without_expiry(&run_id), Vec::<String>::new());
}

/// The queue run's keys on the test Redis that have no expiry.
fn keys_without_expiry(run_id: &str) -> Vec<String> {
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", &format!("redis://{REDIS}/0")])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let keys = cli(&["--scan", "--pattern", &format!("partest:queue:{run_id}:*")]);
    assert!(!keys.trim().is_empty(), "the run left no keys at all");
    keys.lines()
        .filter(|k| cli(&["ttl", k]).trim() == "-1")
        .map(str::to_string)
        .collect()
}

/// The partest command lines of examples/ci/ parse: every flag they use
/// exists (`--help` after them answers only when all before it are known).
#[test]
fn the_ci_examples_use_flags_that_exist() {
    let dir = workspace().join("examples/ci");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap().replace("\\\n", " ");
        for line in text.lines() {
            let line = line.trim_start_matches(|c: char| c == '#' || c == '-' || c.is_whitespace());
            let line = line.trim_start_matches("run:").trim();
            let Some(rest) = line.strip_prefix("partest ") else {
                continue;
            };
            let rest = rest.split(" || ").next().unwrap();
            let args: Vec<String> = rest
                .split_whitespace()
                .map(|a| a.trim_matches('"').to_string())
                .filter(|a| !a.starts_with('#'))
                .collect();
            let mut cmd = partest(&dir);
            cmd.args(&args).arg("--help");
            let out = cmd.output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: partest {}\n{}",
                path.display(),
                args.join(" "),
                both(&out)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "only {checked} partest commands found in examples/ci"
    );
}

/// `[run] timings`: a plain run writes the file back merged — what it ran
/// updated, other entries kept — and a corrupt one is a usage error.
#[test]
fn the_run_table_s_timings_file_is_merged_not_replaced() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[run]\ntimings = \"ci/timings.json\"\n[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n",
    );
    p.file("t/a.sh", "true\n");
    p.file("t/b.sh", "true\n");
    p.file("ci/timings.json", r#"{"t/a.sh": 4.0, "t/gone.sh": 1.5}"#);
    let out = p.run(&["run", "-n", "1", "t/a.sh"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("ci/timings.json")).unwrap())
            .unwrap();
    let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["t/a.sh", "t/gone.sh"], "{t}");
    assert!(t["t/a.sh"].as_f64().unwrap() < 2.1, "{t}");
    assert_eq!(t["t/gone.sh"].as_f64(), Some(1.5));
    p.file("ci/timings.json", "{not json");
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("ci/timings.json"), "{}", both(&out));
}

/// More shards than tests: the empty shards pass (exit 0), the others run.
#[test]
fn an_empty_shard_of_a_non_empty_selection_passes() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    p.file("t/only.sh", "true\n");
    let codes: Vec<Option<i32>> = (1..=3)
        .map(|k| p.run(&["run", "--shard", &format!("{k}/3")]).status.code())
        .collect();
    assert_eq!(codes, [Some(0), Some(0), Some(0)]);
    let out = p.run(&["run", "--shard", "2/3", "nothing-matches"]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
}
