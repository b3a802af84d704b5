//! Exercises the `redis` and `postgres` capabilities against real servers
//! (partest's own tests; they skip when no server is reachable).

use partest_plugin_sdk::redis::Reply;
use partest_plugin_sdk::{Env, Error, Plugin, Result, RunInfo, Slot, postgres, redis};

struct Services;

fn key(run: &RunInfo, rest: &str) -> String {
    format!("partest-test:{}:{rest}", run.run_id)
}

fn db(run: &RunInfo) -> String {
    format!("partest_test_{}", run.run_id)
}

impl Plugin for Services {
    const ENV_VARS: &'static [&'static str] = &[
        "GOT",
        "SCANNED",
        "PG_DB",
        "PG_NULL",
        "PG_URL",
        "INCR",
        "FLUSHALL",
        "REDIS_URL",
    ];

    fn configure() -> Result<Self> {
        Ok(Services)
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        redis::command(&["SELECT", "15"])?;
        redis::command(&["SET", &key(run, "a"), "hello"])?;
        let got = redis::command(&["GET", &key(run, "a")])?;
        // SCAN replies [cursor, [keys]]: a nested array across the boundary.
        let scan = redis::command(&["SCAN", "0", "MATCH", &key(run, "*"), "COUNT", "1000"])?;
        let keys = match scan {
            Reply::Array(parts) => match parts.get(1) {
                Some(Reply::Array(keys)) => keys.len(),
                _ => return Err(Error::failed("SCAN did not return a key list")),
            },
            _ => return Err(Error::failed("SCAN did not return an array")),
        };
        redis::command(&["DEL", &key(run, "a")])?;
        postgres::execute(
            None,
            &format!("CREATE DATABASE {}", postgres::ident(&db(run))),
        )?;
        let rows = postgres::query(
            Some(&db(run)),
            "SELECT current_database() AS db, NULL AS nothing",
        )?;
        let current = rows.rows[0][0].clone().unwrap_or_default();
        Ok(vec![
            ("GOT".into(), got.as_str().unwrap_or("").to_string()),
            ("SCANNED".into(), keys.to_string()),
            ("PG_DB".into(), current),
            ("PG_NULL".into(), format!("{:?}", rows.rows[0][1])),
            ("PG_URL".into(), postgres::url(Some(&db(run)))),
        ])
    }

    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        redis::command(&["SELECT", "15"])?;
        let n = redis::command(&["INCR", &key(run, &slot.name)])?;
        redis::command(&["DEL", &key(run, &slot.name)])?;
        let flush = match redis::command(&["FLUSHALL"]) {
            Err(Error::Refused(_)) => "refused",
            _ => "allowed",
        };
        Ok(vec![
            ("INCR".into(), format!("{n:?}")),
            ("FLUSHALL".into(), flush.into()),
            ("REDIS_URL".into(), format!("{}/15", redis::url())),
        ])
    }

    fn teardown_run(&mut self, run: &RunInfo, _run_failed: bool) -> Result<()> {
        postgres::execute(
            None,
            &format!("DROP DATABASE IF EXISTS {}", postgres::ident(&db(run))),
        )
    }
}

partest_plugin_sdk::register!(Services);
