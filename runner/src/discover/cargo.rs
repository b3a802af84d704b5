//! The cargo adapter, as nextest does it: build the test binaries once with
//! `cargo test --no-run`, list each with `--list --format terse`, and run one
//! process per test with `--exact NAME --nocapture`, with the env and the
//! dynamic library path `cargo test` gives it. A binary that cannot list its
//! tests (a custom harness) runs whole, as one unit; doctests, when asked
//! for, run as one unit per library (`cargo test --doc -p NAME`).
//!
//! Every child (cargo, rustc, the listings) goes through the bounded
//! spawner: its own process group, a deadline, stopped on Ctrl-C.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{Adapter, DiscoverOptions, ProcessAdapter, Runs};
use crate::config::{AdapterKind, CargoBuild, Config};
use crate::error::{Error, Result};
use crate::exec::Interrupts;
use crate::exec::bounded::{BoundedCommand, BoundedOutput, Bounds};
use crate::model::{Invocation, ProcessEnd, RunIgnored, TestCase, TestMeta};

pub struct CargoAdapter {
    root: PathBuf,
    build: CargoBuild,
    custom_harness: Vec<String>,
    build_timeout: std::time::Duration,
    list_timeout: std::time::Duration,
    kill_grace: std::time::Duration,
    run_ignored: RunIgnored,
    interrupts: Option<Arc<Interrupts>>,
    binaries: Vec<TestBinary>,
    /// Libraries whose doctests were not run (without `--doctests`).
    doctests_not_run: usize,
}

/// How a binary's tests are run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Harness {
    /// libtest (or one that speaks its `--list`/`--exact`): a process per test.
    Libtest,
    /// Runs whole, as one unit; the reason is in the warning.
    Whole,
    /// `cargo test --doc -p PACKAGE`, as one unit.
    Doctests { package: String },
}

/// One test executable cargo built (or a package's doctests).
#[derive(Clone, Debug)]
struct TestBinary {
    path: PathBuf,
    /// The package's folder: cargo runs tests from there, and so do we.
    cwd: PathBuf,
    /// What `cargo test` sets at run time and tests read with `std::env::var`.
    env: Vec<(String, String)>,
    meta: Arc<TestMeta>,
    harness: Harness,
}

/// The parts of cargo's JSON messages that we read.
#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    package_id: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    target: Option<Target>,
    profile: Option<Profile>,
    executable: Option<PathBuf>,
    /// build-script-executed: `cargo::rustc-link-search` paths.
    #[serde(default)]
    linked_paths: Vec<String>,
    /// build-script-executed: `cargo::rustc-env` pairs.
    #[serde(default)]
    env: Vec<(String, String)>,
    #[serde(default)]
    out_dir: Option<PathBuf>,
}

#[derive(Clone, Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
    #[serde(default)]
    src_path: Option<PathBuf>,
    #[serde(default)]
    doctest: bool,
}

#[derive(Deserialize)]
struct Profile {
    test: bool,
}

/// `cargo metadata --no-deps`: what cargo test sets as `CARGO_PKG_*`.
#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    #[serde(default)]
    authors: Vec<String>,
    description: Option<String>,
    homepage: Option<String>,
    repository: Option<String>,
    license: Option<String>,
    license_file: Option<String>,
    rust_version: Option<String>,
    readme: Option<String>,
    manifest_path: PathBuf,
    #[serde(default)]
    targets: Vec<Target>,
}

/// What a build script told cargo, per package id.
#[derive(Default)]
struct BuildScript {
    linked_paths: Vec<PathBuf>,
    env: Vec<(String, String)>,
    out_dir: Option<PathBuf>,
}

/// The toolchain's answers: where cargo is, and its libraries.
struct Toolchain {
    cargo: PathBuf,
    /// `rustc --print target-libdir` (host, and `--target`'s when given).
    libdirs: Vec<PathBuf>,
}

