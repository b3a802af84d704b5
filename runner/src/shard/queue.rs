//! `--shard queue`: every machine of one CI run pulls units (a pytest
//! module, or a batch of tests) from one Redis list, longest first, until it
//! is empty. The coordinator asks for a unit only when its slots run out of
//! local work, so Redis is never on the per-test path; a background thread
//! keeps this machine's lease alive and writes what ended.
//!
//! Keys, all under `partest:queue:<run>:` and expiring an hour after the
//! last machine's last heartbeat; nothing else on the server is touched:
//!
//! - `ready`, `fingerprint`, `total`: set once, atomically, by the first machine;
//! - `pending`, `serial`: unit numbers still to claim (parallel / serial);
//! - `claimed:<m>`, `claimed-serial:<m>`: what machine m holds;
//! - `alive:<m>`: m's lease, refreshed in the background;
//! - `machines`, `gone`: machines at work, and dead ones whose units were taken back;
//! - `done`: finished units; `ended`: test → machine, for tests that ended;
//! - `results:<m>`: test → outcome, so a dead machine's results are reported once.
//!
//! A machine whose lease lapses is dead: the first machine to move it from
//! `machines` to `gone` puts its claims back at the head of the queue and
//! reports the results it had written; tests that already ended are not run
//! again. Every machine stays until every unit is done, so that a unit given
//! back late still finds someone to run it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::{Commands, Connection};

use super::split::{dealing_order, file_of, weights};
use super::stable_hash;
use crate::error::Error;
use crate::model::{Status, TestCase};

/// How long the queue's keys live after the last heartbeat.
const KEY_TTL: Duration = Duration::from_secs(3600);
/// A batch of tests (adapters without modules) is closed at this much
/// expected time, or at `BATCH_TESTS` tests.
const BATCH_TIME: Duration = Duration::from_secs(2);
const BATCH_TESTS: usize = 32;
/// Between two looks at the queue while other machines finish.
const POLL: Duration = Duration::from_millis(300);

/// Where the queue is and who this machine is in it.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    pub url: String,
    pub run: String,
    pub lease: Duration,
    /// This machine, unique within the run.
    pub machine: String,
}

/// A unit of the queue: tests claimed together, by index into the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueUnit {
    pub tests: Vec<u32>,
    pub serial: bool,
}

/// The queue's units for a plan's tests: parallel ones longest first (a
/// module together for `by_file` adapters, else batches of consecutive
/// tests), then serial tests one per unit. Weights come from `known` (the
/// timings file every machine shares), so every machine builds the same list.
pub fn queue_units(
    tests: &[TestCase],
    parallel: &[u32],
    serial: &[u32],
    by_file: bool,
    known: &dyn Fn(&str) -> Option<Duration>,
) -> Vec<QueueUnit> {
    let w = weights(tests, known).unwrap_or_else(|| vec![1; tests.len()]);
    let micros = |t: u32| w[t as usize];
    let unit_list = |members: &[u32], group: bool| -> Vec<super::Unit> {
        let mut units: Vec<super::Unit> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for &t in members {
            let name = &tests[t as usize].name;
            let key = if group {
                file_of(name).to_string()
            } else {
                name.clone()
            };
            let at = *index.entry(key.clone()).or_insert_with(|| {
                units.push(super::Unit {
                    key,
                    tests: Vec::new(),
                    weight: 0,
                });
                units.len() - 1
            });
            units[at].tests.push(t);
            units[at].weight += micros(t);
        }
        units
    };
    let mut out = Vec::new();
    let parallel_units = unit_list(parallel, by_file);
    let order = dealing_order(&parallel_units);
    if by_file {
        out.extend(order.iter().map(|&u| QueueUnit {
            tests: parallel_units[u].tests.clone(),
            serial: false,
        }));
    } else {
        // Without timings nothing tells a long test from a short one: small
        // batches (one test each for small suites, up to BATCH_TESTS for
        // tens of thousands), so that the tail stays short.
        let have_times = weights(tests, known).is_some();
        let (limit, most) = if have_times {
            (BATCH_TIME.as_micros() as u64, BATCH_TESTS)
        } else {
            (u64::MAX, (parallel.len() / 256).clamp(1, BATCH_TESTS))
        };
        let mut batch: Vec<u32> = Vec::new();
        let mut batch_weight = 0u64;
        for &u in &order {
            let unit = &parallel_units[u];
            batch.extend(&unit.tests);
            batch_weight += unit.weight;
            if batch_weight >= limit || batch.len() >= most {
                out.push(QueueUnit {
                    tests: std::mem::take(&mut batch),
                    serial: false,
                });
                batch_weight = 0;
            }
        }
        if !batch.is_empty() {
            out.push(QueueUnit {
                tests: batch,
                serial: false,
            });
        }
    }
    let serial_units = unit_list(serial, false);
    out.extend(dealing_order(&serial_units).into_iter().map(|u| QueueUnit {
        tests: serial_units[u].tests.clone(),
        serial: true,
    }));
    out
}

