//! `postgres`: SQL on the one server granted by `allow.postgres`. The host
//! holds the credentials. The connection to the granted database is kept
//! for the instance; one to a named database is closed after the call, so
//! it never blocks `DROP DATABASE` or `CREATE DATABASE ... TEMPLATE` on it.

use std::str::FromStr;

use postgres::{Client, NoTls, SimpleQueryMessage};

use super::bindings::v0_1_0::partest::plugin::postgres::{Host, Rows};
use super::bindings::v0_1_0::partest::plugin::types::Error;
use super::state::HostState;

impl HostState {
    fn pg(&mut self, database: Option<String>) -> Result<&mut Client, Error> {
        let Some(url) = self.grants.postgres.clone() else {
            return Err(Error::Refused(
                "no PostgreSQL server was granted (allow.postgres)".into(),
            ));
        };
        if !self.postgres.contains_key(&database) {
            let mut config = postgres::Config::from_str(&url)
                .map_err(|e| Error::BadConfig(format!("allow.postgres = {url:?}: {e}")))?;
            if let Some(db) = &database {
                config.dbname(db);
            }
            config.connect_timeout(self.remaining());
            // A statement gets no more time than the plugin's call has left.
            config.options(&format!(
                "-c statement_timeout={}",
                self.remaining().as_millis()
            ));
            let client = config.connect(NoTls).map_err(|e| {
                Error::Unavailable(format!(
                    "cannot connect to PostgreSQL at {}: {e}",
                    redact(&url)
                ))
            })?;
            self.postgres.insert(database.clone(), client);
        }
        Ok(self.postgres.get_mut(&database).expect("just connected"))
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// `url` with its database path replaced.
fn with_database(url: &str, db: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match url[start..].find('?') {
        Some(q) => url.split_at(start + q),
        None => (url, ""),
    };
    let base = match base[start..].find('/') {
        Some(slash) => &base[..start + slash],
        None => base,
    };
    format!("{base}/{db}{query}")
}

fn pg_err(e: postgres::Error) -> Error {
    if e.is_closed() || e.as_db_error().is_none() {
        Error::Unavailable(format!("PostgreSQL: {e}"))
    } else {
        Error::Failed(format!("PostgreSQL: {e}"))
    }
}

impl Host for HostState {
    fn url(&mut self, database: Option<String>) -> String {
        let url = self.grants.postgres.clone().unwrap_or_default();
        match database {
            Some(db) => with_database(&url, &db),
            None => url,
        }
    }

    fn execute(&mut self, database: Option<String>, sql: String) -> Result<(), Error> {
        let r = self
            .pg(database.clone())?
            .batch_execute(&sql)
            .map_err(pg_err);
        if database.is_some() {
            self.postgres.remove(&database);
        }
        r
    }

    fn query(&mut self, database: Option<String>, sql: String) -> Result<Rows, Error> {
        let messages = self
            .pg(database.clone())?
            .simple_query(&sql)
            .map_err(pg_err);
        if database.is_some() {
            self.postgres.remove(&database);
        }
        let messages = messages?;
        let mut rows = Rows {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        let mut size = 0;
        for m in messages {
            if let SimpleQueryMessage::Row(row) = m {
                if rows.columns.is_empty() {
                    rows.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                let values: Vec<Option<String>> = (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect();
                size += values
                    .iter()
                    .map(|v| v.as_ref().map_or(0, String::len))
                    .sum::<usize>();
                rows.rows.push(values);
            }
        }
        self.check_size("the query result", size)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_and_password_hidden() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u@h/db");
    }
}
