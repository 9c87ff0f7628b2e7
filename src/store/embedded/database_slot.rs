//! The open redb file, opened again after an I/O failure.
//!
//! After one failed write (a full disk, say) redb answers every later operation on that
//! `Database` with `PreviousIo` until the file is closed and opened again; without a reopen
//! the store would stay down after the disk has room again. So every operation runs through
//! [`DatabaseSlot::run`]: when it fails and the database reports that latch, the slot lets
//! go of it, and the next operation opens the file anew (redb repairs it on open). An
//! operation still holding the old database keeps the file locked a moment longer; until it
//! ends, reopening fails and operations answer with that error.

use redb::{Database, DatabaseError, StorageError, TransactionError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>;

pub(crate) struct DatabaseSlot {
    path: PathBuf,
    opener: Opener,
    current: Mutex<Option<Arc<Database>>>,
}

impl DatabaseSlot {
    /// Opens (or creates) the file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, DatabaseError> {
        let owned = path.to_owned();
        Self::with_opener(path, Box::new(move || Database::create(&owned)))
    }

    /// Opens the database with `opener`, which also opens it again after a failure.
    fn with_opener(path: &Path, opener: Opener) -> Result<Self, DatabaseError> {
        let database = opener()?;
        Ok(Self {
            path: path.to_owned(),
            opener,
            current: Mutex::new(Some(Arc::new(database))),
        })
    }

    /// The open database, opening the file again if the last one failed.
    pub(crate) fn database(&self) -> Result<Arc<Database>, String> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(database) = current.as_ref() {
            return Ok(Arc::clone(database));
        }
        let database = Arc::new(
            (self.opener)().map_err(|error| format!("reopening after an I/O failure: {error}"))?,
        );
        tracing::warn!(file = %self.path.display(), "embedded store reopened after an I/O failure");
        *current = Some(Arc::clone(&database));
        Ok(database)
    }

    /// Runs `operation` on the open database (`unavailable` turns a failure to open it into
    /// the caller's error); a failure that latched the database lets it go.
    pub(crate) fn run<T, E>(
        &self,
        unavailable: impl FnOnce(String) -> E,
        operation: impl FnOnce(&Database) -> Result<T, E>,
    ) -> Result<T, E> {
        let database = self.database().map_err(unavailable)?;
        let result = operation(&database);
        if result.is_err() && io_failed(&database) {
            self.let_go(&database);
        }
        result
    }

    /// Forgets `failed` if it is still the open database.
    fn let_go(&self, failed: &Arc<Database>) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|database| Arc::ptr_eq(database, failed))
        {
            tracing::warn!(file = %self.path.display(), "embedded store failed to write; it will be opened again");
            *current = None;
        }
    }
}

/// Whether `database` has latched an I/O failure (every write would now fail).
fn io_failed(database: &Database) -> bool {
    matches!(
        database.begin_write(),
        Err(TransactionError::Storage(StorageError::PreviousIo))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::FileBackend;
    use redb::{ReadableDatabase, StorageBackend, TableDefinition};
    use std::io;
    use std::ops::Bound;
    use std::sync::atomic::{AtomicBool, Ordering};

    const TABLE: TableDefinition<&str, u64> = TableDefinition::new("t");

    /// A file whose disk fills up while `full` is set: writes and growth fail with ENOSPC.
    #[derive(Debug)]
    struct FillingDisk {
        file: FileBackend,
        full: Arc<AtomicBool>,
    }

    impl FillingDisk {
        fn check(&self) -> Result<(), io::Error> {
            if self.full.load(Ordering::SeqCst) {
                Err(io::Error::from_raw_os_error(28))
            } else {
                Ok(())
            }
        }
    }

    impl StorageBackend for FillingDisk {
        fn len(&self) -> Result<u64, io::Error> {
            self.file.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
            self.file.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), io::Error> {
            self.check()?;
            self.file.set_len(len)
        }
        fn sync_data(&self) -> Result<(), io::Error> {
            self.check()?;
            self.file.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
            self.check()?;
            self.file.write(offset, data)
        }
        fn close(&self) -> Result<(), io::Error> {
            self.file.close()
        }
        fn try_lock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.file.try_lock_range(start, end)
        }
        fn try_lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.file.try_lock_shared_range(start, end)
        }
        fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
            self.file.lock_range(start, end)
        }
        fn lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.file.lock_shared_range(start, end)
        }
        fn unlock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.file.unlock_range(start, end)
        }
        fn query_lock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.file.query_lock_range(start, end)
        }
    }

    fn write(slot: &DatabaseSlot, key: &str, value: u64) -> Result<(), String> {
        slot.run(
            |e| e,
            |database| {
                let txn = database.begin_write().map_err(|e| e.to_string())?;
                txn.open_table(TABLE)
                    .map_err(|e| e.to_string())?
                    .insert(key, value)
                    .map_err(|e| e.to_string())?;
                txn.commit().map_err(|e| e.to_string())
            },
        )
    }

    fn read(slot: &DatabaseSlot, key: &str) -> Result<Option<u64>, String> {
        slot.run(
            |e| e,
            |database| {
                let txn = database.begin_read().map_err(|e| e.to_string())?;
                let table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
                let value = table.get(key).map_err(|e| e.to_string())?;
                Ok(value.map(|v| v.value()))
            },
        )
    }

    #[test]
    fn a_full_disk_fails_writes_until_there_is_room_and_loses_nothing_written_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let full = Arc::new(AtomicBool::new(false));
        let opener: Opener = {
            let (path, full) = (path.clone(), Arc::clone(&full));
            Box::new(move || {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)?;
                let disk = FillingDisk {
                    file: FileBackend::new(file)?,
                    full: Arc::clone(&full),
                };
                Database::builder().create_with_backend(disk)
            })
        };
        let slot = DatabaseSlot::with_opener(&path, opener).unwrap();
        write(&slot, "before", 1).unwrap();

        full.store(true, Ordering::SeqCst);
        assert!(
            write(&slot, "during", 2).is_err(),
            "a full disk refuses the write"
        );
        assert!(write(&slot, "during", 3).is_err(), "and the next one");

        full.store(false, Ordering::SeqCst);
        write(&slot, "after", 4).expect("writes work again once the disk has room");
        assert_eq!(
            read(&slot, "before"),
            Ok(Some(1)),
            "nothing acknowledged is lost"
        );
        assert_eq!(
            read(&slot, "during"),
            Ok(None),
            "a refused write left nothing"
        );
        assert_eq!(read(&slot, "after"), Ok(Some(4)));
    }
}
