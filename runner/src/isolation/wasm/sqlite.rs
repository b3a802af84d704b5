//! `sqlite`: SQLite databases run by the host's rusqlite for the plugin.
//! Always granted, because it reaches nothing of anyone else's:
//!
//! - the files live in `<state>/plugins/<name>/databases/`, a directory the
//!   plugin cannot reach through WASI, so it can plant no links there; names
//!   are relative paths of plain segments (no `..`, no `/` first), opened
//!   with `SQLITE_OPEN_NOFOLLOW`, and a link on the way is refused anyway;
//! - `ATTACH` (and so `VACUUM INTO`) is off, the connection is defensive,
//!   no URI filenames, no extensions;
//! - a statement still running at the call's deadline (or past the
//!   plugin's disk quota) is interrupted from a watchdog thread;
//! - the only host path it tells is a database's own (`host-path`);
//! - outside, it only reads: `copy-granted` copies one file the user
//!   granted, opened read-only.

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, ffi};
use std::sync::Arc;

use super::capability::{Capability, Grant, SettingGrantError, string_list};
use super::state::HostState;
use super::types::{Error, Rows};
use super::{deadline, quota};
use crate::config::PluginTable;

/// `allow.sqlite`: database files outside its own a plugin may copy from,
/// relative to the project root (read only).
pub struct Sources(Vec<String>);

/// The files SQLite keeps next to a database.
const SIDECARS: &[&str] = &["-wal", "-shm", "-journal"];

pub struct Sqlite;

impl Capability for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn grant(
        &self,
        value: Option<&toml::Value>,
        _table: &PluginTable,
    ) -> Result<Option<Grant>, String> {
        let sources = match value {
            None => Vec::new(),
            Some(v) => string_list(v).ok_or("expected a list of database files")?,
        };
        // Always granted: its own databases reach nothing of anyone else's.
        Ok(Some(Arc::new(Sources(sources))))
    }
    fn hint(&self) -> String {
        "nothing: it is always granted".into()
    }
    fn describe_grant(&self, grant: &Grant) -> String {
        match grant.downcast_ref::<Sources>() {
            Some(Sources(files)) if !files.is_empty() => {
                format!(
                    "granted (its own databases; copies from: {})",
                    files.join(", ")
                )
            }
            _ => "granted (its own databases only)".into(),
        }
    }
    fn grant_setting(
        &self,
        allow: &mut Option<toml::Value>,
        value: &toml::Value,
    ) -> Result<(), SettingGrantError> {
        if !value.is_str() {
            return Err(SettingGrantError::Expected("a file name"));
        }
        match allow {
            Some(toml::Value::Array(items)) => {
                if !items.contains(value) {
                    items.push(value.clone());
                }
            }
            // A value that is not a list is reported by `grant`.
            Some(_) => {}
            None => *allow = Some(toml::Value::Array(vec![value.clone()])),
        }
        Ok(())
    }
}

/// Whether `segment` is a plain name: `[A-Za-z0-9][A-Za-z0-9._-]*`.
fn plain(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    segment.len() <= 255
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether `name` names a database: 1 to 8 plain segments, not a sidecar's
/// name, ending in `.db`, `.sqlite` or `.sqlite3` (so that no database
/// looks like a file a program loads: a `.pth`, a config, a script).
fn valid_name(name: &str) -> bool {
    let segments: Option<Vec<&str>> = Path::new(name)
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    segments.is_some_and(|s| (1..=8).contains(&s.len()) && s.iter().all(|x| plain(x)))
        && !SIDECARS.iter().any(|s| name.ends_with(s))
        && super::env::DATABASE_SUFFIXES
            .iter()
            .any(|s| name.ends_with(s) && name.len() > s.len())
}

/// Refuses any link between `base` and `path` (which is under it).
fn no_links(base: &Path, path: &Path) -> Result<(), Error> {
    let mut at = base.to_path_buf();
    for part in path.strip_prefix(base).unwrap_or(path).components() {
        at.push(part);
        if at
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(Error::Refused(format!(
                "{} is a symbolic link; the sqlite capability follows none",
                at.display()
            )));
        }
    }
    Ok(())
}

fn sql_err(name: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Failed(format!("sqlite {name}: {e}"))
}

