//! `log`: the plugin's only voice. Always granted; messages go to the
//! host's [`LogSink`](super::LogSink), each cut at 64 KiB, at most
//! [`LINES_PER_CALL`] per call (then one line saying the rest was dropped),
//! each made [`printable`]: a plugin's text never drives the terminal.

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
    let mut message = printable(&message);
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

/// `text` as one line of plain text: control characters (newlines, ESC and
/// so escape sequences, carriage returns, DEL, C1) and the invisible
/// reordering marks (bidi overrides) are shown escaped (`\n`, `\x1b`,
/// `\u{202e}`) instead of reaching the terminal. For everything a plugin
/// says in a log line.
pub fn printable(text: &str) -> String {
    escaped(text, false)
}

/// [`printable`], but keeping line breaks: a plugin's error (a program's
/// output, say) stays readable; nothing else reaches the terminal raw.
pub fn printable_lines(text: &str) -> String {
    escaped(text, true)
}

fn escaped(text: &str, keep_lines: bool) -> String {
    let reorders = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let raw = |c: char| (c.is_control() && !(keep_lines && c == '\n')) || reorders(c);
    if !text.chars().any(raw) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' if keep_lines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || reorders(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_and_reordering_marks_are_shown_escaped() {
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            printable("two\nlines\r\x1b]52;c;aGk=\x07\x1b[2J"),
            "two\\nlines\\r\\x1b]52;c;aGk=\\x07\\x1b[2J"
        );
        assert_eq!(printable("a\u{202e}b\u{9b}c"), "a\\u{202e}b\\x9bc");
        assert!(!printable("\x1b\n\u{7f}").chars().any(char::is_control));
        assert_eq!(
            super::printable_lines("out:\n\x1b[31mred"),
            "out:\n\\x1b[31mred"
        );
    }
}
