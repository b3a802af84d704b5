//! `docker`: every worker slot gets its own Docker Compose project (or, with
//! `image`, its own container), with its own block of host ports.
//!
//! ```toml
//! [plugins.docker]
//! compose-file = "docker-compose.test.yml"   # a project per slot ...
//! # image = "redis:7"; ports = [6379]       # ... or one container per slot
//! project = "app"                            # COMPOSE_PROJECT_NAME = app_partest_<run>_gw0
//! port-base = 20000                          # slot gwN: PARTEST_PORT_BASE = port-base + N * port-block
//! port-block = 10
//! ```
//!
//! The project name carries the run id, and so does every container
//! (compose's `com.docker.compose.project` label; `partest.run` for
//! `image` containers): teardown and `partest clean` touch only those.

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{
    ConfigKey, Env, Error, Plugin, Result, RunInfo, SettingGrant, Slot, config, log, process, runs,
};

/// The most `PARTEST_PORT_<i>` variables a slot gets (the block may be larger).
const MAX_PORT_VARS: u32 = 20;

#[derive(Deserialize, Clone)]
#[serde(
    crate = "partest_plugin_sdk::serde",
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    compose_file: Option<String>,
    project: Option<String>,
    #[serde(default = "default_compose")]
    compose: String,
    image: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default = "default_port_base")]
    port_base: u32,
    #[serde(default = "default_port_block")]
    port_block: u32,
    #[serde(default = "default_true")]
    wait: bool,
}

fn default_compose() -> String {
    "auto".into()
}
fn default_port_base() -> u32 {
    20000
}
fn default_port_block() -> u32 {
    10
}
fn default_true() -> bool {
    true
}

/// How compose is invoked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Compose {
    /// `docker compose` (v2): `up --wait` waits for healthchecks.
    Plugin,
    /// `docker-compose` (v1): partest polls health itself.
    Standalone,
}

struct Docker {
    s: Settings,
    compose: Option<Compose>,
}

const RUN_LABEL: &str = "partest.run";
const SLOT_LABEL: &str = "partest.slot";
const PROJECT_LABEL: &str = "com.docker.compose.project";

/// The last meaningful line a program wrote: what the user needs to read.
fn last_line(out: &process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        text.into_owned()
    };
    // docker and compose end with generic lines ("Run 'docker run --help'",
    // "Encountered errors while bringing up the project"): the cause is the
    // last line that names an error otherwise.
    let generic = |l: &str| l.starts_with("Run '") || l.contains("Encountered errors while");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rfind(|l| !generic(l) && l.to_ascii_lowercase().contains("error"))
        .or_else(|| lines.iter().rfind(|l| !generic(l)))
        .or(lines.last())
        .map_or_else(|| "(no output)".to_string(), |l| l.to_string())
}

/// `docker ...`, with a missing program said in one line.
fn exec(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<process::Output> {
    process::run(program, args, env).map_err(|e| match e {
        Error::Unavailable(m) => Error::unavailable(format!(
            "{program} is not installed or not on PATH ({m}); install Docker to use the docker plugin"
        )),
        e => e,
    })
}

fn check(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let out = exec(program, args, env)?;
    if out.status == Some(0) {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::failed(format!(
            "{program} {} failed: {}",
            args.join(" "),
            last_line(&out)
        )))
    }
}

/// The run id of a project or container name partest made:
/// `[<project>_]partest_<id>_gw<N>`.
fn owner(name: &str) -> Option<String> {
    let at = name.rfind("partest_")?;
    if at > 0 && !name[..at].ends_with('_') {
        return None;
    }
    let rest = &name[at + "partest_".len()..];
    let (id, slot) = rest.split_once('_')?;
    let n = slot.strip_prefix("gw")?;
    let ok = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| id.to_string())
}

impl Docker {
    fn project(&self, run_id: &str, slot: &Slot) -> String {
        match &self.s.project {
            Some(p) => format!("{p}_partest_{run_id}_{}", slot.name),
            None => format!("partest_{run_id}_{}", slot.name),
        }
    }

