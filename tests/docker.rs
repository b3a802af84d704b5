//! The built-in docker plugin against a real Docker engine: a container per
//! slot (image + ports) and a compose project per slot, each gone after the
//! run, after SIGINT and after kill -9 + `partest clean`; a missing engine
//! or image is one line and exit 3. The image is `partest-busybox:test`,
//! built locally from the busybox-static binary (no registry needed).
//! Without an engine the tests skip with a note; with CI=true they fail.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use partest_e2e::*;

const IMAGE: &str = "partest-busybox:e2e";

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The engine answers and the local image exists (made once from
/// busybox-static with `docker import`); else skip, or fail in CI.
fn engine() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        docker(&["info", "--format", "{{.ServerVersion}}"])
            .map_err(|e| format!("no Docker engine answers ({e}); run scripts/services.sh docker"))?;
        if docker(&["image", "inspect", IMAGE]).is_ok() {
            return Ok(());
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("busybox is not installed (apt-get install busybox-static)")?;
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::create_dir_all(root.path().join("bin")).map_err(|e| e.to_string())?;
        std::fs::copy(busybox, root.path().join("bin/busybox")).map_err(|e| e.to_string())?;
        let script = format!(
            "cd {} && for a in sh httpd sleep mkdir echo test cat; do ln -sf busybox bin/$a; done && \
             tar -c . | docker import -c 'CMD [\"/bin/sh\"]' - {IMAGE}",
            root.path().display()
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cannot build {IMAGE}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    match ready {
        Ok(()) => true,
        Err(e) => {
            assert!(!in_ci(), "CI=true but Docker is not usable: {e}");
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn compose_available() -> bool {
    let ok = docker(&["compose", "version"]).is_ok()
        || Command::new("docker-compose")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !in_ci(),
            "CI=true but neither docker compose nor docker-compose works"
        );
        eprintln!("skipping: neither `docker compose` nor `docker-compose` is installed");
    }
    ok
}

/// Containers of a run: by partest's label (image mode) or compose project.
fn containers_of(run_id: &str) -> Vec<String> {
    let mut names: Vec<String> = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=partest.run={run_id}"),
        "--format",
        "{{.Names}}",
    ])
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect();
    let projects = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.Names}}\t{{.Label \"com.docker.compose.project\"}}",
    ])
    .unwrap();
    for line in projects.lines() {
        if let Some((name, project)) = line.split_once('\t')
            && project.contains(&format!("partest_{run_id}_"))
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

fn networks_of(run_id: &str) -> Vec<String> {
    docker(&["network", "ls", "--format", "{{.Name}}"])
        .unwrap()
        .lines()
        .filter(|n| n.contains(&format!("partest_{run_id}_")))
        .map(str::to_string)
        .collect()
}

/// The HTTP server in every container answers with its hostname.
const SERVE: &str = "trap 'exit 0' TERM; mkdir -p /w; echo $HOSTNAME > /w/index.html; httpd -p 8080 -h /w; while :; do sleep 1; done";

/// Each test fetches its slot's server on its own port and records
/// `test worker container-or-project port body`.
fn project(tests: usize, plugin: &str, body: &str) -> Project {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            "[command]\ntests = [\"tests/*.sh\"]\nrun = \"bash {{}}\"\n\n[plugins.docker]\n{plugin}\n"
        ),
    );
    for i in 0..tests {
        p.file(
            &format!("tests/t{i}.sh"),
            &format!(
                r#"set -e
port=${{PARTEST_PORT_0}}
answer=
# A container may take a moment to listen: retry until its server answers.
for _ in $(seq 1 100); do
    answer=$( (exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && tail -n1 <&3) 2>/dev/null || true)
    [ -n "$answer" ] && break
    sleep 0.1
done
[ -n "$answer" ]
echo "t{i} $PARTEST_WORKER ${{PARTEST_CONTAINER:-$COMPOSE_PROJECT_NAME}} $port $answer $PARTEST_RUN_ID" > {log}/t{i}.seen
{body}
"#,
                log = log.display()
            ),
        );
    }
    p
}

fn image_plugin(port_base: u32) -> String {
    format!(
        "image = \"{IMAGE}\"\ncommand = [\"sh\", \"-c\", {SERVE:?}]\nports = [8080]\nport-base = {port_base}\n"
    )
}

fn compose_plugin(p: &Project, port_base: u32) -> String {
    p.file(
        "compose.yml",
        &format!(
            r#"version: "2.4"
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", {serve:?}]
    ports: ["127.0.0.1:${{PARTEST_PORT_BASE}}:8080"]
    healthcheck:
      test: ["CMD", "sh", "-c", "test -f /w/index.html"]
      interval: 1s
      retries: 30
"#,
            serve = SERVE.replace('$', "$$")
        ),
    );
    format!("compose-file = \"compose.yml\"\nproject = \"e2e\"\nport-base = {port_base}\n")
}

