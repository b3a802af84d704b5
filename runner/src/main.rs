//! The `partest` binary: parse the command line, call the library, map the
//! outcome to an exit code. Nothing else lives here.

use clap::Parser;

use partest::cli::{Cli, Command, PluginsCommand};
use partest::config::Config;
use partest::error::{Error, exit};

fn main() {
    std::process::exit(entry(std::env::args_os()));
}

/// The whole program, from its arguments to its exit code (shared with
/// `cargo-partest`, which drops the `partest` that cargo passes first).
pub fn entry(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("partest: error: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: &Cli) -> Result<i32, Error> {
    // A run's guard needs no project: it only waits for its partest to end.
    if let Command::Guard { run_id } = &cli.command {
        return Ok(partest::runs::guard(run_id));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::config(format!("cannot read the current directory: {e}")))?;
    let dir = match &cli.directory {
        Some(d) if d.is_absolute() => d.clone(),
        Some(d) => cwd.join(d),
        None => cwd,
    };
    if !dir.is_dir() {
        return Err(Error::config(format!(
            "-C {}: no such directory",
            dir.display()
        )));
    }
    let config = Config::load(&dir, cli.config.as_deref())?;
    match &cli.command {
        Command::Run(args) => {
            // `[run] exit-codes = "pytest"` maps the run's outcome, errors included.
            let code = partest::commands::run(&config, args).unwrap_or_else(|e| {
                eprintln!("partest: error: {e}");
                e.exit_code()
            });
            Ok(config.file.run.exit_codes.map(code))
        }
        Command::List(args) => {
            print!("{}", partest::commands::list(&config, args)?);
            Ok(exit::OK)
        }
        Command::Report(args) => {
            print!("{}", partest::commands::report(&config, args)?);
            Ok(exit::OK)
        }
        Command::Plugins(PluginsCommand::List) => {
            print!("{}", partest::commands::plugins_list(&config)?);
            Ok(exit::OK)
        }
        Command::Clean(args) => partest::commands::clean(&config, args),
        Command::Merge(args) => partest::commands::merge(&config, args),
        Command::Diagnose(args) => partest::commands::diagnose(&config, args),
        Command::Guard { run_id } => Ok(partest::runs::guard(run_id)),
        Command::Plugins(PluginsCommand::Inspect { name }) => {
            print!("{}", partest::commands::plugins_inspect(&config, name)?);
            Ok(exit::OK)
        }
    }
}
