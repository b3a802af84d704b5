//! Builds every crate under `plugins/` for `wasm32-wasip2`, in one nested
//! cargo call with its own target dir (`target/partest-guests`), and
//! embeds the built-in ones (every crate not named `test-*`) in partest.
//! `test-*` crates are partest's own hostile and probing guests: they are
//! built with the rest (sharing the SDK's compile) but only their paths are
//! recorded, for the tests; the release binary does not carry them.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());

    println!("cargo::rerun-if-env-changed=PARTEST_NO_GUESTS");
    // A directory is scanned whole, so a new plugin crate is noticed too;
    // the guests' target dir is outside plugins/, so building them does not
    // make the next build rerun this script.
    for p in ["plugins", "plugin-sdk/Cargo.toml", "plugin-sdk/src", "wit"] {
        println!("cargo::rerun-if-changed={}", root.join(p).display());
    }
    let crates = guest_crates(&plugins);

    // OUT_DIR is <target>/<profile>/build/partest-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("target"));
    let guest_target = target_dir.join("partest-guests");
    let wasm_dir = guest_target.join(TARGET).join("release");

    let skip = std::env::var_os("PARTEST_NO_GUESTS").is_some() || crates.is_empty();
    if !skip {
        if !target_installed() && !add_target_with_rustup() {
            println!(
                "cargo::error=the {TARGET} target is missing: run `rustup target add {TARGET}` \
                 (or set PARTEST_NO_GUESTS=1 to build partest without its built-in plugins)"
            );
            return;
        }
        build_guests(&plugins, &guest_target);
    }

    let mut src = String::from(
        "/// Built-in plugins: (name, component bytes).\npub const BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    if !skip {
        for c in &crates {
            let name = c.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("test-") {
                continue;
            }
            let wasm = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
            src.push_str(&format!(
                "    ({name:?}, include_bytes!({:?})),\n",
                wasm.display().to_string()
            ));
        }
    }
    src.push_str("];\n");
    src.push_str(&format!(
        "/// Where the `test-*` guests were built (tests only).\npub const GUEST_DIR: &str = {:?};\n",
        wasm_dir.display().to_string()
    ));
    std::fs::write(out_dir.join("builtin_plugins.rs"), src).unwrap();
}

/// Every directory under `plugins/` with a Cargo.toml, sorted.
fn guest_crates(plugins: &Path) -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(plugins)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    crates
}

fn target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
}

/// rustup installs a toolchain file's `targets` only when it installs the
/// toolchain itself, so a machine that already had the toolchain lacks the
/// target. Add it the way cargo-component does: through rustup, for the
/// toolchain this build runs with, saying so in a warning.
fn add_target_with_rustup() -> bool {
    let rustup = std::env::var_os("RUSTUP").unwrap_or_else(|| "rustup".into());
    let mut cmd = Command::new(rustup);
    cmd.args(["target", "add", TARGET]);
    if let Some(toolchain) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        cmd.arg("--toolchain").arg(toolchain);
    }
    let added = matches!(cmd.output(), Ok(out) if out.status.success()) && target_installed();
    if added {
        println!(
            "cargo::warning=installed the {TARGET} target with `rustup target add {TARGET}` (partest's built-in plugins are built for it)"
        );
    }
    added
}

fn build_guests(plugins: &Path, guest_target: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--workspace",
        "--target",
        TARGET,
        "--target-dir",
    ])
    .arg(guest_target)
    .arg("--manifest-path")
    .arg(plugins.join("Cargo.toml"));
    // The outer build's settings are for the host crate, not for the guests
    // (clippy's wrapper above all: `cargo clippy` must not lint them as host code).
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            println!(
                "cargo::error=building the plugins in {} for {TARGET} failed ({s}); see the output above",
                plugins.display()
            );
            std::process::exit(1);
        }
        Err(e) => {
            println!("cargo::error=cannot run cargo to build the plugins: {e}");
            std::process::exit(1);
        }
    }
}
