//! `keyward store`: the durable store seen from an operator's chair — where it
//! is and what it can do (`status`), this node's index of a remote store
//! rebuilt from it (`reindex`), every record checked against the HSM
//! (`verify`), and records copied to another store, resumably, while the
//! server keeps serving (`migrate`).

mod migrate;
mod reindex;
mod status;
mod verify;

use super::{CliResult, RunCommand};

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Where the store is, what it can do, whether it answers, and this node's index of it.
    Status(status::StatusArgs),
    /// Rebuild this node's index from the remote store (after a restore, or any doubt).
    Reindex(reindex::ReindexArgs),
    /// Check every record: readable, bound under the HSM, its key material unsealable.
    Verify(verify::VerifyArgs),
    /// Copy every record into the store another configuration names (resumable; run again to catch up).
    Migrate(migrate::MigrateArgs),
}

impl RunCommand for StoreCommand {
    fn run(self) -> CliResult {
        match self {
            StoreCommand::Status(a) => status::run(&a),
            StoreCommand::Reindex(a) => reindex::run(&a),
            StoreCommand::Verify(a) => verify::run(&a),
            StoreCommand::Migrate(a) => migrate::run(&a),
        }
    }
}

/// Counts every uid in `store` (a listing, no record read).
pub(super) async fn count_uids(store: &dyn crate::store::Store) -> Result<u64, crate::store::StoreError> {
    let mut count = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = store.list_uids(after.as_deref(), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        count += page.len() as u64;
    }
    Ok(count)
}

/// A progress line on standard error, redrawn at most every half second.
pub(super) struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    drawn: Option<std::time::Instant>,
}

impl Progress {
    pub(super) fn new(what: &'static str, total: u64) -> Progress {
        Progress {
            what,
            total,
            done: 0,
            drawn: None,
        }
    }

    pub(super) fn step(&mut self) {
        self.done += 1;
        if self.drawn.is_none_or(|at| at.elapsed().as_millis() >= 500) || self.done == self.total {
            self.draw();
        }
    }

    fn draw(&mut self) {
        use std::io::Write;
        let width = 30u64;
        let total = self.total.max(self.done).max(1);
        let filled = (self.done * width / total) as usize;
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width as usize - filled));
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{} [{bar}] {}/{} ({}%)",
            self.what,
            self.done,
            total,
            self.done * 100 / total
        );
        let _ = err.flush();
        self.drawn = Some(std::time::Instant::now());
    }

    pub(super) fn finish(mut self) {
        if self.done > 0 {
            self.draw();
            eprintln!();
        }
    }
}
