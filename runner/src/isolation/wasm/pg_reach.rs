//! Which databases a plugin reaches on the granted PostgreSQL server, by
//! what the server says rather than by names a plugin could forge:
//!
//! - a name that carries the run id reaches a database only when that
//!   database (its oid) was made by a `CREATE DATABASE` the plugin ran
//!   through the capability in this run: one renamed into such a name keeps
//!   the oid it had, and stays out of reach; the rename itself fails the
//!   call and is undone;
//! - for a custom plugin, the granted name reaches only the database it
//!   named when the run's first connection was made;
//! - a custom plugin's `CREATE DATABASE ... TEMPLATE` may copy only
//!   `template0`/`template1`, a database it made in this run, or the set-up
//!   kept under this run's key (and may not pick its oid).
//!
//! The host asks on a connection of its own (the [`Inspector`]), which
//! plugin SQL never runs on: no temporary table, setting, open transaction
//! or lock of the plugin's can change what it reads.
//!
//! `CREATE DATABASE` runs only as a query string's one statement (never in
//! a transaction block, a function, or beside another statement), which is
//! what makes it readable here: [`read_create_database`] reads its name and
//! options the way the server's scanner does, and refuses what it cannot
//! read.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};

use super::types::Error;

/// Every database on the server: oid and name.
pub type Catalog = HashMap<u32, String>;

/// The longest name the server keeps (`NAMEDATALEN - 1` bytes): it cuts a
/// longer one, which would then name another database than it says.
pub const MAX_NAME: usize = 63;

/// The most a plugin's notes of kept set-ups hold.
const KEPT_NOTES: usize = 64 << 10;

/// The longest `CREATE DATABASE` statement read.
const MAX_CREATE: usize = 64 << 10;

/// What this plugin made and was granted on the server, shared by its
/// instances for the run.
#[derive(Default)]
pub struct RunDatabases {
    /// The granted database, as first connected.
    granted: OnceLock<u32>,
    /// The databases made through the capability in this run.
    created: Mutex<HashSet<u32>>,
    /// The host's own connection, opened on first use.
    inspector: Mutex<Option<Client>>,
    /// A custom plugin's role was checked: once a run, since the tests may
    /// make databases under the same role afterwards.
    pub role_checked: std::sync::atomic::AtomicBool,
}

/// Rows of `sql`, each column as text (NULL as empty).
pub fn rows(client: &mut Client, sql: &str) -> Result<Vec<Vec<String>>, postgres::Error> {
    Ok(client
        .simple_query(sql)?
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    // A name that is not UTF-8 (made in a database of
                    // another encoding) is no name partest compares to.
                    .map(|i| match row.try_get(i) {
                        Ok(v) => v.unwrap_or_default().to_string(),
                        Err(_) => "\u{fffd}".to_string(),
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

fn pg(e: postgres::Error) -> Error {
    Error::Failed(format!("PostgreSQL: {e}"))
}

/// `text` as an SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `text` as an SQL identifier.
fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The oid of the database `client` is connected to.
fn current_oid(client: &mut Client) -> Result<u32, Error> {
    // Qualified to the operator: the role's own search_path may put
    // objects of its own first.
    rows(
        client,
        "SELECT oid FROM pg_catalog.pg_database \
         WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()",
    )
    .map_err(pg)?
    .first()
    .and_then(|r| r.first()?.parse().ok())
    .ok_or_else(|| Error::Failed("PostgreSQL did not say which database this is".into()))
}

/// The host's connection: what it reads, it reads from the catalog itself.
pub struct Inspector<'a>(MutexGuard<'a, Option<Client>>);

impl Inspector<'_> {
    pub fn client(&mut self) -> &mut Client {
        self.0.as_mut().expect("opened with the guard")
    }

    /// Rows of `sql`, run on the host's connection.
    pub fn rows(&mut self, sql: &str) -> Result<Vec<Vec<String>>, Error> {
        rows(self.client(), sql).map_err(pg)
    }

    pub fn catalog(&mut self) -> Result<Catalog, Error> {
        Ok(self
            .rows("SELECT oid, datname FROM pg_catalog.pg_database")?
            .into_iter()
            .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.clone())))
            .collect())
    }

    fn oid_of(&mut self, name: &str) -> Result<Option<u32>, Error> {
        Ok(self
            .rows(&format!(
                "SELECT oid FROM pg_catalog.pg_database WHERE datname = {}",
                quote_literal(name)
            ))?
            .first()
            .and_then(|r| r.first()?.parse().ok()))
    }
}