/// The same on every machine that selected the same tests into the same units.
pub fn fingerprint(tests: &[TestCase], units: &[QueueUnit]) -> String {
    let mut text = String::new();
    for u in units {
        text.push(if u.serial { 'S' } else { 'P' });
        for &t in &u.tests {
            text.push_str(&tests[t as usize].name);
            text.push('\n');
        }
        text.push('\u{1}');
    }
    format!("{:016x}-{}", stable_hash(&text), units.len())
}

/// A status as the results hash holds it (serde's lowercase names).
fn parse_status(s: &str) -> Option<Status> {
    Some(match s {
        "pass" => Status::Pass,
        "fail" => Status::Fail,
        "timeout" => Status::Timeout,
        "crash" => Status::Crash,
        "skip" => Status::Skip,
        "cancelled" => Status::Cancelled,
        _ => return None,
    })
}

/// The run id from the CI engine: one id for every machine of one CI run.
pub fn run_id_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<(String, &'static str)> {
    let get = |n: &str| env(n).filter(|v| !v.trim().is_empty());
    if let Some(id) = get("GITHUB_RUN_ID") {
        let attempt = get("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into());
        let job = get("GITHUB_JOB").unwrap_or_default();
        return Some((format!("gh-{id}-{attempt}-{job}"), "GITHUB_RUN_ID"));
    }
    if let Some(id) = get("CI_PIPELINE_ID") {
        // Parallel jobs are named "test 1/3": the name without the index.
        let job = get("CI_JOB_NAME").unwrap_or_default();
        let job = job
            .rsplit_once(' ')
            .filter(|(_, k)| k.contains('/'))
            .map_or(job.as_str(), |(name, _)| name)
            .to_string();
        return Some((format!("gl-{id}-{job}"), "CI_PIPELINE_ID"));
    }
    if let Some(id) = get("CIRCLE_WORKFLOW_ID") {
        let job = get("CIRCLE_JOB").unwrap_or_default();
        return Some((format!("cc-{id}-{job}"), "CIRCLE_WORKFLOW_ID"));
    }
    if let Some(id) = get("BUILDKITE_BUILD_ID") {
        let step = get("BUILDKITE_STEP_ID").unwrap_or_default();
        return Some((format!("bk-{id}-{step}"), "BUILDKITE_BUILD_ID"));
    }
    None
}

/// Only characters that are safe in a key and readable in `redis-cli`.
pub fn clean_run_id(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() > 120 {
        format!("{}-{:016x}", &clean[..100], stable_hash(raw))
    } else {
        clean
    }
}

/// The url without its password, for messages.
pub fn shown_url(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

struct Keys {
    prefix: String,
}

impl Keys {
    fn k(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    fn of(&self, name: &str, machine: &str) -> String {
        format!("{}{name}:{machine}", self.prefix)
    }
}

/// A test that ended on a machine that then died, reported by the machine
/// that took its units back.
#[derive(Clone, Debug, PartialEq)]
pub struct Adopted {
    pub test: u32,
    pub status: Status,
    pub duration: Duration,
    pub machine: String,
}

/// What one look at the queue found, once this machine ran out of work.
#[derive(Debug, Default)]
pub struct Round {
    /// Every unit is done: the run is over.
    pub finished: bool,
    /// Units are back in the queue (a dead machine's): pull again.
    pub more: bool,
    pub adopted: Vec<Adopted>,
}

/// The background thread: where to send it work, and its end.
type Background = (Sender<Msg>, std::thread::JoinHandle<Result<(), String>>);

enum Msg {
    Ended { name: String, outcome: String },
    Done { unit: usize, serial: bool },
    Stop,
}

/// This machine's handle on the queue.
pub struct Feed {
    options: QueueOptions,
    keys: Keys,
    conn: Connection,
    units: Vec<QueueUnit>,
    /// Each test's unit and how many of a unit's tests have not ended.
    unit_of: HashMap<u32, usize>,
    left: Vec<usize>,
    names: Vec<String>,
    index_of: HashMap<String, u32>,
    /// This machine put the units in the queue (and reports skipped tests).
    pub initializer: bool,
    background: Option<Background>,
}

fn redis_err(url: &str, what: &str, e: &redis::RedisError) -> Error {
    Error::setup(format!("queue on {}: {what}: {e}", shown_url(url)))
}

fn connect(url: &str) -> Result<Connection, Error> {
    if url.starts_with("rediss:") || url.starts_with("valkeys:") {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = redis::Client::open(url)
        .map_err(|e| Error::config(format!("--queue {}: {e}", shown_url(url))))?;
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .map_err(|e| redis_err(url, "cannot connect", &e))?;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(30)));
    Ok(conn)
}

impl Feed {
    /// Joins the queue of `options.run`: the first machine fills it, the
    /// others check that they selected the same units.
    pub fn start(
        options: QueueOptions,
        tests: &[TestCase],
        units: Vec<QueueUnit>,
    ) -> Result<Feed, Error> {
        let mut conn = connect(&options.url)?;
        let keys = Keys {
            prefix: format!("partest:queue:{}:", options.run),
        };
        let url = options.url.clone();
        let err = |what: &str| {
            let url = url.clone();
            let what = what.to_string();
            move |e: redis::RedisError| redis_err(&url, &what, &e)
        };
        let me = options.machine.clone();
        let lease_ms = options.lease.as_millis().max(1) as u64;
        let _: () = redis::pipe()
            .set_options(
                keys.of("alive", &me),
                1,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(lease_ms)),
            )
            .sadd(keys.k("machines"), &me)
            .expire(keys.k("machines"), KEY_TTL.as_secs() as i64)
            .query(&mut conn)
            .map_err(err("cannot register this machine"))?;

        let print = fingerprint(tests, &units);
        let ready = keys.k("ready");
        let initializer =
            redis::transaction(&mut conn, std::slice::from_ref(&ready), |con, pipe| {
                let existing: Option<String> = con.get(&ready)?;
                if existing.is_some() {
                    return Ok(Some(false));
                }
                let parallel: Vec<usize> = (0..units.len()).filter(|&u| !units[u].serial).collect();
                let serial: Vec<usize> = (0..units.len()).filter(|&u| units[u].serial).collect();
                let ttl = KEY_TTL.as_secs() as i64;
                pipe.del(keys.k("pending")).ignore();
                pipe.del(keys.k("serial")).ignore();
                if !parallel.is_empty() {
                    pipe.rpush(keys.k("pending"), &parallel).ignore();
                    pipe.expire(keys.k("pending"), ttl).ignore();
                }
                if !serial.is_empty() {
                    pipe.rpush(keys.k("serial"), &serial).ignore();
                    pipe.expire(keys.k("serial"), ttl).ignore();
                }
                pipe.set_ex(keys.k("fingerprint"), &print, ttl as u64)
                    .ignore();
                pipe.set_ex(keys.k("total"), units.len(), ttl as u64)
                    .ignore();
                pipe.set_ex(&ready, &me, ttl as u64).ignore();
                let done: Option<()> = pipe.query(con)?;
                Ok(done.map(|()| true))
            })
            .map_err(err("cannot set up the queue"))?;
        if !initializer {
            let theirs: Option<String> = conn
                .get(keys.k("fingerprint"))
                .map_err(err("cannot read the queue"))?;
            if theirs.as_deref() != Some(print.as_str()) {
                return Err(Error::config(format!(
                    "queue run {:?} on {} holds another selection ({}) than this machine's ({print}): \
                     every machine of one queue run must select the same tests with the same timings file; \
                     use a new --queue-run id for a new run",
                    options.run,
                    shown_url(&options.url),
                    theirs.unwrap_or_else(|| "none".into())
                )));
            }
        }
        let mut unit_of = HashMap::new();
        for (u, unit) in units.iter().enumerate() {
            for &t in &unit.tests {
                unit_of.insert(t, u);
            }
        }
        let left = units.iter().map(|u| u.tests.len()).collect();
        let names: Vec<String> = tests.iter().map(|t| t.name.clone()).collect();
        let index_of = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        let background = start_background(&options, &keys)?;
        Ok(Feed {
            options,
            keys,
            conn,
            units,
            unit_of,
            left,
            names,
            index_of,
            initializer,
            background: Some(background),
        })
    }

    fn err(&self, what: &str) -> impl Fn(redis::RedisError) -> Error + use<> {
        let url = self.options.url.clone();
        let what = what.to_string();
        move |e| redis_err(&url, &what, &e)
    }

    /// The next parallel unit's tests that have not ended yet (None: the
    /// queue is empty for now).
    pub fn claim_parallel(&mut self) -> Result<Option<Vec<u32>>, Error> {
        self.claim(false)
    }

    /// The next serial unit's tests.
    pub fn claim_serial(&mut self) -> Result<Option<Vec<u32>>, Error> {
        self.claim(true)
    }

    fn claim(&mut self, serial: bool) -> Result<Option<Vec<u32>>, Error> {
        let me = self.options.machine.clone();
        let (from, to) = if serial {
            (self.keys.k("serial"), self.keys.of("claimed-serial", &me))
        } else {
            (self.keys.k("pending"), self.keys.of("claimed", &me))
        };
        loop {
            let unit: Option<usize> = redis::cmd("LMOVE")
                .arg(&from)
                .arg(&to)
                .arg("LEFT")
                .arg("RIGHT")
                .query(&mut self.conn)
                .map_err(self.err("cannot claim a unit"))?;
            let Some(unit) = unit else {
                return Ok(None);
            };
            let _: () = self
                .conn
                .expire(&to, KEY_TTL.as_secs() as i64)
                .map_err(self.err("cannot claim a unit"))?;
            let Some(def) = self.units.get(unit) else {
                return Err(Error::setup(format!(
                    "queue run {:?}: unit {unit} is not in this machine's selection",
                    self.options.run
                )));
            };
            let tests = def.tests.clone();
            // Tests a dead machine already ended are not run again.
            let names: Vec<&str> = tests
                .iter()
                .map(|&t| self.names[t as usize].as_str())
                .collect();
            let ended: Vec<Option<String>> = if names.is_empty() {
                Vec::new()
            } else {
                redis::cmd("HMGET")
                    .arg(self.keys.k("ended"))
                    .arg(&names)
                    .query(&mut self.conn)
                    .map_err(self.err("cannot read the queue"))?
            };
            let open: Vec<u32> = tests
                .iter()
                .zip(&ended)
                .filter(|(_, e)| e.is_none())
                .map(|(&t, _)| t)
                .collect();
            self.left[unit] = open.len();
            if open.is_empty() {
                self.send(Msg::Done { unit, serial });
                continue;
            }
            return Ok(Some(open));
        }
    }

    /// A test ended for good (after its retries): recorded in the
    /// background; its unit is done when its last test ended.
    pub fn ended(&mut self, test: u32, status: Status, duration: Duration) {
        let outcome = serde_json::json!({
            "status": status,
            "secs": duration.as_secs_f64(),
        })
        .to_string();
        self.send(Msg::Ended {
            name: self.names[test as usize].clone(),
            outcome,
        });
        if let Some(&unit) = self.unit_of.get(&test) {
            self.left[unit] = self.left[unit].saturating_sub(1);
            if self.left[unit] == 0 {
                let serial = self.units[unit].serial;
                self.send(Msg::Done { unit, serial });
            }
        }
    }

    fn send(&self, msg: Msg) {
        if let Some((tx, _)) = &self.background {
            let _ = tx.send(msg);
        }
    }

    /// One look at the queue once this machine has nothing left: takes back
    /// dead machines' units, and says whether the run is over.
    pub fn round(&mut self) -> Result<Round, Error> {
        let mut round = Round::default();
        let me = self.options.machine.clone();
        let machines: Vec<String> = self
            .conn
            .smembers(self.keys.k("machines"))
            .map_err(self.err("cannot read the queue"))?;
        for m in machines.into_iter().filter(|m| *m != me) {
            let alive: bool = self
                .conn
                .exists(self.keys.of("alive", &m))
                .map_err(self.err("cannot read the queue"))?;
            if alive {
                continue;
            }
            // Only one machine moves it: that one takes its units back.
            let moved: bool = self
                .conn
                .smove(self.keys.k("machines"), self.keys.k("gone"), &m)
                .map_err(self.err("cannot take back a dead machine's units"))?;
            if !moved {
                continue;
            }
            let _: () = self
                .conn
                .expire(self.keys.k("gone"), KEY_TTL.as_secs() as i64)
                .map_err(self.err("cannot read the queue"))?;
            round.more |= self.give_back(&m, "cannot take back a dead machine's units")?;
            let results: HashMap<String, String> =
                self.conn
                    .hgetall(self.keys.of("results", &m))
                    .map_err(self.err("cannot read a dead machine's results"))?;
            let mut adopted: Vec<Adopted> = results
                .into_iter()
                .filter_map(|(name, outcome)| {
                    let test = *self.index_of.get(&name)?;
                    let v: serde_json::Value = serde_json::from_str(&outcome).ok()?;
                    let status = parse_status(v.get("status")?.as_str()?)?;
                    let secs = v.get("secs")?.as_f64()?;
                    Some(Adopted {
                        test,
                        status,
                        duration: Duration::try_from_secs_f64(secs).unwrap_or_default(),
                        machine: m.clone(),
                    })
                })
                .collect();
            adopted.sort_by_key(|a| a.test);
            round.adopted.extend(adopted);
        }
        let (pending, serial, done, total): (usize, usize, usize, usize) = redis::pipe()
            .llen(self.keys.k("pending"))
            .llen(self.keys.k("serial"))
            .scard(self.keys.k("done"))
            .get(self.keys.k("total"))
            .query(&mut self.conn)
            .map_err(self.err("cannot read the queue"))?;
        round.more |= pending + serial > 0;
        round.finished = done >= total && !round.more;
        Ok(round)
    }

    /// Puts every unit `machine` holds back at the head of its queue
    /// (parallel and serial), last claimed first so the order is kept;
    /// true if it held any. `what` names the step in an error.
    fn give_back(&mut self, machine: &str, what: &str) -> Result<bool, Error> {
        let mut any = false;
        for (claimed, list) in [("claimed", "pending"), ("claimed-serial", "serial")] {
            loop {
                let unit: Option<String> = redis::cmd("LMOVE")
                    .arg(self.keys.of(claimed, machine))
                    .arg(self.keys.k(list))
                    .arg("RIGHT")
                    .arg("LEFT")
                    .query(&mut self.conn)
                    .map_err(self.err(what))?;
                if unit.is_none() {
                    break;
                }
                any = true;
            }
        }
        Ok(any)
    }

    /// Waits between two rounds.
    pub fn pause(&self) {
        std::thread::sleep(POLL);
    }

    /// Leaves the queue: what this machine claimed and did not finish
    /// (fail-fast, Ctrl-C, an error) goes back to the head of the queue for
    /// the others; what ended is flushed; the lease is dropped.
    pub fn finish(mut self) -> Result<(), Error> {
        let flushed = match self.background.take() {
            Some((tx, handle)) => {
                let _ = tx.send(Msg::Stop);
                handle
                    .join()
                    .unwrap_or_else(|_| Err("the queue thread panicked".into()))
            }
            None => Ok(()),
        };
        let me = self.options.machine.clone();
        self.give_back(&me, "cannot give back this machine's units")?;
        let _: () = redis::pipe()
            .srem(self.keys.k("machines"), &me)
            .del(self.keys.of("alive", &me))
            .query(&mut self.conn)
            .map_err(self.err("cannot leave the queue"))?;
        flushed.map_err(|e| Error::setup(format!("queue on {}: {e}", shown_url(&self.options.url))))
    }
}

/// The background thread: the lease, every third of it; what ended, as it
/// comes, in order (a unit is marked done after its tests' results).
fn start_background(options: &QueueOptions, keys: &Keys) -> Result<Background, Error> {
    let mut conn = connect(&options.url)?;
    let (tx, rx): (Sender<Msg>, Receiver<Msg>) = crossbeam_channel::unbounded();
    let me = options.machine.clone();
    let lease = options.lease;
    let prefix = keys.prefix.clone();
    let handle = std::thread::Builder::new()
        .name("partest-queue".into())
        .spawn(move || {
            let keys = Keys { prefix };
            let beat_every = (lease / 3).max(Duration::from_millis(50));
            let mut last_beat = Instant::now();
            let ttl = KEY_TTL.as_secs() as i64;
            // Every key of the run expires; EXPIRE on a key not yet written
            // does nothing, so this runs again after the last write.
            let expire_all = |p: &mut redis::Pipeline| {
                for k in [
                    "ready",
                    "fingerprint",
                    "total",
                    "pending",
                    "serial",
                    "done",
                    "ended",
                    "machines",
                    "gone",
                ] {
                    p.expire(keys.k(k), ttl).ignore();
                }
                for k in ["claimed", "claimed-serial", "results"] {
                    p.expire(keys.of(k, &me), ttl).ignore();
                }
            };
            let beat = |conn: &mut Connection| -> redis::RedisResult<()> {
                let mut p = redis::pipe();
                p.set_options(
                    keys.of("alive", &me),
                    1,
                    redis::SetOptions::default()
                        .with_expiration(redis::SetExpiry::PX(lease.as_millis().max(1) as u64)),
                )
                .ignore();
                expire_all(&mut p);
                p.query(conn)
            };
            let mut error: Option<String> = None;
            loop {
                let wait = beat_every.saturating_sub(last_beat.elapsed());
                let msg = match rx.recv_timeout(wait) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Msg::Stop),
                };
                let result = match msg {
                    None => Ok(()),
                    Some(Msg::Stop) => break,
                    Some(Msg::Ended { name, outcome }) => redis::pipe()
                        .hset(keys.of("results", &me), &name, outcome)
                        .ignore()
                        .hset(keys.k("ended"), &name, &me)
                        .ignore()
                        .query::<()>(&mut conn),
                    Some(Msg::Done { unit, serial }) => {
                        let claimed = if serial { "claimed-serial" } else { "claimed" };
                        redis::pipe()
                            .sadd(keys.k("done"), unit)
                            .ignore()
                            .lrem(keys.of(claimed, &me), 1, unit)
                            .ignore()
                            .query::<()>(&mut conn)
                    }
                };
                if let Err(e) = result {
                    error.get_or_insert(e.to_string());
                }
                if last_beat.elapsed() >= beat_every {
                    if let Err(e) = beat(&mut conn) {
                        error.get_or_insert(e.to_string());
                    }
                    last_beat = Instant::now();
                }
            }
            // What is still queued was sent before Stop: write it too.
            for msg in rx.try_iter() {
                if let Msg::Ended { name, outcome } = msg {
                    let _ = redis::pipe()
                        .hset(keys.of("results", &me), &name, outcome)
                        .hset(keys.k("ended"), &name, &me)
                        .query::<()>(&mut conn);
                }
            }
            let mut last = redis::pipe();
            expire_all(&mut last);
            if let Err(e) = last.query::<()>(&mut conn) {
                error.get_or_insert(e.to_string());
            }
            match error {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
        .map_err(|e| Error::setup(format!("cannot start the queue thread: {e}")))?;
    Ok((tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(names: &[&str]) -> Vec<TestCase> {
        names.iter().map(|n| TestCase::new(*n)).collect()
    }

    #[test]
    fn units_are_modules_or_batches_longest_first_then_serial() {
        let tests = suite(&["a.py::x", "b.py::y", "a.py::z", "s.py::only"]);
        let known = |n: &str| match n {
            "b.py::y" => Some(Duration::from_secs(5)),
            _ => Some(Duration::from_secs(1)),
        };
        let units = queue_units(&tests, &[0, 1, 2], &[3], true, &known);
        assert_eq!(
            units,
            [
                QueueUnit {
                    tests: vec![1],
                    serial: false
                },
                QueueUnit {
                    tests: vec![0, 2],
                    serial: false
                },
                QueueUnit {
                    tests: vec![3],
                    serial: true
                },
            ]
        );
        // Without modules: batches that close at 2 s of expected time.
        let units = queue_units(&tests, &[0, 1, 2], &[], false, &known);
        assert_eq!(units[0].tests, [1]);
        assert_eq!(units[1].tests.len(), 2);
        let a = fingerprint(&tests, &units);
        assert_eq!(a, fingerprint(&tests, &units.clone()));
        assert_ne!(a, fingerprint(&tests, &units[..1]));
    }

    #[test]
    fn run_ids_come_from_the_ci_engine() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let id = |vars| run_id_from_env(&env(vars)).map(|(id, _)| id);
        assert_eq!(
            id(&[("CI_PIPELINE_ID", "77"), ("CI_JOB_NAME", "test 2/3")]),
            Some("gl-77-test".into())
        );
        assert_eq!(
            id(&[
                ("GITHUB_RUN_ID", "9"),
                ("GITHUB_RUN_ATTEMPT", "2"),
                ("GITHUB_JOB", "t")
            ]),
            Some("gh-9-2-t".into())
        );
        assert_eq!(id(&[]), None);
        assert_eq!(clean_run_id("a b/c"), "a_b_c");
        assert_eq!(shown_url("redis://:pw@h:6379/2"), "redis://…@h:6379/2");
    }
}