    fn port_base(&self, slot: &Slot) -> u32 {
        self.s.port_base + slot.index * self.s.port_block
    }

    /// Which compose the machine has: `docker compose`, else `docker-compose`.
    fn compose(&mut self) -> Result<Compose> {
        if let Some(c) = self.compose {
            return Ok(c);
        }
        let plugin = || {
            process::run("docker", &["compose", "version"], &[]).is_ok_and(|o| o.status == Some(0))
        };
        let standalone =
            || process::run("docker-compose", &["version"], &[]).is_ok_and(|o| o.status == Some(0));
        let c = match self.s.compose.as_str() {
            "docker compose" => Compose::Plugin,
            "docker-compose" => Compose::Standalone,
            _ if plugin() => Compose::Plugin,
            _ if standalone() => Compose::Standalone,
            _ => {
                return Err(Error::unavailable(
                    "neither `docker compose` nor `docker-compose` works here; install the compose plugin \
                     (docker-compose-plugin) or docker-compose, and grant it: allow = { process = [\"docker\", \"docker-compose\"] }",
                ));
            }
        };
        self.compose = Some(c);
        Ok(c)
    }

    /// Runs compose for one project; `args` follow `-f FILE -p PROJECT`.
    fn compose_run(
        &mut self,
        project: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<process::Output> {
        let file = self.s.compose_file.clone().unwrap_or_default();
        let (program, mut full) = match self.compose()? {
            Compose::Plugin => ("docker", vec!["compose"]),
            Compose::Standalone => ("docker-compose", vec![]),
        };
        full.extend(["-f", file.as_str(), "-p", project]);
        full.extend(args);
        exec(program, &full, env)
    }

    fn engine_check(&self) -> Result<()> {
        let out = exec("docker", &["info", "--format", "{{.ServerVersion}}"], &[])?;
        if out.status == Some(0) {
            Ok(())
        } else {
            Err(Error::unavailable(format!(
                "no Docker engine answers ({}); start dockerd (or Docker Desktop), or set DOCKER_HOST",
                last_line(&out)
            )))
        }
    }

    fn image_check(&self, image: &str) -> Result<()> {
        let out = exec(
            "docker",
            &["image", "inspect", "--format", "{{.Id}}", image],
            &[],
        )?;
        if out.status == Some(0) {
            return Ok(());
        }
        log::info(format!("pulling {image}"));
        let pulled = exec("docker", &["pull", "--quiet", image], &[])?;
        if pulled.status == Some(0) {
            Ok(())
        } else {
            Err(Error::unavailable(format!(
                "image {image} is not on this machine and cannot be pulled ({})",
                last_line(&pulled)
            )))
        }
    }

    /// With docker-compose v1 (no `--wait`): until every container of the
    /// project runs and those with a healthcheck are healthy.
    fn wait_healthy(&mut self, project: &str) -> Result<()> {
        let filter = format!("label={PROJECT_LABEL}={project}");
        loop {
            let ids = check("docker", &["ps", "-aq", "--filter", &filter], &[])?;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if ids.is_empty() {
                return Ok(());
            }
            let mut args = vec![
                "inspect",
                "--format",
                "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
            ];
            args.extend(ids.iter().copied());
            let states = check("docker", &args, &[])?;
            let mut ready = true;
            for line in states.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                match f.as_slice() {
                    [_, "running", "healthy" | "none"] => {}
                    [name, "exited" | "dead", ..] => {
                        return Err(Error::failed(format!(
                            "container {} of compose project {project} stopped while starting",
                            name.trim_start_matches('/')
                        )));
                    }
                    [name, _, "unhealthy"] => {
                        return Err(Error::failed(format!(
                            "container {} of compose project {project} is unhealthy",
                            name.trim_start_matches('/')
                        )));
                    }
                    _ => ready = false,
                }
            }
            if ready {
                return Ok(());
            }
            // The call's time limit bounds this loop (the host stops the plugin).
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn slot_env(&self, slot: &Slot) -> Vec<(String, String)> {
        let base = self.port_base(slot);
        let mut env = vec![
            ("PARTEST_PORT_BASE".to_string(), base.to_string()),
            (
                "PARTEST_PORT_COUNT".to_string(),
                self.s.port_block.to_string(),
            ),
        ];
        for i in 0..self.s.port_block.min(MAX_PORT_VARS) {
            env.push((format!("PARTEST_PORT_{i}"), (base + i).to_string()));
        }
        env
    }

    fn up_project(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        let project = self.project(&run.run_id, slot);
        let mut env = vec![("COMPOSE_PROJECT_NAME".to_string(), project.clone())];
        env.extend(self.slot_env(slot));
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let compose = self.compose()?;
        let mut args = vec!["up", "-d"];
        if compose == Compose::Plugin && self.s.wait {
            args.push("--wait");
        }
        let out = self.compose_run(&project, &pairs, &args)?;
        if out.status != Some(0) {
            return Err(Error::failed(format!(
                "compose project {project} did not start: {}",
                last_line(&out)
            )));
        }
        if compose == Compose::Standalone && self.s.wait {
            self.wait_healthy(&project)?;
        }
        Ok(env)
    }

    fn down_project(&mut self, project: &str) -> Result<()> {
        let out = self.compose_run(
            project,
            &[("COMPOSE_PROJECT_NAME", project)],
            &["down", "-v", "--remove-orphans"],
        )?;
        if out.status != Some(0) {
            return Err(Error::failed(format!(
                "compose down of {project} failed: {}",
                last_line(&out)
            )));
        }
        Ok(())
    }

    fn start_container(&self, run: &RunInfo, slot: &Slot, image: &str) -> Result<Env> {
        let name = format!("partest_{}_{}", run.run_id, slot.name);
        let base = self.port_base(slot);
        let run_label = format!("{RUN_LABEL}={}", run.run_id);
        let slot_label = format!("{SLOT_LABEL}={}", slot.name);
        let publish: Vec<String> = self
            .s
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("127.0.0.1:{}:{p}", base + i as u32))
            .collect();
        let mut args: Vec<&str> = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &run_label,
            "--label",
            &slot_label,
        ];
        for p in &publish {
            args.extend(["-p", p.as_str()]);
        }
        args.push(image);
        args.extend(self.s.command.iter().map(String::as_str));
        let out = exec("docker", &args, &[])?;
        if out.status != Some(0) {
            return Err(Error::failed(format!(
                "container {name} ({image}) did not start: {}",
                last_line(&out)
            )));
        }
        let mut env = vec![("PARTEST_CONTAINER".to_string(), name)];
        env.extend(self.slot_env(slot));
        Ok(env)
    }