impl CargoAdapter {
    pub fn new(config: &Config, options: &DiscoverOptions) -> Result<CargoAdapter> {
        let table = &config.file.cargo;
        let kill_grace = config
            .file
            .run
            .kill_grace
            .map_or(std::time::Duration::from_secs(2), |s| s.0);
        Ok(CargoAdapter {
            root: config.root.clone(),
            build: CargoBuild::new(table, &options.cargo),
            custom_harness: table.custom_harness.clone(),
            build_timeout: table.build_timeout.0,
            list_timeout: table.list_timeout.0,
            kill_grace,
            run_ignored: options.run_ignored,
            interrupts: options.interrupts.clone(),
            binaries: Vec::new(),
            doctests_not_run: 0,
        })
    }

    fn bounds(&self, timeout: std::time::Duration, cap: usize) -> Bounds {
        Bounds {
            timeout,
            kill_grace: self.kill_grace,
            output_cap: cap,
        }
    }

    /// Runs a discovery child to its end; an interrupt is [`Error::Interrupted`].
    fn run_child(&self, cmd: &BoundedCommand, bounds: Bounds, what: &str) -> Result<BoundedOutput> {
        let out = cmd.run(bounds, self.interrupts.as_deref()).map_err(|e| {
            Error::setup(format!("cannot run {what} in {}: {e}", self.root.display()))
        })?;
        if out.end == ProcessEnd::Interrupted {
            return Err(Error::Interrupted);
        }
        Ok(out)
    }

    fn cargo_program() -> OsString {
        std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
    }

