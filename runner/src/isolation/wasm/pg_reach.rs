//! Which databases a plugin reaches on the granted PostgreSQL server, by
//! what the server says rather than by names a plugin could forge:
//!
//! - a name that carries the run id reaches a database only when that
//!   database (its oid) was made through the capability in this run: one
//!   renamed into such a name keeps the oid it had, and stays out of reach;
//!   the rename itself fails the call and is undone;
//! - for a custom plugin, the granted name reaches only the database it
//!   named at the first connection (no database renamed into its place);
//! - a custom plugin's `CREATE DATABASE ... TEMPLATE` may copy only
//!   `template0`/`template1`, a database made in this run, or the set-up
//!   kept under this run's key;
//! - a custom plugin's role owns no database but the granted one, this
//!   run's, this project's kept set-ups and dead runs' leftovers (for
//!   `partest clean`).
//!
//! `CREATE DATABASE` runs only as a query string's one statement (never in
//! a transaction block or a function), which is what makes its options
//! readable here: [`templates_copied`] reads them the way the server's lexer
//! does, and refuses what it cannot read.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use postgres::{Client, SimpleQueryMessage};

use super::types::Error;

/// Every database on the server: oid and name.
pub type Catalog = HashMap<u32, String>;

/// What this plugin made and was granted on the server, shared by its
/// instances for the run.
#[derive(Default)]
pub struct RunDatabases {
    /// The granted database, as first connected.
    granted: OnceLock<u32>,
    /// The databases made through the capability in this run.
    created: Mutex<HashSet<u32>>,
}

/// The first column of each row `sql` returns, as text.
fn column(client: &mut Client, sql: &str) -> Result<Vec<Vec<String>>, postgres::Error> {
    Ok(client
        .simple_query(sql)?
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

pub fn catalog(client: &mut Client) -> Result<Catalog, postgres::Error> {
    Ok(column(client, "SELECT oid, datname FROM pg_database")?
        .into_iter()
        .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.clone())))
        .collect())
}

/// The oid of the database named `name`, if there is one.
fn oid_of(client: &mut Client, name: &str) -> Result<Option<u32>, postgres::Error> {
    Ok(column(
        client,
        &format!(
            "SELECT oid FROM pg_database WHERE datname = {}",
            super::postgres::quote_literal(name)
        ),
    )?
    .first()
    .and_then(|r| r.first()?.parse().ok()))
}

fn pg(e: postgres::Error) -> Error {
    Error::Failed(format!("PostgreSQL: {e}"))
}

