//! A consistent, paged export of every record: what backup, restore and a move
//! between backends read, whatever the backend.

use tokio::sync::mpsc;

use super::{Record, StoreError};

/// Records per page when the caller has no reason to choose.
pub const DEFAULT_PAGE_SIZE: usize = 256;

/// Pages of records, in uid order, as the store held them at one moment (see
/// [`Store::export`](super::Store::export)). Dropping it ends the export early.
pub struct Export {
    pages: mpsc::Receiver<Result<Vec<Record>, StoreError>>,
}

/// The producing end of an [`Export`], held by a backend.
pub struct ExportSender {
    pages: mpsc::Sender<Result<Vec<Record>, StoreError>>,
}

impl Export {
    /// A new export and the sender a backend fills it through; `buffer` pages
    /// wait at most (the producer blocks beyond that).
    pub fn channel(buffer: usize) -> (ExportSender, Export) {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        (ExportSender { pages: tx }, Export { pages: rx })
    }

    /// An export of records already in memory, cut into pages of `page_size`.
    pub fn from_records(mut records: Vec<Record>, page_size: usize) -> Export {
        records.sort_by(|a, b| a.uid.cmp(&b.uid));
        let page_size = page_size.max(1);
        let pages = records.len().div_ceil(page_size);
        let (tx, rx) = mpsc::channel(pages.max(1));
        let mut rest = records.into_iter().peekable();
        while rest.peek().is_some() {
            let page: Vec<Record> = rest.by_ref().take(page_size).collect();
            // The channel has room for every page: this never fails.
            let _ = tx.try_send(Ok(page));
        }
        Export { pages: rx }
    }

    /// The next page; `None` once every record was given.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Record>>, StoreError> {
        self.pages.recv().await.transpose()
    }

    /// [`Export::next_page`] for blocking code (a backend's writer thread);
    /// never call it on an async worker.
    pub fn blocking_next_page(&mut self) -> Result<Option<Vec<Record>>, StoreError> {
        self.pages.blocking_recv().transpose()
    }
}

impl ExportSender {
    /// Sends one page from async code; `false` when the reader went away.
    pub async fn send(&self, page: Result<Vec<Record>, StoreError>) -> bool {
        self.pages.send(page).await.is_ok()
    }

    /// Sends one page from blocking code; `false` when the reader went away.
    pub fn blocking_send(&self, page: Result<Vec<Record>, StoreError>) -> bool {
        self.pages.blocking_send(page).is_ok()
    }
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export").finish_non_exhaustive()
    }
}
