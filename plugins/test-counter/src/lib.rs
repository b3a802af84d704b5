//! Counts the calls its instance sees, keeps them in SQLite databases
//! (cloned from a template with the backup API), and writes a summary
//! database `summary/<slot>.db` at teardown, so tests can check that slots
//! are independent.

use partest_plugin_sdk::{Env, Plugin, Result, RunInfo, Slot, log, sqlite};

#[derive(Default)]
struct Counter {
    calls: Vec<String>,
}

impl Plugin for Counter {
    const SUMMARY: &'static str = "counts hook calls per instance (partest's own tests)";
    const MAX_SLOTS: Option<u32> = Some(8);
    const RESETS_BETWEEN_TESTS: bool = true;
    const ENV_VARS: &'static [&'static str] = &["COUNTER_TEMPLATE", "COUNTER_DB", "COUNTER_CALLS"];

    fn configure() -> Result<Self> {
        Ok(Counter::default())
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        self.calls.push("setup-run".into());
        sqlite::execute(
            &format!("template-{}.db", run.run_id),
            "CREATE TABLE IF NOT EXISTS calls (hook TEXT NOT NULL); INSERT INTO calls VALUES ('template');",
        )?;
        log::info(format!("template ready for run {}", run.run_id));
        Ok(vec![(
            "COUNTER_TEMPLATE".into(),
            sqlite::host_path(&format!("template-{}.db", run.run_id))?,
        )])
    }

    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        self.calls.push(format!("setup-slot:{}", slot.name));
        let db = format!("{}-{}.db", run.run_id, slot.name);
        sqlite::backup(&format!("template-{}.db", run.run_id), &db)?;
        Ok(vec![
            ("COUNTER_DB".into(), sqlite::host_path(&db)?),
            ("COUNTER_CALLS".into(), self.calls.len().to_string()),
        ])
    }

    fn reset_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<()> {
        self.calls.push(format!("reset-slot:{}", slot.name));
        sqlite::execute(
            &format!("{}-{}.db", run.run_id, slot.name),
            "INSERT INTO calls VALUES ('reset')",
        )
    }

    fn teardown_slot(&mut self, run: &RunInfo, slot: &Slot, _run_failed: bool) -> Result<()> {
        self.calls.push(format!("teardown-slot:{}", slot.name));
        let rows = sqlite::query(
            &format!("{}-{}.db", run.run_id, slot.name),
            "SELECT count(*) FROM calls",
        )?;
        let in_db = rows
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        let summary = format!("{}\nrows={in_db}\n", self.calls.join("\n"));
        sqlite::execute(
            &format!("summary/{}.db", slot.name),
            &format!(
                "CREATE TABLE IF NOT EXISTS summary (text TEXT NOT NULL); DELETE FROM summary; \
                 INSERT INTO summary VALUES ('{}')",
                summary.replace('\'', "''")
            ),
        )
    }
}

partest_plugin_sdk::register!(Counter);
