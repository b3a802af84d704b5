//! `log`: the plugin's only voice. Always granted; messages go to the
//! host's [`LogSink`](super::LogSink), cut at the boundary limit.

use super::LogLevel;
use super::bindings::v0_1_0::partest::plugin::log::{Host, Level};
use super::state::HostState;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let mut message = message;
        if message.len() > 64 * 1024 {
            let mut cut = 64 * 1024;
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
impl super::bindings::v0_1_0::partest::plugin::types::Host for HostState {}