    /// Containers labelled for run `run_id` (or any run), with their run ids.
    fn labelled(&self, run_id: Option<&str>) -> Result<Vec<(String, String)>> {
        let filter = match run_id {
            Some(id) => format!("label={RUN_LABEL}={id}"),
            None => format!("label={RUN_LABEL}"),
        };
        let out = check(
            "docker",
            &[
                "ps",
                "-a",
                "--filter",
                &filter,
                "--format",
                "{{.Names}}\t{{.Label \"partest.run\"}}",
            ],
            &[],
        )?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (name, id) = l.split_once('\t')?;
                (owner(name).as_deref() == Some(id)).then(|| (name.to_string(), id.to_string()))
            })
            .collect())
    }

    /// Compose projects partest made (for run `run_id`, or any), with run ids.
    fn projects(&self, run_id: Option<&str>) -> Result<Vec<(String, String)>> {
        let out = check(
            "docker",
            &[
                "ps",
                "-a",
                "--filter",
                &format!("label={PROJECT_LABEL}"),
                "--format",
                "{{.Label \"com.docker.compose.project\"}}",
            ],
            &[],
        )?;
        let mut projects: Vec<(String, String)> = out
            .lines()
            .filter_map(|p| Some((p.trim().to_string(), owner(p.trim())?)))
            .filter(|(_, id)| run_id.is_none_or(|r| r == id))
            .collect();
        projects.sort();
        projects.dedup();
        Ok(projects)
    }

    fn remove_container(&self, name: &str) -> Result<()> {
        check("docker", &["rm", "-f", "-v", name], &[]).map(drop)
    }
}

