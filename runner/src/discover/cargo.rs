//! The cargo adapter, as nextest does it: build the test binaries once with
//! `cargo test --no-run`, list each with `--list --format terse`, and run one
//! process per test with `--exact NAME --nocapture`.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::{Adapter, DiscoverOptions, Invocation, TestCase};
use crate::config::{AdapterKind, Config};
use crate::error::{Error, Result};

pub struct CargoAdapter {
    root: PathBuf,
    build_args: Vec<String>,
    run_ignored: bool,
    binaries: Vec<TestBinary>,
}

/// One test executable cargo built.
#[derive(Clone, Debug)]
struct TestBinary {
    /// `package` for a lib's unit tests, `package::target` for the others.
    id: String,
    path: PathBuf,
    /// The package's folder: cargo runs tests from there, and so do we.
    cwd: PathBuf,
    /// What `cargo test` sets at run time and tests read with `std::env::var`.
    env: Vec<(String, String)>,
}

/// The parts of cargo's `compiler-artifact` message that we read.
#[derive(Deserialize)]
struct Artifact {
    reason: String,
    #[serde(default)]
    package_id: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    target: Option<Target>,
    profile: Option<Profile>,
    executable: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

#[derive(Deserialize)]
struct Profile {
    test: bool,
}

impl CargoAdapter {
    pub fn new(config: &Config, options: &DiscoverOptions) -> CargoAdapter {
        CargoAdapter {
            root: config.root.clone(),
            build_args: config.file.cargo.args.clone(),
            run_ignored: options.run_ignored,
            binaries: Vec::new(),
        }
    }

    fn build(&self) -> Result<Vec<TestBinary>> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(&cargo)
            .args([
                "test",
                "--no-run",
                "--message-format",
                "json-render-diagnostics",
            ])
            .args(&self.build_args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| {
                Error::setup(format!(
                    "cannot run `cargo test --no-run` in {}: {e}",
                    self.root.display()
                ))
            })?;
        if !output.status.success() {
            return Err(Error::setup(format!(
                "`cargo test --no-run` failed in {} ({}); its errors are above",
                self.root.display(),
                output.status
            )));
        }
        let mut binaries = Vec::new();
        for line in output.stdout.split(|b| *b == b'\n') {
            let Ok(artifact) = serde_json::from_slice::<Artifact>(line) else {
                continue;
            };
            if artifact.reason != "compiler-artifact" || !artifact.profile.is_some_and(|p| p.test) {
                continue;
            }
            let (Some(path), Some(target)) = (artifact.executable, artifact.target) else {
                continue;
            };
            let package = package_name(&artifact.package_id)
                .unwrap_or(&target.name)
                .to_string();
            let id = binary_id(&package, &target);
            let cwd = artifact
                .manifest_path
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.root.clone());
            let env = vec![
                (
                    "CARGO_MANIFEST_DIR".to_string(),
                    cwd.to_string_lossy().into_owned(),
                ),
                ("CARGO_PKG_NAME".to_string(), package.clone()),
                (
                    "CARGO_CRATE_NAME".to_string(),
                    target.name.replace('-', "_"),
                ),
            ];
            binaries.push(TestBinary { id, path, cwd, env });
        }
        binaries.sort_by(|a, b| a.id.cmp(&b.id));
        binaries.dedup_by(|a, b| a.path == b.path);
        Ok(binaries)
    }
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

/// Names from `--list --format terse` (`path::name: test`); benchmarks are skipped.
fn list_tests(binary: &TestBinary, ignored_only: bool) -> Result<Vec<String>> {
    let mut cmd = Command::new(&binary.path);
    cmd.args(["--list", "--format", "terse"])
        .current_dir(&binary.cwd)
        .stdin(Stdio::null());
    if ignored_only {
        cmd.arg("--ignored");
    }
    let output = cmd.output().map_err(|e| {
        Error::setup(format!(
            "cannot list tests of {}: {e}",
            binary.path.display()
        ))
    })?;
    if !output.status.success() {
        return Err(Error::setup(format!(
            "listing the tests of {} failed ({}): {}",
            binary.path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect())
}

impl Adapter for CargoAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Cargo
    }

    fn discover(&mut self) -> Result<Vec<TestCase>> {
        self.binaries = self.build()?;
        let mut tests = Vec::new();
        for (index, binary) in self.binaries.iter().enumerate() {
            let ignored: HashSet<String> = list_tests(binary, true)?.into_iter().collect();
            for name in list_tests(binary, false)? {
                let is_ignored = ignored.contains(&name);
                tests.push(TestCase {
                    name: format!("{} {name}", binary.id),
                    target: name,
                    binary: index as u32,
                    serial_marker: false,
                    ignored: is_ignored && !self.run_ignored,
                    file: 0,
                    position: tests.len() as u32,
                });
            }
        }
        Ok(tests)
    }

    fn invocation(&self, test: &TestCase) -> Invocation {
        let binary = &self.binaries[test.binary as usize];
        let mut args: Vec<OsString> = vec![
            "--exact".into(),
            test.target.clone().into(),
            "--nocapture".into(),
        ];
        if self.run_ignored {
            args.push("--include-ignored".into());
        }
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
        };
        assert_eq!(binary_id("fx", &t("lib", "fx")), "fx");
        assert_eq!(
            binary_id("fx", &t("test", "integration")),
            "fx::integration"
        );
        assert_eq!(binary_id("fx", &t("bin", "tool")), "fx::bin/tool");
    }
}
