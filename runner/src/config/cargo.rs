//! `[cargo]`: how the cargo adapter builds the test binaries, and the same
//! keys merged with cargo's flags on partest's command line.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::Seconds;
use crate::model::CargoArgs;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CargoTable {
    /// Extra arguments for `cargo test --no-run`, after the keys below.
    #[serde(default)]
    pub args: Vec<String>,
    /// `-p`: the packages to test.
    #[serde(default)]
    pub package: Vec<String>,
    #[serde(default)]
    pub workspace: bool,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub all_features: bool,
    #[serde(default)]
    pub no_default_features: bool,
    #[serde(default)]
    pub release: bool,
    /// cargo's `--profile` (partest's own `--profile` is a partest profile).
    pub cargo_profile: Option<String>,
    pub target: Option<String>,
    #[serde(default)]
    pub lib: bool,
    #[serde(default)]
    pub bins: bool,
    #[serde(default)]
    pub bin: Vec<String>,
    #[serde(default)]
    pub tests: bool,
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub all_targets: bool,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub offline: bool,
    #[serde(default)]
    pub frozen: bool,
    /// Run each library's doctests as one unit (`cargo test --doc -p NAME`).
    #[serde(default)]
    pub doctests: bool,
    /// Test binaries (by binary id: `pkg::name`) run whole, as one unit,
    /// without asking them to list their tests (`harness = false` targets).
    #[serde(default)]
    pub custom_harness: Vec<String>,
    /// How long `cargo test --no-run` may take.
    #[serde(default = "default_build_timeout")]
    pub build_timeout: Seconds,
    /// How long one test binary may take to list its tests.
    #[serde(default = "default_list_timeout")]
    pub list_timeout: Seconds,
}

impl Default for CargoTable {
    fn default() -> Self {
        CargoTable {
            args: Vec::new(),
            package: Vec::new(),
            workspace: false,
            exclude: Vec::new(),
            features: Vec::new(),
            all_features: false,
            no_default_features: false,
            release: false,
            cargo_profile: None,
            target: None,
            lib: false,
            bins: false,
            bin: Vec::new(),
            tests: false,
            test: Vec::new(),
            all_targets: false,
            locked: false,
            offline: false,
            frozen: false,
            doctests: false,
            custom_harness: Vec::new(),
            build_timeout: default_build_timeout(),
            list_timeout: default_list_timeout(),
        }
    }
}

fn default_build_timeout() -> Seconds {
    Seconds(Duration::from_secs(60 * 60))
}

fn default_list_timeout() -> Seconds {
    Seconds(Duration::from_secs(60))
}

/// The build the cargo adapter asks for: `[cargo]` with the command line's
/// cargo flags laid over it (a list given on the command line replaces the
/// key's; a switch given on either side is on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CargoBuild {
    pub package: Vec<String>,
    pub workspace: bool,
    pub exclude: Vec<String>,
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    pub release: bool,
    pub cargo_profile: Option<String>,
    pub target: Option<String>,
    pub lib: bool,
    pub bins: bool,
    pub bin: Vec<String>,
    pub tests: bool,
    pub test: Vec<String>,
    pub all_targets: bool,
    pub manifest_path: Option<PathBuf>,
    pub locked: bool,
    pub offline: bool,
    pub frozen: bool,
    pub doctests: bool,
    pub args: Vec<String>,
}

impl CargoBuild {
    pub fn new(table: &CargoTable, cli: &CargoArgs) -> CargoBuild {
        let list = |cli: &Vec<String>, file: &Vec<String>| {
            if cli.is_empty() {
                file.clone()
            } else {
                cli.clone()
            }
        };
        // `-p` on the command line replaces the file's whole package selection.
        let cli_packages = !cli.package.is_empty() || cli.workspace;
        CargoBuild {
            package: if cli_packages {
                cli.package.clone()
            } else {
                table.package.clone()
            },
            workspace: cli.workspace || (!cli_packages && table.workspace),
            exclude: list(&cli.exclude, &table.exclude),
            features: list(&cli.features, &table.features),
            all_features: cli.all_features || table.all_features,
            no_default_features: cli.no_default_features || table.no_default_features,
            release: cli.release || (table.release && cli.cargo_profile.is_none()),
            cargo_profile: cli.cargo_profile.clone().or_else(|| {
                (!cli.release)
                    .then(|| table.cargo_profile.clone())
                    .flatten()
            }),
            target: cli.target.clone().or_else(|| table.target.clone()),
            lib: cli.lib || table.lib,
            bins: cli.bins || table.bins,
            bin: list(&cli.bin, &table.bin),
            tests: cli.tests || table.tests,
            test: list(&cli.test, &table.test),
            all_targets: cli.all_targets || table.all_targets,
            manifest_path: cli.manifest_path.clone(),
            locked: cli.locked || table.locked,
            offline: cli.offline || table.offline,
            frozen: cli.frozen || table.frozen,
            doctests: cli.doctests || table.doctests,
            args: table.args.clone(),
        }
    }

    /// Flags that choose how things are compiled (features, profile,
    /// target, lockfile): shared by the build and `cargo test --doc`.
    pub fn compile_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(path) = &self.manifest_path {
            a.push("--manifest-path".into());
            a.push(path.display().to_string());
        }
        for f in &self.features {
            a.push("--features".into());
            a.push(f.clone());
        }
        let flags = [
            (self.all_features, "--all-features"),
            (self.no_default_features, "--no-default-features"),
            (self.release, "--release"),
            (self.locked, "--locked"),
            (self.offline, "--offline"),
            (self.frozen, "--frozen"),
        ];
        a.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| f.to_string()),
        );
        if let Some(p) = &self.cargo_profile {
            a.push("--profile".into());
            a.push(p.clone());
        }
        if let Some(t) = &self.target {
            a.push("--target".into());
            a.push(t.clone());
        }
        a
    }

    /// Everything after `cargo test --no-run`.
    pub fn build_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for p in &self.package {
            a.push("--package".into());
            a.push(p.clone());
        }
        if self.workspace {
            a.push("--workspace".into());
        }
        for e in &self.exclude {
            a.push("--exclude".into());
            a.push(e.clone());
        }
        a.extend(self.compile_args());
        let flags = [
            (self.lib, "--lib"),
            (self.bins, "--bins"),
            (self.tests, "--tests"),
            (self.all_targets, "--all-targets"),
        ];
        a.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| f.to_string()),
        );
        for b in &self.bin {
            a.push("--bin".into());
            a.push(b.clone());
        }
        for t in &self.test {
            a.push("--test".into());
            a.push(t.clone());
        }
        a.extend(self.args.iter().cloned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_lists_replace_and_switches_add() {
        let table: CargoTable = toml::from_str(
            "package = [\"a\"]\nfeatures = [\"x\"]\nrelease = true\nargs = [\"--jobs\", \"1\"]",
        )
        .unwrap();
        let cli = CargoArgs {
            package: vec!["b".into()],
            all_features: true,
            ..CargoArgs::default()
        };
        let build = CargoBuild::new(&table, &cli);
        assert_eq!(
            build.build_args(),
            [
                "--package",
                "b",
                "--features",
                "x",
                "--all-features",
                "--release",
                "--jobs",
                "1"
            ]
        );
        // --cargo-profile on the command line wins over the file's release.
        let cli = CargoArgs {
            cargo_profile: Some("ci".into()),
            workspace: true,
            ..CargoArgs::default()
        };
        let build = CargoBuild::new(&table, &cli);
        assert!(!build.release && build.package.is_empty() && build.workspace);
        assert_eq!(build.cargo_profile.as_deref(), Some("ci"));
    }
}