impl Plugin for Docker {
    const SUMMARY: &'static str =
        "a Docker Compose project (or a container) per slot, with its own host ports";
    /// `compose up --wait` and pulling images take minutes, not seconds.
    const CALL_TIMEOUT: Option<std::time::Duration> = Some(std::time::Duration::from_secs(300));
    const SETUP_RUN_TIMEOUT: Option<std::time::Duration> =
        Some(std::time::Duration::from_secs(300));

    fn config_keys() -> Vec<ConfigKey> {
        let key = |name: &str, default: Option<&str>, description: &str| ConfigKey {
            name: name.into(),
            description: description.into(),
            default_value: default.map(str::to_string),
        };
        vec![
            key(
                "compose-file",
                Some("(unset)"),
                "the compose file each slot starts as its own project",
            ),
            key(
                "project",
                Some("(unset)"),
                "prefix of the project names: <project>_partest_<run>_gwN",
            ),
            key(
                "compose",
                Some("\"auto\""),
                "\"docker compose\", \"docker-compose\" or \"auto\" (the plugin, else the standalone)",
            ),
            key(
                "image",
                Some("(unset)"),
                "without compose-file: the image of one container per slot",
            ),
            key(
                "ports",
                Some("[]"),
                "with image: container ports published on 127.0.0.1",
            ),
            key("command", Some("[]"), "with image: the container's command"),
            key(
                "port-base",
                Some("20000"),
                "slot gwN's ports start at port-base + N * port-block",
            ),
            key(
                "port-block",
                Some("10"),
                "host ports per slot (PARTEST_PORT_0 ...)",
            ),
            key(
                "wait",
                Some("true"),
                "wait until containers are running and healthy",
            ),
        ]
    }

