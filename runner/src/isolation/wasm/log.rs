//! `log`: the plugin's only voice. Always granted; messages go to the
//! host's [`LogSink`](super::LogSink), each cut at 64 KiB, at most
//! [`LINES_PER_CALL`] per call (then one line saying the rest was dropped).

use wasmtime::component::{HasSelf, Linker};

use super::LogLevel;
use super::bindings::v0_1_0::partest::plugin::log::{Host, Level};
use super::bindings::v0_1_0::partest::plugin::{log as wit, types as wit_types};
use super::capability::Capability;
use super::state::HostState;
use crate::config::PluginTable;

/// The most messages one call may log.
pub const LINES_PER_CALL: u32 = 200;
const MAX_MESSAGE: usize = 64 * 1024;

/// How many messages the current call logged.
#[derive(Default)]
pub struct Budget {
    lines: u32,
}

pub struct Log;

impl Capability for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn missing_grant(&self, _table: &PluginTable) -> Option<String> {
        None
    }
    fn describe_grant(&self, _table: &PluginTable) -> String {
        format!("granted (always; at most {LINES_PER_CALL} messages a call)")
    }
    fn link(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        // `types` has no functions; it rides along with the one capability
        // every plugin has.
        wit_types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
        wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log.lines = self.log.lines.saturating_add(1);
        if self.log.lines > LINES_PER_CALL {
            if self.log.lines == LINES_PER_CALL + 1 {
                (self.grants.log)(
                    &self.grants.plugin,
                    LogLevel::Warn,
                    &format!(
                        "logged more than {LINES_PER_CALL} messages in one call; the rest of this call's are dropped"
                    ),
                );
            }
            return;
        }
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        (self.grants.log)(&self.grants.plugin, level, &message);
    }
}

/// `types` has no functions; the host only has to say it provides it.
impl wit_types::Host for HostState {}
