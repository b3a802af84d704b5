//! `log`: the plugin's only voice. Always granted; messages go to the
//! host's [`LogSink`](super::LogSink), each cut at 64 KiB, at most
//! [`LINES_PER_CALL`] per call (then one line saying the rest was dropped).

use super::LogLevel;
use super::capability::{Capability, Grant, InstanceState};
use super::state::HostState;

/// The most messages one call may log.
pub const LINES_PER_CALL: u32 = 200;
const MAX_MESSAGE: usize = 64 * 1024;

/// How many messages the current call logged.
#[derive(Default)]
pub struct Budget {
    lines: u32,
}

impl InstanceState for Budget {
    fn begin_call(&mut self) {
        self.lines = 0;
    }
}

pub struct Log;

impl Capability for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn describe_grant(&self, _grant: &Grant) -> String {
        format!("granted (always; at most {LINES_PER_CALL} messages a call)")
    }
    fn instance_state(&self) -> Option<Box<dyn InstanceState>> {
        Some(Box::new(Budget::default()))
    }
}

/// The plugin says `message`: to the host's sink, cut and counted.
pub fn log(state: &mut HostState, level: LogLevel, message: String) {
    let budget = state.instance::<Budget>();
    budget.lines = budget.lines.saturating_add(1);
    let lines = budget.lines;
    if lines > LINES_PER_CALL {
        if lines == LINES_PER_CALL + 1 {
            (state.grants.log)(
                &state.grants.plugin,
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
    (state.grants.log)(&state.grants.plugin, level, &message);
}