impl RunDatabases {
    fn created(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        self.created.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a new connection to a database that is not the one its name
    /// stood for: a run's database (`run_database`, by its run-id name) this
    /// run did not make, or (for a custom plugin, `None`) the granted name
    /// on another database than at first.
    pub fn check_connected(
        &self,
        client: &mut Client,
        run_database: Option<&str>,
        custom: bool,
    ) -> Result<(), Error> {
        let here = column(
            client,
            "SELECT oid FROM pg_database WHERE datname = current_database()",
        )
        .map_err(pg)?
        .first()
        .and_then(|r| r.first()?.parse::<u32>().ok())
        .ok_or_else(|| Error::Failed("PostgreSQL did not say which database this is".into()))?;
        match run_database {
            Some(name) if !self.created().contains(&here) => Err(Error::Refused(format!(
                "database {name:?} carries the run's id but was not made through the postgres \
                 capability in this run (renamed into that name?): it is not the plugin's to reach"
            ))),
            None if custom && *self.granted.get_or_init(|| here) != here => Err(Error::Refused(
                "the granted database is not the one it was when the run began (another \
                     database was renamed into its name): the plugin may not reach it"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// After a statement: the databases it made under this run's id become
    /// the run's; a database it renamed into this run's names is renamed
    /// back, and the call fails.
    pub fn after_statement(
        &self,
        client: &mut Client,
        before: &Catalog,
        run_id: Option<&str>,
    ) -> Result<(), Error> {
        let Some(run_id) = run_id.filter(|id| !id.is_empty()) else {
            return Ok(());
        };
        // A connection the statement ended cannot say what it made: that
        // is then not the run's, so out of reach.
        let Ok(after) = catalog(client) else {
            return Ok(());
        };
        let mut renamed = Vec::new();
        {
            let mut created = self.created();
            for (oid, name) in &after {
                if !name.contains(run_id) || created.contains(oid) {
                    continue;
                }
                match before.get(oid) {
                    None => {
                        created.insert(*oid);
                    }
                    Some(old) if old != name => renamed.push((old.clone(), name.clone())),
                    Some(_) => {}
                }
            }
        }
        let Some((old, new)) = renamed.first() else {
            return Ok(());
        };
        let undone = renamed.iter().all(|(old, new)| {
            client
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(new),
                    quote_ident(old)
                ))
                .is_ok()
        });
        Err(Error::Refused(format!(
            "the statement renamed database {old:?} to {new:?}, into this run's names: only \
             databases made through the capability in this run carry them ({})",
            if undone {
                "renamed back"
            } else {
                "it could not be renamed back"
            }
        )))
    }

    /// Refuses a `CREATE DATABASE` whose `TEMPLATE` is not `template0`,
    /// `template1`, a database made in this run or the set-up kept under
    /// `setup_key`.
    pub fn check_templates(
        &self,
        client: &mut Client,
        sql: &str,
        setup_key: Option<&str>,
    ) -> Result<(), Error> {
        let templates = templates_copied(sql).map_err(Error::Refused)?;
        for template in templates {
            let Template::Named(name) = template else {
                continue;
            };
            if name == "template0"
                || name == "template1"
                || setup_key.is_some_and(|key| name.contains(key))
            {
                continue;
            }
            let made_here = oid_of(client, &name)
                .map_err(pg)?
                .is_some_and(|oid| self.created().contains(&oid));
            if !made_here {
                return Err(Error::Refused(format!(
                    "CREATE DATABASE ... TEMPLATE {name:?}: a plugin copies only template0, \
                     template1, a database it made in this run, or the set-up kept for this \
                     run's inputs"
                )));
            }
        }
        Ok(())
    }

    /// The databases the login owns beyond what a custom plugin may: the
    /// granted one, this run's, this project's kept set-ups (`project`
    /// followed by the rest of a key) and dead runs' leftovers (`dead`).
    pub fn owned_beyond(
        &self,
        client: &mut Client,
        granted: &str,
        project: &str,
        dead: &[String],
    ) -> Result<Vec<String>, Error> {
        let owned = column(
            client,
            &format!(
                "SELECT oid, datname FROM pg_database \
                 WHERE pg_has_role(current_user, datdba, 'MEMBER') AND datname <> {} \
                 ORDER BY datname",
                super::postgres::quote_literal(granted)
            ),
        )
        .map_err(pg)?;
        let created = self.created();
        Ok(owned
            .into_iter()
            .filter_map(|r| {
                let oid: u32 = r.first()?.parse().ok()?;
                let name = r.get(1)?.clone();
                let allowed = created.contains(&oid)
                    || kept_for(&name, project)
                    || dead
                        .iter()
                        .any(|id| !id.is_empty() && name.contains(id.as_str()));
                (!allowed).then_some(name)
            })
            .collect())
    }
}

/// `name` carries a set-up key of `project`: its 8 hex digits and 16 more.
fn kept_for(name: &str, project: &str) -> bool {
    !project.is_empty()
        && name.match_indices(project).any(|(at, _)| {
            let rest = &name.as_bytes()[at + project.len()..];
            rest.len() >= 16 && rest[..16].iter().all(u8::is_ascii_hexdigit)
        })
}

/// `text` as an SQL identifier.
pub fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// What a `CREATE DATABASE` copies.
#[derive(Debug, PartialEq, Eq)]
pub enum Template {
    /// `TEMPLATE DEFAULT`: template1.
    Default,
    Named(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A keyword or unquoted identifier, folded to lower case.
    Word(String),
    /// A quoted identifier, as written.
    Quoted(String),
    /// A string constant ('...' or $tag$...$tag$).
    Text(String),
    Semicolon,
    Other(char),
}

/// The templates every `CREATE DATABASE` in `sql` copies (none named: it
/// copies template1). An error when the statement cannot be read the way
/// the server would: a backslash in it (escape strings, or a session that
/// turned standard strings off), or a comment or string left open.
pub fn templates_copied(sql: &str) -> Result<Vec<Template>, String> {
    let tokens = match tokens(sql) {
        Ok(tokens) => tokens,
        // The server refuses it too; only a statement that might make a
        // database needs reading.
        Err(why) if sql.to_ascii_lowercase().contains("database") => return Err(why),
        Err(_) => return Ok(Vec::new()),
    };
    let mut found = Vec::new();
    for statement in tokens.split(|t| *t == Token::Semicolon) {
        let [
            Token::Word(create),
            Token::Word(database),
            _name,
            options @ ..,
        ] = statement
        else {
            continue;
        };
        if create != "create" || database != "database" {
            continue;
        }
        if sql.contains('\\') {
            return Err(
                "CREATE DATABASE with a backslash in it: partest cannot tell which template \
                 it copies"
                    .into(),
            );
        }
        for (at, token) in options.iter().enumerate() {
            let is_template = match token {
                Token::Word(w) => w == "template",
                Token::Quoted(q) => q.eq_ignore_ascii_case("template"),
                _ => false,
            };
            if !is_template {
                continue;
            }
            let mut value = options.get(at + 1);
            if value == Some(&Token::Other('=')) {
                value = options.get(at + 2);
            }
            found.push(match value {
                Some(Token::Word(w)) if w == "default" => Template::Default,
                Some(Token::Word(w)) => Template::Named(w.clone()),
                Some(Token::Quoted(q) | Token::Text(q)) => Template::Named(q.clone()),
                _ => {
                    return Err(
                        "CREATE DATABASE ... TEMPLATE: partest cannot read which template it \
                         names"
                            .into(),
                    );
                }
            });
        }
    }
    Ok(found)
}

/// Characters an unquoted identifier continues with (the server's
/// `ident_cont`: letters, digits, `_`, `$` and any non-ASCII byte).
fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

fn tokens(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest.
            let mut depth = 0;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('/'), Some('*')) => {
                        depth += 1;
                        i += 2;
                    }
                    (Some('*'), Some('/')) => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    (Some(_), _) => i += 1,
                    (None, _) => return Err("a comment is left open".into()),
                }
            }
        } else if c == '\'' || c == '"' {
            // '' and "" stand for the quote itself.
            let mut text = String::new();
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some(&q), Some(&r)) if q == c && r == c => {
                        text.push(c);
                        i += 2;
                    }
                    (Some(&q), _) if q == c => {
                        i += 1;
                        break;
                    }
                    (Some(&other), _) => {
                        text.push(other);
                        i += 1;
                    }
                    (None, _) => return Err("a string or quoted name is left open".into()),
                }
            }
            out.push(if c == '"' {
                Token::Quoted(text)
            } else {
                Token::Text(text)
            });
        } else if c == '$' && dollar_tag(&chars[i..]).is_some() {
            let tag: Vec<char> = dollar_tag(&chars[i..]).unwrap_or_default();
            let start = i + tag.len();
            let end = (start..chars.len())
                .find(|&j| chars[j..].starts_with(&tag))
                .ok_or("a $-quoted string is left open")?;
            out.push(Token::Text(chars[start..end].iter().collect()));
            i = end + tag.len();
        } else if c.is_ascii_alphabetic() || c == '_' || !c.is_ascii() {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(Token::Word(word.to_ascii_lowercase()));
        } else if c == ';' {
            out.push(Token::Semicolon);
            i += 1;
        } else {
            out.push(Token::Other(c));
            i += 1;
        }
    }
    Ok(out)
}