    fn toolchain(&self) -> Result<Toolchain> {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let print = |target: Option<&str>| -> Result<Vec<String>> {
            let mut cmd = BoundedCommand::new(&rustc, &self.root)
                .inheriting_env()
                .args(["--print", "sysroot", "--print", "target-libdir"]);
            if let Some(t) = target {
                cmd = cmd.args(["--target", t]);
            }
            let out = self.run_child(
                &cmd,
                self.bounds(std::time::Duration::from_secs(60), 1 << 16),
                "rustc --print target-libdir",
            )?;
            if out.end != ProcessEnd::Exited(0) {
                return Err(Error::setup(format!(
                    "`rustc --print target-libdir` failed in {} ({:?}): {}",
                    self.root.display(),
                    out.end,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect())
        };
        let host = print(None)?;
        let sysroot = PathBuf::from(host.first().cloned().unwrap_or_default());
        let mut libdirs: Vec<PathBuf> = host.get(1).map(PathBuf::from).into_iter().collect();
        if let Some(t) = &self.build.target {
            libdirs.extend(print(Some(t))?.get(1).map(PathBuf::from));
        }
        libdirs.dedup();
        // As cargo sets CARGO for the tests it runs: the toolchain's own
        // cargo, not a rustup proxy on PATH.
        let cargo = match std::env::var_os("CARGO") {
            Some(c) => PathBuf::from(c),
            None if sysroot.join("bin/cargo").is_file() => sysroot.join("bin/cargo"),
            None => PathBuf::from("cargo"),
        };
        Ok(Toolchain { cargo, libdirs })
    }

    fn metadata(&self) -> Result<Metadata> {
        let mut cmd = BoundedCommand::new(Self::cargo_program(), &self.root)
            .inheriting_env()
            .args(["metadata", "--no-deps", "--format-version", "1"]);
        if let Some(path) = &self.build.manifest_path {
            cmd = cmd.args([OsString::from("--manifest-path"), path.clone().into()]);
        }
        let flags = [
            (self.build.locked, "--locked"),
            (self.build.offline, "--offline"),
            (self.build.frozen, "--frozen"),
        ];
        cmd = cmd.args(flags.iter().filter(|(on, _)| *on).map(|(_, f)| *f));
        let out = self.run_child(
            &cmd,
            self.bounds(self.build_timeout, 256 << 20),
            "`cargo metadata`",
        )?;
        if out.end != ProcessEnd::Exited(0) {
            return Err(Error::setup(format!(
                "`cargo metadata` failed in {} ({:?}): {}",
                self.root.display(),
                out.end,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::setup(format!("cannot read `cargo metadata`'s output: {e}")))
    }

    fn build(&mut self) -> Result<()> {
        // `cargo metadata` and `rustc --print` run while cargo builds: they
        // add nothing to the wait (errors of a broken manifest come once,
        // from the build).
        let (metadata, toolchain, out) = std::thread::scope(|s| {
            let metadata = s.spawn(|| self.metadata());
            let toolchain = s.spawn(|| self.toolchain());
            let out = self.run_build();
            let joined =
                |what: &str| Error::setup(format!("discovery: the {what} thread panicked"));
            (
                metadata.join().map_err(|_| joined("cargo metadata")),
                toolchain.join().map_err(|_| joined("rustc")),
                out,
            )
        });
        let (args, out) = out?;
        self.check_build(&args, &out)?;
        let metadata = metadata??;
        let toolchain = toolchain??;
        self.read_build(metadata, toolchain, out)
    }

    /// Runs `cargo test --no-run` with its JSON messages on stdout.
    fn run_build(&self) -> Result<(Vec<String>, BoundedOutput)> {
        let args = self.build.build_args();
        let cmd = BoundedCommand::new(Self::cargo_program(), &self.root)
            .inheriting_env()
            .stderr_inherited()
            .args([
                "test",
                "--no-run",
                "--message-format",
                "json-render-diagnostics",
            ])
            .args(&args);
        let out = self.run_child(
            &cmd,
            self.bounds(self.build_timeout, 1 << 30),
            "`cargo test --no-run`",
        )?;
        Ok((args, out))
    }

    fn check_build(&self, args: &[String], out: &BoundedOutput) -> Result<()> {
        match out.end {
            ProcessEnd::Exited(0) => {}
            ProcessEnd::TimedOut => {
                return Err(Error::setup(format!(
                    "`cargo test --no-run {}` did not finish within [cargo] build-timeout ({:?}) in {}; \
                     its process group was killed",
                    args.join(" "),
                    self.build_timeout,
                    self.root.display()
                )));
            }
            end => {
                return Err(Error::setup(format!(
                    "`cargo test --no-run {}` failed in {} ({end:?}); its errors are above",
                    args.join(" "),
                    self.root.display()
                )));
            }
        }
        Ok(())
    }

    /// The test binaries of a successful build, with their env.
    fn read_build(
        &mut self,
        metadata: Metadata,
        toolchain: Toolchain,
        out: BoundedOutput,
    ) -> Result<()> {
        let packages: HashMap<&str, &Package> = metadata
            .packages
            .iter()
            .map(|p| (p.id.as_str(), p))
            .collect();
        let mut scripts: HashMap<String, BuildScript> = HashMap::new();
        let mut artifacts = Vec::new();
        for line in out.stdout.split(|b| *b == b'\n') {
            let Ok(msg) = serde_json::from_slice::<Message>(line) else {
                continue;
            };
            match msg.reason.as_str() {
                "build-script-executed" => {
                    let script = scripts.entry(msg.package_id.clone()).or_default();
                    script.linked_paths.extend(
                        msg.linked_paths.iter().map(|p| {
                            PathBuf::from(p.split_once('=').map_or(p.as_str(), |(_, v)| v))
                        }),
                    );
                    script.env.extend(msg.env.iter().cloned());
                    script.out_dir = msg.out_dir.clone();
                }
                "compiler-artifact"
                    if msg.profile.as_ref().is_some_and(|p| p.test)
                        && msg.executable.is_some()
                        && msg.target.is_some() =>
                {
                    artifacts.push(msg);
                }
                _ => {}
            }
        }

        let target_dir = metadata.target_directory.clone();
        // Built binaries (`bin` targets), for CARGO_BIN_EXE_<name> as nextest sets it.
        let mut binaries = Vec::new();
        let mut doctest_packages: Vec<(String, PathBuf)> = Vec::new();
        for msg in artifacts {
            let (Some(path), Some(target)) = (msg.executable.clone(), msg.target.clone()) else {
                continue;
            };
            let package = packages.get(msg.package_id.as_str()).copied();
            let package_name = package
                .map(|p| p.name.clone())
                .or_else(|| package_name(&msg.package_id).map(str::to_string))
                .unwrap_or_else(|| target.name.clone());
            let kind = target.kind.first().cloned().unwrap_or_else(|| "lib".into());
            let binary_id = binary_id(&package_name, &target);
            let cwd = msg
                .manifest_path
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.root.clone());
            let script = scripts.get(&msg.package_id);
            let mut env = package_env(package, &package_name, &cwd, &toolchain.cargo);
            env.push(("CARGO_CRATE_NAME".into(), target.name.replace('-', "_")));
            if kind == "bin" {
                env.push(("CARGO_BIN_NAME".into(), target.name.clone()));
            }
            if let Some(bin_dir) = path.parent().and_then(Path::parent) {
                // As nextest: the package's binaries, by name; and the
                // integration tests' scratch dir.
                for t in package.map(|p| p.targets.as_slice()).unwrap_or_default() {
                    if t.kind.iter().any(|k| k == "bin") {
                        env.push((
                            format!("CARGO_BIN_EXE_{}", t.name),
                            bin_dir.join(&t.name).display().to_string(),
                        ));
                    }
                }
                if kind == "test" {
                    env.push((
                        "CARGO_TARGET_TMPDIR".into(),
                        bin_dir.join("tmp").display().to_string(),
                    ));
                }
            }
            if let Some(script) = script {
                if let Some(out_dir) = &script.out_dir {
                    env.push(("OUT_DIR".into(), out_dir.display().to_string()));
                }
                env.extend(script.env.iter().cloned());
            }
            env.push((
                "LD_LIBRARY_PATH".into(),
                library_path(&path, &target_dir, &scripts, &toolchain.libdirs),
            ));
            let file = target
                .src_path
                .as_deref()
                .map(|p| {
                    p.strip_prefix(&self.root)
                        .unwrap_or(p)
                        .display()
                        .to_string()
                })
                .unwrap_or_default();
            let is_lib = matches!(kind.as_str(), "lib" | "rlib" | "dylib" | "proc-macro");
            let lib_target = package.and_then(|p| {
                p.targets.iter().find(|t| {
                    t.kind
                        .iter()
                        .any(|k| k == "lib" || k == "proc-macro" || k == "rlib")
                })
            });
            if is_lib && lib_target.is_none_or(|t| t.doctest) {
                doctest_packages.push((package_name.clone(), cwd.clone()));
            }
            let harness = if self.custom_harness.contains(&binary_id) {
                Harness::Whole
            } else {
                Harness::Libtest
            };
            binaries.push(TestBinary {
                path,
                cwd,
                env,
                meta: Arc::new(TestMeta {
                    package: package_name,
                    binary: target.name.clone(),
                    binary_id,
                    kind,
                    file,
                }),
                harness,
            });
        }
        binaries.sort_by(|a, b| a.meta.binary_id.cmp(&b.meta.binary_id));
        binaries.dedup_by(|a, b| a.path == b.path);
        doctest_packages.sort();
        doctest_packages.dedup();
        if self.build.doctests {
            for (package, cwd) in doctest_packages {
                binaries.push(TestBinary {
                    path: toolchain.cargo.clone(),
                    cwd,
                    env: Vec::new(),
                    meta: Arc::new(TestMeta {
                        binary_id: format!("{package}::doctests"),
                        binary: "doctests".into(),
                        kind: "doctest".into(),
                        file: String::new(),
                        package: package.clone(),
                    }),
                    harness: Harness::Doctests { package },
                });
            }
        } else {
            self.doctests_not_run = doctest_packages.len();
        }
        self.binaries = binaries;
        Ok(())
    }

    /// Names from `--list --format terse` (`path::name: test`); benchmarks are
    /// skipped. Err: why the binary cannot list its tests.
    fn list_tests(&self, binary: &TestBinary, ignored_only: bool) -> Result<Vec<String>, String> {
        let mut cmd = BoundedCommand::new(&binary.path, &binary.cwd)
            .inheriting_env()
            .envs(binary.env.iter().map(|(k, v)| (k, v)))
            .args(["--list", "--format", "terse"]);
        if ignored_only {
            cmd = cmd.args(["--ignored"]);
        }
        let out = match self.run_child(
            &cmd,
            self.bounds(self.list_timeout, 64 << 20),
            "a test binary",
        ) {
            Ok(out) => out,
            Err(Error::Interrupted) => return Err("interrupted".into()),
            Err(e) => return Err(e.to_string()),
        };
        let stderr = || {
            let text = String::from_utf8_lossy(&out.stderr);
            let text = text.trim();
            let short: String = text.chars().take(400).collect();
            if short.is_empty() {
                String::new()
            } else {
                format!(": {short}")
            }
        };
        match out.end {
            ProcessEnd::Exited(0) => {}
            ProcessEnd::TimedOut => {
                return Err(format!(
                    "`--list --format terse` did not answer within [cargo] list-timeout ({:?})",
                    self.list_timeout
                ));
            }
            end => {
                return Err(format!(
                    "`--list --format terse` failed ({end:?}){}",
                    stderr()
                ));
            }
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut names = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(name) = line.strip_suffix(": test") {
                names.push(name.to_string());
            } else if line.ends_with(": benchmark") || line.ends_with(": bench") {
            } else {
                return Err(format!(
                    "its `--list --format terse` output is not libtest's (first odd line: {:?})",
                    line.chars().take(120).collect::<String>()
                ));
            }
        }
        Ok(names)
    }
}

/// `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and `CARGO`, as `cargo test` sets them.
fn package_env(
    package: Option<&Package>,
    name: &str,
    dir: &Path,
    cargo: &Path,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("CARGO".to_string(), cargo.display().to_string()),
        ("CARGO_MANIFEST_DIR".to_string(), dir.display().to_string()),
        ("CARGO_PKG_NAME".to_string(), name.to_string()),
    ];
    let Some(p) = package else {
        return env;
    };
    env.push((
        "CARGO_MANIFEST_PATH".into(),
        p.manifest_path.display().to_string(),
    ));
    let (core, pre) = p.version.split_once('-').unwrap_or((&p.version, ""));
    let core = core.split_once('+').map_or(core, |(c, _)| c);
    let mut parts = core.split('.');
    env.push(("CARGO_PKG_VERSION".into(), p.version.clone()));
    for key in ["MAJOR", "MINOR", "PATCH"] {
        env.push((
            format!("CARGO_PKG_VERSION_{key}"),
            parts.next().unwrap_or("0").to_string(),
        ));
    }
    let pre = pre.split_once('+').map_or(pre, |(p, _)| p);
    env.push(("CARGO_PKG_VERSION_PRE".into(), pre.to_string()));
    env.push(("CARGO_PKG_AUTHORS".into(), p.authors.join(":")));
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    env.push(("CARGO_PKG_DESCRIPTION".into(), opt(&p.description)));
    env.push(("CARGO_PKG_HOMEPAGE".into(), opt(&p.homepage)));
    env.push(("CARGO_PKG_REPOSITORY".into(), opt(&p.repository)));
    env.push(("CARGO_PKG_LICENSE".into(), opt(&p.license)));
    env.push(("CARGO_PKG_LICENSE_FILE".into(), opt(&p.license_file)));
    env.push(("CARGO_PKG_RUST_VERSION".into(), opt(&p.rust_version)));
    env.push(("CARGO_PKG_README".into(), opt(&p.readme)));
    env
}

/// The dynamic library path `cargo test` gives a test binary: its `deps`
/// and profile folders (and the host's, for a cross build), the build
/// scripts' `rustc-link-search` folders inside the target dir (cargo keeps
/// only those), the toolchain's target libraries (`libstd-*.so` for
/// proc-macro crates' tests and `prefer-dynamic`), then the user's own.
fn library_path(
    executable: &Path,
    target_dir: &Path,
    scripts: &HashMap<String, BuildScript>,
    libdirs: &[PathBuf],
) -> String {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(deps) = executable.parent() {
        dirs.push(deps.to_path_buf());
        if let Some(profile) = deps.parent() {
            dirs.push(profile.to_path_buf());
            if let Some(name) = profile.file_name() {
                let host = target_dir.join(name);
                dirs.push(host.join("deps"));
                dirs.push(host);
            }
        }
    }
    let mut linked: Vec<&PathBuf> = scripts
        .values()
        .flat_map(|s| &s.linked_paths)
        .filter(|p| p.starts_with(target_dir))
        .collect();
    linked.sort();
    dirs.extend(linked.into_iter().cloned());
    dirs.extend(libdirs.iter().cloned());
    if let Some(user) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&user));
    }
    let mut seen = HashSet::new();
    dirs.retain(|d| !d.as_os_str().is_empty() && seen.insert(d.clone()));
    std::env::join_paths(dirs)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `path+file:///x/fixture#0.1.0`, `path+file:///x#fixture@0.1.0` or the
/// older `fixture 0.1.0 (path+file:///x)`.
fn package_name(package_id: &str) -> Option<&str> {
    if let Some((url, fragment)) = package_id.rsplit_once('#') {
        return match fragment.split_once('@') {
            Some((name, _)) => Some(name),
            None => url.rsplit('/').next(),
        };
    }
    package_id.split_whitespace().next()
}

fn binary_id(package: &str, target: &Target) -> String {
    let kind = target.kind.first().map(String::as_str).unwrap_or("lib");
    match kind {
        "lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro" => package.to_string(),
        "bin" => format!("{package}::bin/{}", target.name),
        "test" => format!("{package}::{}", target.name),
        other => format!("{package}::{other}/{}", target.name),
    }
}

impl Adapter for CargoAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Cargo
    }

