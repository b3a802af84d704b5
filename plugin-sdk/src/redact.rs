//! Passwords out of messages: a server URL is shown as
//! `scheme://user:***@host:port/...`.
//!
//! One helper for both sides of the boundary: plugins use it as
//! `partest_plugin_sdk::redact`, and the host includes this very file
//! (`runner/src/isolation/wasm/mod.rs`, `#[path]`), so it must stay free of
//! dependencies and of anything that needs the WIT bindings.

/// Passwords shorter than this are not searched for in free text (`text`):
/// replacing every "a" of a message would hide the message, not the secret.
/// They are still hidden wherever they appear as the URL's userinfo.
const MIN_SCRUBBED: usize = 4;

/// Splits `url` into (`scheme://`, userinfo, `@host...`), or `None` when it
/// has no userinfo. The userinfo ends at the *last* `@`, so an unencoded `@`
/// or `/` in a password is hidden too (at worst, more than the userinfo is).
fn split(url: &str) -> Option<(&str, &str, &str)> {
    let start = url.find("://")? + 3;
    let at = start + url[start..].rfind('@')?;
    Some((&url[..start], &url[start..at], &url[at..]))
}

/// The password part of `url`'s userinfo (`user:password@`, `:password@`),
/// or the whole userinfo when it has no `:` (a bare token), as written.
fn secret(url: &str) -> Option<&str> {
    let (_, userinfo, _) = split(url)?;
    let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!secret.is_empty()).then_some(secret)
}

/// `url` with its password replaced by `***`: `redis://u:pw@h/1` →
/// `redis://u:***@h/1`, `redis://:pw@h` → `redis://:***@h`, and a userinfo
/// without `:` (which may be a bare password or token) → `redis://***@h`.
/// A URL without userinfo is returned as it is.
pub fn url(url: &str) -> String {
    match split(url) {
        Some((scheme, userinfo, rest)) => {
            let hidden = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if userinfo.is_empty() => String::new(),
                None => "***".into(),
            };
            format!("{scheme}{hidden}{rest}")
        }
        None => url.to_string(),
    }
}

/// `text` (an error message, say) with every occurrence of `url` replaced
/// by [`url`]'s redacted form, then every remaining occurrence of its
/// password, as written and percent-decoded, by `***`.
pub fn text(text: &str, server_url: &str) -> String {
    if server_url.is_empty() {
        return text.to_string();
    }
    let mut out = text.replace(server_url, &url(server_url));
    if let Some(secret) = secret(server_url) {
        let decoded = percent_decode(secret);
        for s in [secret, decoded.as_str()] {
            if s.chars().count() >= MIN_SCRUBBED {
                out = out.replace(s, "***");
            }
        }
    }
    out
}

/// Percent-decoding (`%2F` → `/`) as URLs need it; malformed escapes are
/// kept as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(h)), Some(Some(l))) = (
                bytes.get(i + 1).map(|b| hex(*b)),
                bytes.get(i + 2).map(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_hidden_and_the_rest_kept() {
        assert_eq!(
            url("redis://user:secret@127.0.0.1:6380/3"),
            "redis://user:***@127.0.0.1:6380/3"
        );
        assert_eq!(
            url("rediss://:secret@h:6380/#insecure"),
            "rediss://:***@h:6380/#insecure"
        );
        assert_eq!(url("redis://token@h"), "redis://***@h");
        assert_eq!(url("redis://127.0.0.1:6379/1"), "redis://127.0.0.1:6379/1");
        assert_eq!(url("redis://@h"), "redis://@h");
        assert_eq!(
            url("postgres://u:p@h/db?sslmode=require"),
            "postgres://u:***@h/db?sslmode=require"
        );
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn unencoded_at_and_slash_in_a_password_are_hidden_too() {
        assert_eq!(url("redis://u:p@ss@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(url("redis://u:pa/ss@h:1"), "redis://u:***@h:1");
    }

    #[test]
    fn text_hides_the_url_and_the_bare_password() {
        let u = "redis://user:s%40cret-pw@h:1/0";
        assert_eq!(
            text(&format!("cannot connect to {u}: bad"), u),
            "cannot connect to redis://user:***@h:1/0: bad"
        );
        assert_eq!(text("AUTH s@cret-pw failed", u), "AUTH *** failed");
        assert_eq!(text("AUTH s%40cret-pw failed", u), "AUTH *** failed");
        // A short password is hidden in the URL, not hunted in prose.
        assert_eq!(
            text("a redis://:ab@h error", "redis://:ab@h"),
            "a redis://:***@h error"
        );
        assert_eq!(text("nothing", ""), "nothing");
    }
}