/// The `$tag$` opening a dollar-quoted string at the start of `chars`.
fn dollar_tag(chars: &[char]) -> Option<Vec<char>> {
    let close = chars.iter().skip(1).position(|&c| c == '$')? + 1;
    let tag = &chars[1..close];
    let valid = tag.first().is_none_or(|c| !c.is_ascii_digit())
        && tag
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii());
    valid.then(|| chars[..=close].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Template {
        Template::Named(name.into())
    }

    #[test]
    fn templates_are_read_as_the_server_reads_them() {
        let read = |sql: &str| templates_copied(sql).unwrap();
        assert_eq!(read("CREATE DATABASE a"), vec![]);
        assert_eq!(read("SELECT 'CREATE DATABASE a TEMPLATE b'"), vec![]);
        assert_eq!(read("create database a template b"), vec![named("b")]);
        assert_eq!(
            read(
                "; /* x /* nested */ */ CREATE -- c\n DATABASE \"A\" WITH OWNER me TEMPLATE = \"Victim\""
            ),
            vec![named("Victim")]
        );
        assert_eq!(
            read("CREATE DATABASE a TEMPLATE 'vic''tim'"),
            vec![named("vic'tim")]
        );
        assert_eq!(
            read("CREATE DATABASE a TEMPLATE $x$victim$x$"),
            vec![named("victim")]
        );
        assert_eq!(
            read("CREATE DATABASE a \"template\" victim"),
            vec![named("victim")]
        );
        assert_eq!(
            read("CREATE DATABASE a TEMPLATE DEFAULT"),
            vec![Template::Default]
        );
        // Every TEMPLATE is read, even one that is another option's value.
        assert_eq!(
            read("CREATE DATABASE a OWNER template TEMPLATE victim"),
            vec![named("template"), named("victim")]
        );
        // The name is not an option.
        assert_eq!(read("CREATE DATABASE template"), vec![]);
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        for sql in [
            "CREATE DATABASE a OWNER = E'\\'' TEMPLATE victim --'",
            "CREATE DATABASE a TEMPLATE U&\"\\0076ictim\"",
            "CREATE DATABASE a TEMPLATE",
            "CREATE DATABASE a TEMPLATE 'open",
            "CREATE DATABASE a /* open",
        ] {
            assert!(templates_copied(sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn other_statements_pass_whatever_their_strings() {
        assert_eq!(templates_copied("SELECT E'\\'' -- '").unwrap(), vec![]);
    }

    #[test]
    fn kept_set_ups_are_the_projects_key_and_16_hex_digits() {
        assert!(kept_for(
            "partest_setup_0a1b2c3d0123456789abcdef",
            "0a1b2c3d"
        ));
        assert!(!kept_for("partest_setup_0a1b2c3d0123", "0a1b2c3d"));
        assert!(!kept_for(
            "partest_setup_ffffffff0123456789abcdef",
            "0a1b2c3d"
        ));
        assert!(!kept_for("anything", ""));
    }
}