/// What all of SQLite in partest may hold in memory at once: the plugins'
/// statements can grow partest no further (history and the rest need
/// little). Past it, an allocation fails and the statement with it.
const HARD_HEAP_LIMIT: i64 = 512 << 20;

/// The page cache of a plugin's connection.
const CACHE_KIB: i64 = 8 << 10;

/// Locks a connection down: no ATTACH (so no VACUUM INTO, which attaches),
/// defensive mode (no writable_schema tricks), untrusted schema; and bounds
/// it: a string or blob at most `boundary` bytes (one function call cannot
/// build a gigabyte), a statement's text at most that, a small page cache
/// with temporary tables on disk, and at most `quota` bytes of pages in the
/// database, enforced as each page is written (not between calls).
fn harden(conn: &Connection, name: &str, boundary: usize, quota: u64) -> Result<(), Error> {
    static HEAP: std::sync::Once = std::sync::Once::new();
    // SAFETY: sets a process-wide number; SQLite reads it on allocation.
    HEAP.call_once(|| unsafe {
        ffi::sqlite3_hard_heap_limit64(HARD_HEAP_LIMIT);
    });
    let length = i32::try_from(boundary.max(1 << 20)).unwrap_or(i32::MAX);
    // SAFETY: the handle is live; sqlite3_limit only sets numbers on it.
    unsafe {
        ffi::sqlite3_limit(conn.handle(), ffi::SQLITE_LIMIT_ATTACHED, 0);
        ffi::sqlite3_limit(conn.handle(), ffi::SQLITE_LIMIT_LENGTH, length);
        ffi::sqlite3_limit(conn.handle(), ffi::SQLITE_LIMIT_SQL_LENGTH, length);
    }
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .and_then(|_| conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false))
        .map(drop)
        .map_err(sql_err(name))?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(sql_err(name))?;
    let pages = (quota as i64 / page_size.max(512)).max(1);
    conn.execute_batch(&format!(
        "PRAGMA max_page_count = {pages}; PRAGMA cache_size = -{CACHE_KIB}; PRAGMA temp_store = FILE;"
    ))
    .map_err(sql_err(name))
}

impl HostState {
    /// The host path of database `name`, refused unless `name` is plain
    /// segments and no sidecar's name.
    fn database_path(&self, name: &str) -> Result<PathBuf, Error> {
        if !valid_name(name) {
            return Err(Error::Refused(format!(
                "sqlite database name {name:?}: use plain names like \"r1/template.db\" (letters, digits, \
                 `.`, `_`, `-`; no `..`, no absolute paths, no -wal/-shm/-journal; ending in .db, \
                 .sqlite or .sqlite3)"
            )));
        }
        Ok(self.grants.databases().join(name))
    }

    /// [`HostState::database_path`], with the directories on the way made.
    fn database_dir_made(&self, name: &str) -> Result<PathBuf, Error> {
        let full = self.database_path(name)?;
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Failed(format!("cannot create {}: {e}", parent.display())))?;
        }
        Ok(full)
    }

    fn open_db(&self, name: &str) -> Result<Connection, Error> {
        let full = self.database_dir_made(name)?;
        no_links(&self.grants.databases(), &full)?;
        let conn = Connection::open_with_flags(
            &full,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(|e| Error::Failed(format!("cannot open {name}: {e}")))?;
        conn.busy_timeout(self.remaining()).map_err(sql_err(name))?;
        harden(&conn, name, self.grants.boundary, self.grants.scratch_quota)?;
        Ok(conn)
    }

    /// Runs `work` on `conn`, interrupted at the call's deadline or when the
    /// plugin's files go over its quota.
    fn bounded<R>(&self, conn: &Connection, work: impl FnOnce() -> R) -> R {
        let handle = conn.get_interrupt_handle();
        let dirs = [self.scratch.clone(), self.grants.databases()];
        let quota = self.quota_now;
        let over = move || quota::exceeded(&[&dirs[0], &dirs[1]], quota).is_some();
        deadline::bounded(self.deadline, over, move || handle.interrupt(), work).0
    }

    /// Removes database `name` and the files SQLite keeps next to it, then
    /// the folders its name made, once empty.
    fn remove_database(&self, name: &str) -> Result<(), Error> {
        let full = self.database_path(name)?;
        let base = self.grants.databases();
        no_links(&base, &full)?;
        for suffix in SIDECARS.iter().chain(&[""]) {
            let mut file = full.clone().into_os_string();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Failed(format!("cannot remove {name}{suffix}: {e}")));
                }
                _ => {}
            }
        }
        // Directories the names made, once empty (remove_dir fails otherwise).
        let mut dir = full.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&base) && *d != base) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// Why an interrupted statement stopped, in the user's terms. A
    /// database that a statement grew past the quota is removed: what is
    /// over the quota would fail every later call, `partest clean`'s too.
    fn interrupted(&self, name: &str, e: rusqlite::Error) -> Error {
        let code = e.sqlite_error_code();
        if code == Some(rusqlite::ErrorCode::DiskFull) {
            let removed = self.remove_database(name).is_ok();
            return Error::Refused(format!(
                "sqlite {name}: stopped at the plugin's disk quota of {} ([plugins.{}] limits = \
                 {{ scratch = \"...\" }}); the database was {}",
                crate::config::ByteSize(self.grants.scratch_quota),
                self.grants.plugin,
                if removed {
                    "removed"
                } else {
                    "left (it could not be removed)"
                }
            ));
        }
        if code == Some(rusqlite::ErrorCode::OperationInterrupted) {
            match self.over_quota() {
                Some(why) => {
                    let removed = self.remove_database(name).is_ok();
                    Error::Refused(format!(
                        "sqlite {name}: stopped: {why}; the database was {}",
                        if removed {
                            "removed"
                        } else {
                            "left (it could not be removed)"
                        }
                    ))
                }
                None => Error::Failed(format!(
                    "sqlite {name}: the statement did not finish within the plugin's call time limit; partest interrupted it"
                )),
            }
        } else {
            sql_err(name)(e)
        }
    }
}

