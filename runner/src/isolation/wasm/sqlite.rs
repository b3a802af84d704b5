//! `sqlite`: SQLite files inside the plugin's scratch directory, run by the
//! host's rusqlite. Paths must be relative and stay inside the directory.
//! `backup` uses SQLite's online backup API to clone a template.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, ffi};

use super::bindings::v0_1_0::partest::plugin::sqlite::{Host, Rows};
use super::bindings::v0_1_0::partest::plugin::types::Error;
use super::state::HostState;

impl HostState {
    fn scratch_path(&self, path: &str) -> Result<PathBuf, Error> {
        let p = Path::new(path);
        let inside = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(Error::Refused(format!(
                "sqlite path {path:?} must be relative to the plugin's scratch directory, without `..`"
            )));
        }
        Ok(self.grants.scratch.join(p))
    }

    fn open_db(&self, path: &str) -> Result<Connection, Error> {
        let full = self.scratch_path(path)?;
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Failed(format!("cannot create {}: {e}", parent.display())))?;
        }
        let conn = Connection::open_with_flags(
            &full,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Failed(format!("cannot open {path}: {e}")))?;
        conn.busy_timeout(self.remaining())
            .map_err(|e| Error::Failed(e.to_string()))?;
        // ATTACH could reach any file on the host: not from inside a plugin.
        // SAFETY: the handle is live; sqlite3_limit only sets a number on it.
        unsafe { ffi::sqlite3_limit(conn.handle(), ffi::SQLITE_LIMIT_ATTACHED, 0) };
        Ok(conn)
    }
}

fn sql_err(path: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Failed(format!("sqlite {path}: {e}"))
}

impl Host for HostState {
    fn execute(&mut self, path: String, sql: String) -> Result<(), Error> {
        self.open_db(&path)?
            .execute_batch(&sql)
            .map_err(sql_err(&path))
    }

    fn query(&mut self, path: String, sql: String) -> Result<Rows, Error> {
        let conn = self.open_db(&path)?;
        let mut stmt = conn.prepare(&sql).map_err(sql_err(&path))?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut out = Vec::new();
        let mut size = 0usize;
        let mut rows = stmt.query([]).map_err(sql_err(&path))?;
        while let Some(row) = rows.next().map_err(sql_err(&path))? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                let v = match row.get_ref(i).map_err(sql_err(&path))? {
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
            self.check_size("the query result", size)?;
            out.push(values);
        }
        Ok(Rows { columns, rows: out })
    }

    fn backup(&mut self, source: String, target: String) -> Result<(), Error> {
        let src_path = self.scratch_path(&source)?;
        if !src_path.is_file() {
            return Err(Error::Failed(format!(
                "sqlite backup: {source} does not exist"
            )));
        }
        let src = self.open_db(&source)?;
        let dst = self.open_db(&target)?;
        backup(&src, &dst, self.remaining())
            .map_err(|e| Error::Failed(format!("sqlite backup {source} -> {target}: {e}")))
    }

    fn copy_granted(&mut self, source: String, target: String) -> Result<(), Error> {
        if !self.grants.sqlite.contains(&source) {
            return Err(Error::Refused(format!(
                "sqlite {source:?} is outside the scratch directory and not granted \
                 (allow = {{ sqlite = [{source:?}] }})"
            )));
        }
        let full = self.grants.root.join(&source);
        if !full.is_file() {
            return Err(Error::BadConfig(format!(
                "{source}: no such database file ({})",
                full.display()
            )));
        }
        let src = Connection::open_with_flags(
            &full,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Failed(format!("cannot open {}: {e}", full.display())))?;
        // SAFETY: as in open_db.
        unsafe { ffi::sqlite3_limit(src.handle(), ffi::SQLITE_LIMIT_ATTACHED, 0) };
        let _ = src.busy_timeout(self.remaining());
        let dst = self.open_db(&target)?;
        backup(&src, &dst, self.remaining()).map_err(|e| {
            Error::Failed(format!("sqlite backup {} -> {target}: {e}", full.display()))
        })
    }

    fn host_path(&mut self, path: String) -> Result<String, Error> {
        Ok(self.scratch_path(&path)?.to_string_lossy().into_owned())
    }
}

/// SQLite's online backup (`sqlite3_backup_*`), page by page until done.
/// (rusqlite's safe wrapper needs its `backup` feature, which the shared
/// dependency line does not enable.)
fn backup(src: &Connection, dst: &Connection, budget: Duration) -> Result<(), String> {
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
        let start = std::time::Instant::now();
        let mut rc;
        loop {
            rc = ffi::sqlite3_backup_step(b, 256);
            match rc {
                ffi::SQLITE_OK => continue,
                ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED if start.elapsed() < budget => {
                    std::thread::sleep(Duration::from_millis(5));
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
