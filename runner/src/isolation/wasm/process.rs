//! `process`: runs a program listed under `allow.process`, directly (no
//! shell), in the project root, killed when the plugin's call runs out of time.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::bindings::v0_1_0::partest::plugin::process::{Host, Output};
use super::bindings::v0_1_0::partest::plugin::types::Error;
use super::state::HostState;

impl Host for HostState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<Output, Error> {
        if !self.grants.process.contains(&program) {
            return Err(Error::Refused(format!(
                "plugin {} may not run {program:?}: grant it with [plugins.{}] allow = {{ process = [{program:?}] }} (granted: {:?})",
                self.grants.plugin, self.grants.plugin, self.grants.process
            )));
        }
        let mut child = Command::new(&program)
            .args(&args)
            .envs(env)
            .current_dir(&self.grants.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Unavailable(format!("cannot run {program}: {e}")))?;
        let cap = self.grants.boundary as u64;
        let read = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.by_ref().take(cap).read_to_end(&mut buf);
                    // Past the cap: keep draining, so the child never blocks on a full pipe.
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                }
                buf
            })
        };
        let out = read(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = read(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let deadline = self.deadline;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if std::time::Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(Error::Failed(format!("waiting for {program}: {e}"))),
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        match status {
            Some(s) => Ok(Output {
                status: s.code(),
                stdout,
                stderr,
            }),
            None => Err(Error::Failed(format!(
                "{program} did not finish within the plugin's call time limit; it was killed"
            ))),
        }
    }
}