pub fn execute(state: &mut HostState, name: String, sql: String) -> Result<(), Error> {
    state.check_size("the SQL", sql.len())?;
    let conn = state.open_db(&name)?;
    state
        .bounded(&conn, || conn.execute_batch(&sql))
        .map_err(|e| state.interrupted(&name, e))
}

pub fn query(state: &mut HostState, name: String, sql: String) -> Result<Rows, Error> {
    state.check_size("the SQL", sql.len())?;
    let conn = state.open_db(&name)?;
    let limit = state.grants.boundary;
    let result = state.bounded(&conn, || -> Result<Result<Rows, Error>, rusqlite::Error> {
        let mut stmt = conn.prepare(&sql)?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut out = Vec::new();
        let mut size = 0usize;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                let v = match row.get_ref(i)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(i) => Some(i.to_string()),
                    ValueRef::Real(f) => Some(f.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Some(String::from_utf8_lossy(t).into_owned())
                    }
                };
                size += v.as_ref().map_or(0, String::len);
                values.push(v);
            }
            if size > limit {
                return Ok(Err(Error::Refused(format!(
                    "the query result is over {size} bytes, over the plugin's boundary limit of {limit} bytes (limits.boundary)"
                ))));
            }
            out.push(values);
        }
        Ok(Ok(Rows { columns, rows: out }))
    });
    result.map_err(|e| state.interrupted(&name, e))?
}

pub fn backup(state: &mut HostState, source: String, target: String) -> Result<(), Error> {
    let src_path = state.database_path(&source)?;
    if !src_path.is_file() {
        return Err(Error::Failed(format!(
            "sqlite backup: {source} does not exist"
        )));
    }
    let src = state.open_db(&source)?;
    let dst = state.open_db(&target)?;
    online_backup(&src, &dst, state.deadline)
        .map_err(|e| Error::Failed(format!("sqlite backup {source} -> {target}: {e}")))
}

pub fn copy_granted(state: &mut HostState, source: String, target: String) -> Result<(), Error> {
    let granted = state.grants.caps.get::<Sources>();
    if !granted.is_some_and(|g| g.0.contains(&source)) {
        return Err(Error::Refused(format!(
            "sqlite {source:?} is not the plugin's and not granted \
             (allow = {{ sqlite = [{source:?}] }})"
        )));
    }
    let full = state.grants.root.join(&source);
    if !full.is_file() {
        return Err(Error::BadConfig(format!(
            "{source}: no such database file ({})",
            full.display()
        )));
    }
    let src = Connection::open_with_flags(
        &full,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(|e| Error::Failed(format!("cannot open {}: {e}", full.display())))?;
    harden(
        &src,
        &source,
        state.grants.boundary,
        state.grants.scratch_quota,
    )?;
    let _ = src.busy_timeout(state.remaining());
    let dst = state.open_db(&target)?;
    online_backup(&src, &dst, state.deadline)
        .map_err(|e| Error::Failed(format!("sqlite backup {} -> {target}: {e}", full.display())))
}

pub fn remove(state: &mut HostState, name: String) -> Result<(), Error> {
    state.remove_database(&name)
}

pub fn size(state: &mut HostState, name: String) -> Result<Option<u64>, Error> {
    let full = state.database_path(&name)?;
    Ok(full
        .symlink_metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len()))
}

