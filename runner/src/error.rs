//! The errors that end a run early, each mapped to the exit code a CI system
//! or a script can act on (see the README's exit-code table).

/// Exit codes: the contract with scripts and CI.
pub mod exit {
    pub const OK: i32 = 0;
    pub const TEST_FAILED: i32 = 100;
    pub const USAGE: i32 = 2;
    pub const SETUP: i32 = 3;
    /// The run selected no test (nextest's code for it).
    pub const NO_TESTS: i32 = 4;
    pub const INTERRUPTED: i32 = 130;
}

/// An error that stops partest, classified by whose fault it is; each kind
/// has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or partest.toml is wrong: the user fixes their input.
    #[error("{0}")]
    Config(String),
    /// Discovery, a setup command or a worker failed: the environment is wrong.
    #[error("{0}")]
    Setup(String),
    /// An isolation provider (a plugin, the temp dirs) failed during the
    /// run; the cause is kept. (A plugin whose settings are wrong is found
    /// at load, by [`IsolationErrorKind::BadConfig`], and is a `Config` error.)
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    /// The run selected no test (`--no-tests=fail`, the default).
    #[error("{0}")]
    NoTests(String),
    /// Ctrl-C or SIGTERM stopped it (after stopping what it ran).
    #[error("interrupted during discovery; what it ran was stopped")]
    Interrupted,
}

impl Error {
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    pub fn setup(msg: impl Into<String>) -> Self {
        Error::Setup(msg.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::USAGE,
            Error::Setup(_) | Error::Isolation(_) => exit::SETUP,
            Error::NoTests(_) => exit::NO_TESTS,
            Error::Interrupted => exit::INTERRUPTED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an isolation provider failed: the provider, the hook, what kind of
/// failure it was and the message.
#[derive(Debug, Clone)]
pub struct IsolationError {
    pub provider: String,
    pub hook: &'static str,
    /// The failure happened while configuring the instance made for `hook`.
    pub configuring: bool,
    pub kind: IsolationErrorKind,
    pub message: String,
}

/// What kind of failure a provider reported; the plugin contract's error
/// cases, and what the host itself stopped or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationErrorKind {
    /// Its settings are wrong (a plugin's `bad-config`): at load, exit 2.
    BadConfig,
    /// A service it needs is not there (`unavailable`).
    Unavailable,
    /// It would not do this, on purpose (`refused`).
    Refused,
    /// It went over a sandbox limit (time, memory, disk, bytes) or trapped,
    /// and was stopped.
    Stopped,
    /// Anything else: its own failure (`failed`), or what it returned broke a rule.
    Failed,
}

impl IsolationErrorKind {
    /// How the message is introduced: the plugin contract's case.
    pub fn label(self) -> &'static str {
        match self {
            IsolationErrorKind::BadConfig => "bad config: ",
            IsolationErrorKind::Unavailable => "unavailable: ",
            IsolationErrorKind::Refused => "refused: ",
            IsolationErrorKind::Stopped | IsolationErrorKind::Failed => "",
        }
    }
}

impl IsolationError {
    /// `kind` in `provider`'s `hook`.
    pub fn new(
        provider: impl Into<String>,
        hook: &'static str,
        kind: IsolationErrorKind,
        message: impl Into<String>,
    ) -> IsolationError {
        IsolationError {
            provider: provider.into(),
            hook,
            configuring: false,
            kind,
            message: message.into(),
        }
    }

    /// The message with its kind's label (`bad config: ...`), without the provider.
    pub fn detail(&self) -> String {
        format!(
            "{}{}{}",
            if self.configuring { "configure: " } else { "" },
            self.kind.label(),
            self.message
        )
    }
}

impl std::fmt::Display for IsolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed in {}: {}",
            self.provider,
            self.hook,
            self.detail()
        )
    }
}

impl std::error::Error for IsolationError {}
