//! The state directory: a lock against a second daemon, and one durable file per unit.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use pr_target::LogicalUnit;

use super::EmulatedError;
use super::identity::UnitId;

const LOCK_FILE: &str = "lock";
const TEMP_SUFFIX: &str = ".tmp";

/// The locked state directory. The lock lasts as long as this value.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    _lock: File,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, EmulatedError> {
        std::fs::create_dir_all(dir).map_err(|source| EmulatedError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| EmulatedError::OpenLock {
                path: path.clone(),
                source,
            })?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(EmulatedError::Locked { path }),
            Err(errno) => {
                return Err(EmulatedError::Lock {
                    path,
                    source: errno.into(),
                });
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every persisted unit. Leftover temporary files (a crash before a rename) are
    /// removed: the file they would have replaced is still the acknowledged state.
    pub fn load_all(&self) -> Result<Vec<(UnitId, LogicalUnit)>, EmulatedError> {
        let read_dir_error = |source| EmulatedError::ReadDir {
            path: self.dir.clone(),
            source,
        };
        let mut units = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_dir_error)? {
            let entry = entry.map_err(read_dir_error)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TEMP_SUFFIX) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(id) = UnitId::from_file_name(name) else {
                continue;
            };
            units.push((id, read_state(&entry.path())?));
        }
        Ok(units)
    }

    /// Makes `unit` the durable state of `id`: written to a temporary file, synced,
    /// renamed over the old file, directory synced. Returns only once it is on disk.
    pub fn save(&self, id: UnitId, unit: &LogicalUnit) -> Result<(), EmulatedError> {
        let path = self.dir.join(id.file_name());
        let temp = self.dir.join(format!("{}{TEMP_SUFFIX}", id.file_name()));
        let write_error = |source| EmulatedError::WriteState {
            path: path.clone(),
            source,
        };
        let json =
            serde_json::to_vec_pretty(unit).map_err(|e| write_error(std::io::Error::other(e)))?;
        let mut file = File::create(&temp).map_err(write_error)?;
        file.write_all(&json).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        drop(file);
        std::fs::rename(&temp, &path).map_err(write_error)?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(write_error)
    }
}

fn read_state(path: &Path) -> Result<LogicalUnit, EmulatedError> {
    let bytes = std::fs::read(path).map_err(|source| EmulatedError::ReadState {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| EmulatedError::ParseState {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_store_on_the_same_directory_is_refused_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(EmulatedError::Locked { .. })
        ));
        drop(first);
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn saved_unit_is_loaded_back_and_temporary_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = UnitId { dev: 1, ino: 2 };
        let unit = LogicalUnit::new(vec![1]);
        store.save(id, &unit).unwrap();
        std::fs::write(dir.path().join("lu-1-3.json.tmp"), b"{ torn").unwrap();
        assert_eq!(store.load_all().unwrap(), vec![(id, unit)]);
        assert!(!dir.path().join("lu-1-3.json.tmp").exists());
    }

    #[test]
    fn invalid_state_file_is_a_clear_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("lu-5-6.json"), b"not json").unwrap();
        let error = store.load_all().unwrap_err();
        assert!(error.to_string().contains("lu-5-6.json"), "{error}");
    }
}