    fn discover(&mut self) -> Result<Vec<TestCase>> {
        self.build()?;
        let mut tests = Vec::new();
        let mut whole: Vec<(usize, String)> = Vec::new();
        for (index, binary) in self.binaries.iter().enumerate() {
            if binary.harness != Harness::Libtest {
                whole.push((index, String::new()));
                continue;
            }
            let listed = self
                .list_tests(binary, true)
                .and_then(|ignored| Ok((ignored, self.list_tests(binary, false)?)));
            let (ignored, all) = match listed {
                Ok(lists) => lists,
                Err(why) if why == "interrupted" => return Err(Error::Interrupted),
                Err(why) => {
                    eprintln!(
                        "partest: warning: test binary {} ({}) cannot list its tests: {why}; \
                         it runs whole, as one test (a custom harness? name it in [cargo] \
                         custom-harness to skip the listing)",
                        binary.meta.binary_id,
                        binary.path.display()
                    );
                    whole.push((index, why));
                    continue;
                }
            };
            let ignored: HashSet<String> = ignored.into_iter().collect();
            for name in all {
                let is_ignored = ignored.contains(&name);
                if self.run_ignored == RunIgnored::Only && !is_ignored {
                    continue;
                }
                tests.push(TestCase {
                    name: format!("{} {name}", binary.meta.binary_id),
                    target: name,
                    binary: index as u32,
                    serial_marker: false,
                    ignored: is_ignored && self.run_ignored == RunIgnored::Default,
                    file: 0,
                    position: tests.len() as u32,
                    meta: binary.meta.clone(),
                    markers: Vec::new(),
                    rank: 0,
                });
            }
        }
        if self.run_ignored != RunIgnored::Only {
            for (index, _) in whole {
                let binary = &self.binaries[index];
                tests.push(TestCase {
                    name: binary.meta.binary_id.clone(),
                    target: String::new(),
                    binary: index as u32,
                    serial_marker: false,
                    ignored: false,
                    file: 0,
                    position: tests.len() as u32,
                    meta: binary.meta.clone(),
                    markers: Vec::new(),
                    rank: 0,
                });
            }
        }
        Ok(tests)
    }