    const ENV_VARS: &'static [&'static str] = &[
        "COMPOSE_PROJECT_NAME",
        "PARTEST_CONTAINER",
        "PARTEST_PORT_BASE",
        "PARTEST_PORT_COUNT",
    ];

    fn env_vars(&self) -> Vec<String> {
        let ports = (0..self.s.port_block.min(MAX_PORT_VARS)).map(|i| format!("PARTEST_PORT_{i}"));
        Self::ENV_VARS
            .iter()
            .map(|v| v.to_string())
            .chain(ports)
            .collect()
    }

    fn setting_grants() -> Vec<SettingGrant> {
        vec![SettingGrant {
            capability: "process".into(),
            setting: None,
            default_value: Some(r#"["docker", "docker-compose"]"#.into()),
        }]
    }

    fn configure() -> Result<Self> {
        let s: Settings = config()?;
        match (&s.compose_file, &s.image) {
            (None, None) => {
                return Err(Error::bad_config(
                    "set compose-file = \"docker-compose.test.yml\" (a project per slot) or image = \"...\" (a container per slot)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(Error::bad_config(
                    "compose-file and image exclude each other; set one",
                ));
            }
            _ => {}
        }
        if !["auto", "docker compose", "docker-compose"].contains(&s.compose.as_str()) {
            return Err(Error::bad_config(format!(
                "compose = {:?}: expected \"auto\", \"docker compose\" or \"docker-compose\"",
                s.compose
            )));
        }
        if let Some(p) = &s.project
            && (p.is_empty()
                || !p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                }))
        {
            return Err(Error::bad_config(format!(
                "project = {p:?}: use lowercase letters, digits, '_' and '-'"
            )));
        }
        if s.port_block == 0 || (s.ports.len() as u32) > s.port_block {
            return Err(Error::bad_config(format!(
                "port-block = {} must be at least 1 and hold every published port ({})",
                s.port_block,
                s.ports.len()
            )));
        }
        Ok(Docker { s, compose: None })
    }

    fn max_slots(&self) -> Result<Option<u32>> {
        Ok(Some(
            (65536 - self.s.port_base.min(65535)) / self.s.port_block,
        ))
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        self.engine_check()?;
        if let Some(image) = self.s.image.clone() {
            self.image_check(&image)?;
        }
        if let Some(file) = self.s.compose_file.clone() {
            let project = format!("partest_{}_check", run.run_id);
            let out = self.compose_run(&project, &[], &["config", "--services"])?;
            if out.status != Some(0) {
                return Err(Error::bad_config(format!(
                    "compose-file = {file:?}: {}",
                    last_line(&out)
                )));
            }
        }
        let last = self.s.port_base + run.workers * self.s.port_block;
        if last > 65536 {
            return Err(Error::bad_config(format!(
                "{} workers need ports up to {last}, past 65535: lower port-base or port-block",
                run.workers
            )));
        }
        Ok(Env::new())
    }

    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        match self.s.image.clone() {
            Some(image) => self.start_container(run, slot, &image),
            None => self.up_project(run, slot),
        }
    }

    fn teardown_slot(&mut self, run: &RunInfo, slot: &Slot, _run_failed: bool) -> Result<()> {
        if self.s.image.is_some() {
            for (name, _) in self.labelled(Some(&run.run_id))? {
                if name == format!("partest_{}_{}", run.run_id, slot.name) {
                    self.remove_container(&name)?;
                }
            }
            Ok(())
        } else {
            let project = self.project(&run.run_id, slot);
            self.down_project(&project)
        }
    }

    fn teardown_run(&mut self, run: &RunInfo, _run_failed: bool) -> Result<()> {
        // What a failed slot teardown left: retried once more here.
        for (name, _) in self.labelled(Some(&run.run_id))? {
            self.remove_container(&name)?;
        }
        if self.s.compose_file.is_some() {
            for (project, _) in self.projects(Some(&run.run_id))? {
                self.down_project(&project)?;
            }
        }
        Ok(())
    }

    fn sweep(&mut self, _run: &RunInfo, dry_run: bool) -> Result<Vec<String>> {
        self.sweep_dead(dry_run)
    }
}

impl Docker {
    /// What dead runs left: listed, and removed unless `dry_run`.
    fn sweep_dead(&mut self, dry_run: bool) -> Result<Vec<String>> {
        self.engine_check()?;
        let mut lines = Vec::new();
        for (name, id) in self.labelled(None)? {
            if !runs::is_dead(&id) {
                continue;
            }
            if dry_run {
                lines.push(format!("container {name} (run {id}, dead)"));
            } else {
                self.remove_container(&name)?;
                lines.push(format!("removed container {name} (run {id})"));
            }
        }
        for (project, id) in self.projects(None)? {
            if !runs::is_dead(&id) {
                continue;
            }
            if dry_run {
                lines.push(format!("compose project {project} (run {id}, dead)"));
                continue;
            }
            if self.s.compose_file.is_some() {
                self.down_project(&project)?;
            } else {
                // No compose file configured here: remove the project's containers by label.
                let filter = format!("label={PROJECT_LABEL}={project}");
                let ids = check("docker", &["ps", "-aq", "--filter", &filter], &[])?;
                for cid in ids.split_whitespace() {
                    self.remove_container(cid)?;
                }
            }
            lines.push(format!("removed compose project {project} (run {id})"));
        }
        Ok(lines)
    }
}

partest_plugin_sdk::register!(Docker);

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn only_partest_names_carry_a_run_id() {
        assert_eq!(owner("partest_ab12_gw0").as_deref(), Some("ab12"));
        assert_eq!(owner("app_partest_ab12_gw3").as_deref(), Some("ab12"));
        assert_eq!(owner("myapp_db_1"), None);
        assert_eq!(owner("apppartest_ab12_gw0"), None);
        assert_eq!(owner("partest_ab12_template"), None);
        assert_eq!(owner("partest_ab-12_gw0"), None);
    }
}