pub fn databases(state: &mut HostState) -> Result<Vec<String>, Error> {
    let base = state.grants.databases();
    let mut names = Vec::new();
    list_under(&base, &base, &mut names);
    names.sort();
    Ok(names)
}

pub fn host_path(state: &mut HostState, name: String) -> Result<String, Error> {
    // Its directory is made: tests and setup commands create the file.
    let full = state.database_dir_made(&name)?;
    Ok(full.to_string_lossy().into_owned())
}

/// The databases under `dir`, as names relative to `base` (no sidecars, no links).
fn list_under(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            list_under(base, &path, out);
        } else if kind.is_file()
            && let Ok(rel) = path.strip_prefix(base)
        {
            let name = rel.to_string_lossy().into_owned();
            if !SIDECARS.iter().any(|s| name.ends_with(s)) {
                out.push(name);
            }
        }
    }
}

/// SQLite's online backup (`sqlite3_backup_*`), page by page until done
/// or `deadline`. (rusqlite's safe wrapper needs its `backup` feature,
/// which the shared dependency line does not enable.)
fn online_backup(src: &Connection, dst: &Connection, deadline: Instant) -> Result<(), String> {
    // The target is a disposable scratch copy, remade by the next setup if
    // a crash tore it: no fsyncs (they were most of a slot's setup time).
    dst.execute_batch("PRAGMA synchronous = OFF")
        .map_err(|e| e.to_string())?;
    let main = c"main";
    // SAFETY: both handles are live for the whole call (borrowed
    // connections), the backup object is finished before returning, and
    // neither connection is used by anything else meanwhile.
    unsafe {
        let b = ffi::sqlite3_backup_init(dst.handle(), main.as_ptr(), src.handle(), main.as_ptr());
        if b.is_null() {
            return Err(errmsg(dst));
        }
        let mut rc;
        loop {
            if Instant::now() >= deadline {
                ffi::sqlite3_backup_finish(b);
                return Err("did not finish within the plugin's call time limit".into());
            }
            rc = ffi::sqlite3_backup_step(b, 256);
            match rc {
                ffi::SQLITE_OK => continue,
                ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                _ => break,
            }
        }
        ffi::sqlite3_backup_finish(b);
        if rc == ffi::SQLITE_DONE {
            Ok(())
        } else {
            Err(errmsg(dst))
        }
    }
}

fn errmsg(conn: &Connection) -> String {
    // SAFETY: the handle is live; sqlite3_errmsg returns a NUL-terminated string it owns.
    unsafe {
        std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(conn.handle()))
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_segments_name_a_database() {
        for ok in [
            "a.db",
            "r1/template.db",
            "summary/gw0.db",
            "A-b_c.sqlite3",
            "x.sqlite",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            ".hidden",
            "-x",
            "a b",
            "a/../b",
            "../a",
            "/etc/x.db",
            "é.db",
            "",
            "a.db-wal",
            "a.db-journal",
            "a/b/c/d/e/f/g/h/i.db",
            // Names a program would load as code or configuration.
            "A-b_c.1",
            "lib/python3.11/site-packages/x.pth",
            "gitconfig",
            ".db",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_hardened_connection_refuses_attach_and_vacuum_into() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("a.db")).unwrap();
        harden(&conn, "a.db", 1 << 20, 1 << 30).unwrap();
        let other = dir.path().join("b.db");
        let attach = conn.execute_batch(&format!("ATTACH '{}' AS b", other.display()));
        assert!(attach.is_err());
        let vacuum = conn.execute_batch(&format!("VACUUM INTO '{}'", other.display()));
        assert!(vacuum.is_err());
        assert!(!other.exists());
    }
}