    fn note(&self) -> Option<String> {
        (self.doctests_not_run > 0).then(|| {
            format!(
                "doctests not run ({} {}; --doctests runs them)",
                self.doctests_not_run,
                if self.doctests_not_run == 1 {
                    "library has them"
                } else {
                    "libraries have them"
                }
            )
        })
    }

    fn runs(&self) -> Runs<'_> {
        Runs::Processes(self)
    }
}

impl ProcessAdapter for CargoAdapter {
    fn invocation(&self, test: &TestCase) -> Invocation {
        let binary = &self.binaries[test.binary as usize];
        let args: Vec<OsString> = match &binary.harness {
            Harness::Libtest if !test.target.is_empty() => {
                let mut args: Vec<OsString> = vec![
                    "--exact".into(),
                    test.target.clone().into(),
                    "--nocapture".into(),
                ];
                if self.run_ignored != RunIgnored::Default {
                    args.push("--include-ignored".into());
                }
                args
            }
            Harness::Libtest | Harness::Whole => Vec::new(),
            Harness::Doctests { package } => {
                let mut args: Vec<OsString> = ["test", "--doc", "--package", package.as_str()]
                    .into_iter()
                    .map(OsString::from)
                    .collect();
                args.extend(self.build.compile_args().into_iter().map(OsString::from));
                if self.run_ignored != RunIgnored::Default {
                    args.push("--".into());
                    args.push("--include-ignored".into());
                }
                args
            }
        };
        Invocation {
            program: binary.path.clone().into(),
            args,
            cwd: binary.cwd.clone(),
            env: binary.env.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_from_every_id_format() {
        assert_eq!(
            package_name("path+file:///w/fixture#0.1.0"),
            Some("fixture")
        );
        assert_eq!(
            package_name("path+file:///w/crates/x#fixture@0.1.0"),
            Some("fixture")
        );
        assert_eq!(
            package_name("fixture 0.1.0 (path+file:///w)"),
            Some("fixture")
        );
    }

    #[test]
    fn binary_ids_read_like_nextest() {
        let t = |kind: &str, name: &str| Target {
            name: name.into(),
            kind: vec![kind.into()],
            src_path: None,
            doctest: false,
        };
        assert_eq!(binary_id("fx", &t("lib", "fx")), "fx");
        assert_eq!(
            binary_id("fx", &t("test", "integration")),
            "fx::integration"
        );
        assert_eq!(binary_id("fx", &t("bin", "tool")), "fx::bin/tool");
    }

    #[test]
    fn library_path_has_deps_linked_dirs_inside_target_and_the_toolchain() {
        let mut scripts = HashMap::new();
        scripts.insert(
            "p".to_string(),
            BuildScript {
                linked_paths: vec!["/t/debug/build/x/out".into(), "/usr/lib/outside".into()],
                ..BuildScript::default()
            },
        );
        let path = library_path(
            Path::new("/t/debug/deps/fx-123"),
            Path::new("/t"),
            &scripts,
            &[PathBuf::from(
                "/sysroot/lib/rustlib/x86_64-unknown-linux-gnu/lib",
            )],
        );
        let dirs: Vec<&str> = path.split(':').collect();
        assert_eq!(
            &dirs[..4],
            [
                "/t/debug/deps",
                "/t/debug",
                "/t/debug/build/x/out",
                "/sysroot/lib/rustlib/x86_64-unknown-linux-gnu/lib"
            ]
        );
        assert!(!path.contains("outside"), "{path}");
    }

    #[test]
    fn cargo_pkg_variables_from_metadata() {
        let p: Package = serde_json::from_value(serde_json::json!({
            "id": "x", "name": "fx", "version": "1.2.3-beta.1+build",
            "authors": ["A <a@x>", "B"], "description": "d", "manifest_path": "/w/Cargo.toml",
        }))
        .unwrap();
        let env: HashMap<String, String> =
            package_env(Some(&p), "fx", Path::new("/w"), Path::new("/c/cargo"))
                .into_iter()
                .collect();
        assert_eq!(env["CARGO_PKG_VERSION"], "1.2.3-beta.1+build");
        assert_eq!(env["CARGO_PKG_VERSION_MAJOR"], "1");
        assert_eq!(env["CARGO_PKG_VERSION_PATCH"], "3");
        assert_eq!(env["CARGO_PKG_VERSION_PRE"], "beta.1");
        assert_eq!(env["CARGO_PKG_AUTHORS"], "A <a@x>:B");
        assert_eq!(env["CARGO_PKG_DESCRIPTION"], "d");
        assert_eq!(env["CARGO"], "/c/cargo");
        assert_eq!(env["CARGO_PKG_HOMEPAGE"], "");
    }
}