/// Asserts each slot had its own server on its own port, and returns the run id.
fn check_slots(seen: &[Vec<String>], port_base: u32) -> String {
    let mut per_worker = std::collections::BTreeMap::new();
    for row in seen {
        let (worker, owner, port, answer) = (&row[1], &row[2], &row[3], &row[4]);
        let index: u32 = worker.trim_start_matches("gw").parse().unwrap();
        assert_eq!(port, &(port_base + index * 10).to_string(), "{row:?}");
        assert!(
            owner.contains(&format!("partest_{}_{worker}", row[5])),
            "{row:?}"
        );
        let first = per_worker
            .entry(worker.clone())
            .or_insert((owner.clone(), answer.clone()));
        assert_eq!(
            first,
            &(owner.clone(), answer.clone()),
            "one server per slot"
        );
    }
    let answers: std::collections::BTreeSet<_> = per_worker.values().map(|v| &v.1).collect();
    assert_eq!(
        answers.len(),
        per_worker.len(),
        "distinct containers: {per_worker:?}"
    );
    seen[0][5].clone()
}

#[test]
fn image_mode_gives_each_slot_its_own_container_and_port_and_removes_them() {
    if !engine() {
        return;
    }
    let p = project(4, &image_plugin(23000), "sleep 0.5");
    let out = p.run(&["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let seen = seen(&p.log_dir());
    assert_eq!(seen.len(), 4);
    let id = check_slots(&seen, 23000);
    assert!(containers_of(&id).is_empty(), "{:?}", containers_of(&id));
}

#[test]
fn compose_mode_gives_each_slot_its_own_project_and_removes_them() {
    if !engine() || !compose_available() {
        return;
    }
    let p = project(4, "", "sleep 0.5");
    let plugin = compose_plugin(&p, 23100);
    p.file(
        "partest.toml",
        &format!("[command]\ntests = [\"tests/*.sh\"]\nrun = \"bash {{}}\"\n\n[plugins.docker]\n{plugin}\n"),
    );
    let out = p.run(&["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let seen = seen(&p.log_dir());
    assert_eq!(seen.len(), 4);
    let id = check_slots(&seen, 23100);
    for row in &seen {
        assert_eq!(
            row[2],
            format!("e2e_partest_{id}_{}", row[1]),
            "COMPOSE_PROJECT_NAME"
        );
    }
    assert!(containers_of(&id).is_empty(), "{:?}", containers_of(&id));
    assert!(networks_of(&id).is_empty(), "{:?}", networks_of(&id));
}

#[test]
fn sigint_mid_run_removes_every_project() {
    if !engine() || !compose_available() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    let p = project(2, "", "sleep 60");
    let plugin = compose_plugin(&p, 23200);
    p.file(
        "partest.toml",
        &format!("[command]\ntests = [\"tests/*.sh\"]\nrun = \"bash {{}}\"\n\n[plugins.docker]\n{plugin}\n"),
    );
    let (mut child, rows) = start_long_run(&p, runs.path(), 2);
    let id = rows[0][5].clone();
    assert_eq!(
        containers_of(&id).len(),
        2,
        "one container per slot during the run"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(containers_of(&id).is_empty(), "{:?}", containers_of(&id));
    assert!(networks_of(&id).is_empty(), "{:?}", networks_of(&id));
}

#[test]
fn kill_9_then_partest_clean_removes_containers_and_projects() {
    if !engine() || !compose_available() {
        return;
    }
    for compose in [false, true] {
        let runs = tempfile::tempdir().unwrap();
        let p = project(2, "", "sleep 60");
        let plugin = if compose {
            compose_plugin(&p, 23300)
        } else {
            image_plugin(23400)
        };
        p.file(
            "partest.toml",
            &format!("[command]\ntests = [\"tests/*.sh\"]\nrun = \"bash {{}}\"\n\n[plugins.docker]\n{plugin}\n"),
        );
        let (mut child, rows) = start_long_run(&p, runs.path(), 2);
        let id = rows[0][5].clone();
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        assert_eq!(containers_of(&id).len(), 2, "the crash left them");
        let clean = partest(p.path())
            .args(["clean", "--force"])
            .env("PARTEST_RUNS_DIR", runs.path())
            .env("TMPDIR", runs.path().join("tmp"))
            .output()
            .unwrap();
        assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
        assert!(stdout(&clean).contains(&id), "{}", both(&clean));
        assert!(
            containers_of(&id).is_empty(),
            "{:?}\n{}",
            containers_of(&id),
            both(&clean)
        );
        assert!(networks_of(&id).is_empty(), "{:?}", networks_of(&id));
    }
}

#[test]
fn a_missing_image_or_engine_is_one_line_and_exit_3() {
    if !engine() {
        return;
    }
    let p = project(1, "image = \"partest-no-such-image:never\"", "");
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("image partest-no-such-image:never is not on this machine"),
        "{err}"
    );

    let p = project(1, &image_plugin(23500), "");
    let out = partest(p.path())
        .arg("run")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no Docker engine answers"), "{err}");
}