impl RunDatabases {
    fn created(&self) -> MutexGuard<'_, HashSet<u32>> {
        self.created.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host's connection, opened with `open` when there is none (or it
    /// was closed): `open` connects and checks the role; the connection
    /// then reads only `pg_catalog`, and waits on no lock for long.
    pub fn inspector(
        &self,
        time: Duration,
        open: impl FnOnce() -> Result<Client, Error>,
    ) -> Result<Inspector<'_>, Error> {
        let mut guard = self.inspector.lock().unwrap_or_else(|p| p.into_inner());
        // Each use gets the call's time left (and a little grace); setting
        // it also tells whether the connection is still there (a test may
        // end partest's connections), else it is opened again.
        // Settings of the role's or the database's own are overridden too.
        let bound = format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; \
             SET default_transaction_read_only = off; SET standard_conforming_strings = on; \
             SET client_encoding = 'UTF8'",
            (time + Duration::from_secs(1)).as_millis(),
            time.min(Duration::from_secs(1)).as_millis().max(1)
        );
        let alive = guard
            .as_mut()
            .is_some_and(|c| !c.is_closed() && c.batch_execute(&bound).is_ok());
        if !alive {
            let mut client = open()?;
            client
                .batch_execute(&format!("SET search_path = pg_catalog; {bound}"))
                .map_err(pg)?;
            let _ = self.granted.set(current_oid(&mut client)?);
            *guard = Some(client);
        }
        Ok(Inspector(guard))
    }

    /// Refuses a new connection to a database that is not the one its name
    /// stood for: a run's database (`run_database`, by its run-id name) this
    /// run did not make, or (for a custom plugin, `None`) the granted name
    /// on another database than at first. The connection is new: nothing of
    /// the plugin's is in it yet.
    pub fn check_connected(
        &self,
        client: &mut Client,
        run_database: Option<&str>,
        custom: bool,
    ) -> Result<(), Error> {
        let here = current_oid(client)?;
        match run_database {
            Some(name) if !self.created().contains(&here) => Err(Error::Refused(format!(
                "database {name:?} carries the run's id but was not made through the postgres \
                 capability in this run (renamed into that name?): it is not the plugin's to reach"
            ))),
            None if custom && self.granted.get().is_some_and(|g| *g != here) => {
                Err(Error::Refused(
                    "the granted database is not the one it was when the run began (another \
                     database was renamed into its name): the plugin may not reach it"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// After a statement: the database it made (`made`, its `CREATE
    /// DATABASE`'s name) becomes the run's, unless a database was renamed
    /// into the run's names (`run_id`) from outside them meanwhile: that
    /// one is renamed back, and the call fails. A database of the run's
    /// renamed under the set-up key (`setup`: the key, and the file of
    /// what was kept so) is noted as kept.
    pub fn after_statement(
        &self,
        inspector: &mut Inspector,
        before: &Catalog,
        made: Option<&str>,
        run_id: &str,
        setup: Option<(&str, &Path)>,
    ) -> Result<(), Error> {
        let after = inspector.catalog()?;
        let carries = |name: &str| !run_id.is_empty() && name.contains(run_id);
        let mut renamed = Vec::new();
        let mut kept = Vec::new();
        {
            let created = self.created();
            for (oid, name) in &after {
                let Some(old) = before.get(oid).filter(|old| *old != name) else {
                    continue;
                };
                if created.contains(oid) {
                    if let Some((key, _)) = setup.filter(|(key, _)| name.contains(key)) {
                        // A line each: a name that could end one and
                        // forge the next is not noted.
                        if name.chars().any(char::is_control) {
                            return Err(Error::Refused(format!(
                                "database {name:?} is kept under a name with a control \
                                 character: partest does not note it"
                            )));
                        }
                        kept.push(format!("{key} {oid} {name}\n"));
                    }
                } else if carries(name) && !carries(old) {
                    renamed.push((old.clone(), name.clone()));
                }
            }
        }
        if let (Some((_, file)), false) = (setup, kept.is_empty()) {
            use std::io::Write;
            let known = std::fs::read_to_string(file).unwrap_or_default();
            kept.retain(|line| !known.lines().any(|k| format!("{k}\n") == *line));
            if known.len() + kept.concat().len() > KEPT_NOTES {
                return Err(Error::Refused(format!(
                    "{} holds {} bytes of kept set-ups already: partest notes no more",
                    file.display(),
                    known.len()
                )));
            }
            let noted = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .and_then(|mut f| f.write_all(kept.concat().as_bytes()));
            if let Err(e) = noted {
                return Err(Error::Failed(format!(
                    "cannot note the kept set-up in {}: {e}",
                    file.display()
                )));
            }
        }
        let Some((old, new)) = renamed.first() else {
            // Only now: a copy made while a database was renamed into the
            // run's names may be of that one.
            if let Some(name) = made
                && let Some(oid) = inspector.oid_of(name)?
                && !before.contains_key(&oid)
            {
                self.created().insert(oid);
            }
            return Ok(());
        };
        let mut undone = true;
        for (old, new) in &renamed {
            undone &= inspector
                .client()
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(new),
                    quote_ident(old)
                ))
                .is_ok();
        }
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

    /// Refuses a custom plugin's `CREATE DATABASE` (`create`) whose
    /// `TEMPLATE` is not `template0`, `template1`, a database made in this
    /// run or one of them kept under the run's set-up key (`setup`: the key
    /// and the file of what was kept).
    pub fn check_templates(
        &self,
        inspector: &mut Inspector,
        create: &CreateDatabase,
        setup: Option<(&str, &Path)>,
    ) -> Result<(), Error> {
        for template in &create.templates {
            let Template::Named(name) = template else {
                continue;
            };
            if name == "template0" || name == "template1" {
                continue;
            }
            let oid = inspector.oid_of(name)?;
            let made_here = oid.is_some_and(|oid| self.created().contains(&oid));
            // Kept by an earlier run's keep-setup, as partest noted then:
            // a name with the key in it is not enough.
            let kept = match (oid, setup) {
                (Some(oid), Some((key, file))) => std::fs::read_to_string(file)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l == format!("{key} {oid} {name}")),
                _ => false,
            };
            if !made_here && !kept {
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
        let owned = rows(
            client,
            &format!(
                "SELECT oid, datname FROM pg_catalog.pg_database \
                 WHERE pg_catalog.pg_has_role(current_user, datdba, 'MEMBER') \
                   AND datname <> {} ORDER BY datname",
                quote_literal(granted)
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

/// What a `CREATE DATABASE` copies.
#[derive(Debug, PartialEq, Eq)]
pub enum Template {
    /// `TEMPLATE DEFAULT`: template1.
    Default,
    Named(String),
}

/// A `CREATE DATABASE` statement, as the server reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct CreateDatabase {
    pub name: String,
    /// Every `TEMPLATE` option (none: it copies template1).
    pub templates: Vec<Template>,
    /// It picks the new database's oid (`OID n`).
    pub picks_oid: bool,
    /// Its text is ASCII: read alike in every encoding a session may use.
    pub ascii: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A keyword or unquoted identifier, folded to lower case.
    Word(String),
    /// A quoted identifier, as written.
    Quoted(String),
    /// A string constant ('...' or $tag$...$tag$).
    Text(String),
    /// A constant with a prefix (E'', U&'', U&"", B'', X'', N''): its
    /// escapes are not read here.
    Prefixed,
    Semicolon,
    Other(u8),
}

/// The `CREATE DATABASE` that `sql` is, if it is one; an error when it
/// cannot be read the way the server would read it (a prefixed or
/// continued string, a backslash, a name past [`MAX_NAME`], a comment or
/// string left open, a statement past 64 KiB).
pub fn read_create_database(sql: &str) -> Result<Option<CreateDatabase>, String> {
    let mut lexer = Lexer { sql, at: 0 };
    // Only the string's first statement can be one: the server runs it
    // alone or not at all. Empty statements before it do not count.
    let mut first = Vec::new();
    while first.len() < 2 {
        match lexer.next() {
            None => return Ok(None),
            Some(Ok(Token::Semicolon)) if first.is_empty() => {}
            Some(Ok(token)) => first.push(token),
            // Not read further: nothing here makes a database unless its
            // first words are CREATE DATABASE.
            Some(Err(_)) => return Ok(None),
        }
    }
    if first != [Token::Word("create".into()), Token::Word("database".into())] {
        return Ok(None);
    }
    let unreadable = |why: &str| Err(format!("CREATE DATABASE {why}: partest cannot read it"));
    if sql.len() > MAX_CREATE {
        return unreadable("longer than 64 KiB");
    }
    if sql.contains('\\') {
        return unreadable("with a backslash in it");
    }
    let statement = match lexer
        .take_while(|t| !matches!(t, Ok(Token::Semicolon)))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(tokens) => tokens,
        Err(why) => return unreadable(&why),
    };
    let name = match statement.first() {
        Some(Token::Word(n) | Token::Quoted(n)) => n.clone(),
        _ => return unreadable("with a name"),
    };
    let mut create = CreateDatabase {
        name,
        templates: Vec::new(),
        picks_oid: false,
        ascii: sql.is_ascii(),
    };
    let options = &statement[1..];
    for (at, token) in options.iter().enumerate() {
        let word = match token {
            Token::Prefixed => return unreadable("with a prefixed string or name (E'', U&)"),
            Token::Text(_) if matches!(options.get(at + 1), Some(Token::Text(_))) => {
                return unreadable("with a string continued on another line");
            }
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => q.to_ascii_lowercase(),
            _ => continue,
        };
        if word == "oid" {
            create.picks_oid = true;
        }
        if word != "template" {
            continue;
        }
        // Every TEMPLATE is read, even one that is another option's value.
        let mut value = options.get(at + 1);
        if value == Some(&Token::Other(b'=')) {
            value = options.get(at + 2);
        }
        create.templates.push(match value {
            Some(Token::Word(w)) if w == "default" => Template::Default,
            Some(Token::Word(w) | Token::Quoted(w) | Token::Text(w)) if w.len() > MAX_NAME => {
                return unreadable(&format!("with a name longer than {MAX_NAME} bytes"));
            }
            Some(Token::Word(w) | Token::Quoted(w) | Token::Text(w)) => Template::Named(w.clone()),
            _ => return unreadable("whose TEMPLATE names no database"),
        });
    }
    if create.name.len() > MAX_NAME {
        return unreadable(&format!("with a name longer than {MAX_NAME} bytes"));
    }
    Ok(Some(create))
}

/// How many statements `sql` holds (empty ones not counted), read with
/// standard strings on; `usize::MAX` when it cannot be read.
pub fn statements(sql: &str) -> usize {
    let mut count = 0;
    let mut within = false;
    for token in (Lexer { sql, at: 0 }) {
        match token {
            Err(_) => return usize::MAX,
            Ok(Token::Semicolon) => within = false,
            Ok(_) if !within => {
                within = true;
                count += 1;
            }
            Ok(_) => {}
        }
    }
    count
}

/// PostgreSQL's scanner, for what matters here. Byte-wise as the server's
/// is: any byte past ASCII continues an identifier.
struct Lexer<'a> {
    sql: &'a str,
    at: usize,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

impl Iterator for Lexer<'_> {
    type Item = Result<Token, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.sql.as_bytes();
        loop {
            let b = *bytes.get(self.at)?;
            let next = bytes.get(self.at + 1).copied();
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
                self.at += 1;
            } else if b == b'-' && next == Some(b'-') {
                while self.at < bytes.len() && !matches!(bytes[self.at], b'\n' | b'\r') {
                    self.at += 1;
                }
            } else if b == b'/' && next == Some(b'*') {
                // Block comments nest.
                let mut depth = 0usize;
                loop {
                    match (bytes.get(self.at), bytes.get(self.at + 1)) {
                        (Some(b'/'), Some(b'*')) => {
                            depth += 1;
                            self.at += 2;
                        }
                        (Some(b'*'), Some(b'/')) => {
                            depth -= 1;
                            self.at += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(_), _) => self.at += 1,
                        (None, _) => return Some(Err("with a comment left open".into())),
                    }
                }
            } else {
                return Some(self.token(b));
            }
        }
    }
}

impl Lexer<'_> {
    fn token(&mut self, b: u8) -> Result<Token, String> {
        let bytes = self.sql.as_bytes();
        let start = self.at;
        if b == b'\'' || b == b'"' {
            // A prefix before the quote (E, B, X, N, U&) changes how it reads;
            // in an E'' string a backslash escapes the next byte.
            let prefixed = start > 0 && (ident_cont(bytes[start - 1]) || bytes[start - 1] == b'&');
            let escapes = b == b'\''
                && start > 0
                && matches!(bytes[start - 1], b'e' | b'E')
                && (start < 2 || !ident_cont(bytes[start - 2]));
            let mut text = String::new();
            self.at += 1;
            loop {
                match (bytes.get(self.at), bytes.get(self.at + 1)) {
                    // The escaped character whole: positions stay on
                    // character boundaries.
                    (Some(b'\\'), Some(_)) if escapes => {
                        self.at += 1 + self.sql[self.at + 1..]
                            .chars()
                            .next()
                            .map_or(1, char::len_utf8);
                    }
                    (Some(&q), Some(&r)) if q == b && r == b => {
                        text.push(b as char);
                        self.at += 2;
                    }
                    (Some(&q), _) if q == b => {
                        self.at += 1;
                        break;
                    }
                    (Some(_), _) => {
                        let from = self.at;
                        self.at += 1;
                        while self.at < bytes.len()
                            && bytes[self.at] != b
                            && !(escapes && bytes[self.at] == b'\\')
                        {
                            self.at += 1;
                        }
                        text.push_str(&self.sql[from..self.at]);
                    }
                    (None, _) => return Err("with a string or quoted name left open".into()),
                }
            }
            return Ok(if prefixed {
                Token::Prefixed
            } else if b == b'"' {
                Token::Quoted(text)
            } else {
                Token::Text(text)
            });
        }
        if b == b'$'
            && let Some(tag) = dollar_tag(&self.sql[start..])
        {
            let body = start + tag.len();
            let Some(end) = self.sql[body..].find(tag) else {
                return Err("with a $-quoted string left open".into());
            };
            self.at = body + end + tag.len();
            return Ok(Token::Text(self.sql[body..body + end].to_string()));
        }
        if ident_start(b) {
            while self.at < bytes.len() && ident_cont(bytes[self.at]) {
                self.at += 1;
            }
            return Ok(Token::Word(self.sql[start..self.at].to_ascii_lowercase()));
        }
        self.at += 1;
        Ok(if b == b';' {
            Token::Semicolon
        } else {
            Token::Other(b)
        })
    }
}

/// The `$tag$` opening a dollar-quoted string at the start of `text`.
fn dollar_tag(text: &str) -> Option<&str> {
    let close = text[1..].find('$')? + 1;
    let tag = &text.as_bytes()[1..close];
    let valid = tag.first().is_none_or(|b| !b.is_ascii_digit())
        && tag.iter().all(|&b| ident_start(b) || b.is_ascii_digit());
    valid.then(|| &text[..=close])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Template {
        Template::Named(name.into())
    }

    fn templates(sql: &str) -> Vec<Template> {
        read_create_database(sql).unwrap().unwrap().templates
    }

    #[test]
    fn templates_are_read_as_the_server_reads_them() {
        assert_eq!(templates("CREATE DATABASE a"), vec![]);
        assert_eq!(templates("create database a template b"), vec![named("b")]);
        assert_eq!(
            templates(
                "; /* x /* nested */ */ CREATE -- c\n DATABASE \"A\" WITH OWNER me TEMPLATE = \"Victim\""
            ),
            vec![named("Victim")]
        );
        assert_eq!(
            templates("CREATE DATABASE a TEMPLATE 'vic''tim'"),
            vec![named("vic'tim")]
        );
        assert_eq!(
            templates("CREATE DATABASE a TEMPLATE $x$victim$x$"),
            vec![named("victim")]
        );
        assert_eq!(
            templates("CREATE DATABASE a \"TEMPLATE\" victim"),
            vec![named("victim")]
        );
        assert_eq!(
            templates("CREATE DATABASE a TEMPLATE DEFAULT"),
            vec![Template::Default]
        );
        assert_eq!(
            templates("CREATE DATABASE a OWNER template TEMPLATE victim"),
            vec![named("template"), named("victim")]
        );
        // The name is not an option.
        let create = read_create_database("CREATE DATABASE \"Template\"")
            .unwrap()
            .unwrap();
        assert_eq!(
            (create.name.as_str(), create.templates),
            ("Template", vec![])
        );
        assert!(
            read_create_database("CREATE DATABASE a OID 99999")
                .unwrap()
                .unwrap()
                .picks_oid
        );
    }

    #[test]
    fn only_a_first_statement_makes_a_database() {
        for sql in [
            "SELECT 'CREATE DATABASE a TEMPLATE b'",
            "SELECT 1; CREATE DATABASE a TEMPLATE b",
            "SELECT E'\\'' -- '",
            "DO $$ BEGIN EXECUTE 'CREATE DATABASE a'; END $$",
        ] {
            assert_eq!(read_create_database(sql), Ok(None), "{sql}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        let long = "x".repeat(64);
        for sql in [
            "CREATE DATABASE a OWNER = E'\\'' TEMPLATE victim --'",
            "CREATE DATABASE a U&\"t!0065mplate\" UESCAPE '!' victim",
            "CREATE DATABASE a TEMPLATE U&\"victim\"",
            "CREATE DATABASE a TEMPLATE E'victim'",
            "CREATE DATABASE a TEMPLATE 'vic'\n'tim'",
            "CREATE DATABASE a TEMPLATE /* c */ 'vic' -- c\n 'tim'",
            &format!("CREATE DATABASE a TEMPLATE \"{long}\""),
            &format!("CREATE DATABASE {long}"),
            "CREATE DATABASE a TEMPLATE",
            "CREATE DATABASE a TEMPLATE 12",
            "CREATE DATABASE a TEMPLATE 'open",
            "CREATE DATABASE a /* open",
        ] {
            assert!(read_create_database(sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn statements_are_counted_as_the_server_splits_them() {
        assert_eq!(statements("SELECT 1"), 1);
        assert_eq!(statements(";; SELECT ';' ;"), 1);
        assert_eq!(statements("SELECT $$;$$, \"a;\" -- ;\n"), 1);
        assert_eq!(statements("SELECT 1; DROP TABLE partest_result"), 2);
        // In an E'' string a backslash escapes the quote, so the string
        // ends where a standard reading would go on: the ; after it counts.
        assert_eq!(
            statements("SELECT E'a\\'' ; DROP TABLE t; SELECT '"),
            usize::MAX
        );
        assert_eq!(statements("SELECT E'a\\'' ; DROP TABLE t"), 2);
        assert_eq!(statements("SELECT 'open"), usize::MAX);
        // Escaped or not, a character beyond ASCII is read whole.
        assert_eq!(
            statements("SELECT E'\\\u{e9}x', '\u{e9}', \"\u{e9}\", \u{e9}b"),
            1
        );
    }

    /// Every short text over the characters that steer the scanner reads
    /// without a panic, as a statement and as a CREATE DATABASE's tail.
    #[test]
    fn no_text_makes_the_reader_panic() {
        let pieces = [
            "'", "\"", "\\", "$", "e", "E", "\u{e9}", ";", "-", "/", "*", " ", "&", "\n", "x",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            texts = texts
                .iter()
                .flat_map(|t| pieces.iter().map(move |p| format!("{t}{p}")))
                .collect();
            for text in &texts {
                let _ = statements(text);
                let _ = read_create_database(&format!("CREATE DATABASE a TEMPLATE {text}"));
                let _ = read_create_database(&format!("CREATE DATABASE {text}"));
            }
        }
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
