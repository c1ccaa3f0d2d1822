//! A disk model for the manager's state file: writes and renames that were not
//! synced are lost when the host crashes, and a file can be lost entirely.
//!
//! Files are inodes with the bytes written and the bytes synced; directory entries
//! map names to inodes, as written and as synced. A crash takes every entry back to
//! its synced state and every inode back to its synced bytes. This is the worst
//! case a POSIX file system allows, chosen so that a missing fsync always shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use memring::manager::state::Disk;

#[derive(Clone, Debug, Default)]
struct Inode {
    written: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Names as the running system sees them.
    entries: BTreeMap<PathBuf, u64>,
    /// Names as they would be found after a crash.
    synced_entries: BTreeMap<PathBuf, u64>,
    syncs: u64,
}

/// The manager's disk; it outlives the manager's host, as a disk would.
#[derive(Debug, Default)]
pub struct SimDisk {
    state: Mutex<State>,
}

impl SimDisk {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host lost power: unsynced entries and bytes are gone.
    pub fn crash(&self) {
        let mut state = self.state();
        state.entries = state.synced_entries.clone();
        for inode in state.inodes.values_mut() {
            inode.written = inode.synced.clone();
        }
        let live: Vec<u64> = state.entries.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
    }

    /// Every file is lost (a replaced disk, a wiped directory).
    pub fn lose_everything(&self) {
        *self.state() = State::default();
    }

    /// fsyncs so far (file and directory).
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }
}

fn not_found(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

#[async_trait]
impl Disk for SimDisk {
    async fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        let state = self.state();
        Ok(state
            .entries
            .get(path)
            .map(|id| state.inodes[id].written.clone()))
    }

    async fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut state = self.state();
        match state.entries.get(path).copied() {
            Some(id) => {
                state
                    .inodes
                    .get_mut(&id)
                    .expect("entries name inodes")
                    .written = bytes.to_vec();
            }
            None => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(
                    id,
                    Inode {
                        written: bytes.to_vec(),
                        synced: Vec::new(),
                    },
                );
                state.entries.insert(path.to_owned(), id);
            }
        }
        Ok(())
    }

    async fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        let mut state = self.state();
        let id = *state.entries.get(path).ok_or_else(|| not_found(path))?;
        let inode = state.inodes.get_mut(&id).expect("entries name inodes");
        inode.synced = inode.written.clone();
        state.syncs += 1;
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut state = self.state();
        let id = state.entries.remove(from).ok_or_else(|| not_found(from))?;
        state.entries.insert(to.to_owned(), id);
        Ok(())
    }

    async fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let mut state = self.state();
        let in_dir = |path: &Path| path.parent() == Some(dir);
        let synced: BTreeMap<PathBuf, u64> = state
            .synced_entries
            .iter()
            .filter(|(path, _)| !in_dir(path))
            .chain(state.entries.iter().filter(|(path, _)| in_dir(path)))
            .map(|(path, id)| (path.clone(), *id))
            .collect();
        state.synced_entries = synced;
        state.syncs += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memring::manager::state::{FileStateStore, StateStore};
    use std::sync::Arc;

    fn store(disk: &Arc<SimDisk>) -> FileStateStore {
        FileStateStore {
            path: PathBuf::from("/state/manager-state.json"),
            disk: disk.clone(),
        }
    }

    #[tokio::test]
    async fn synced_saves_survive_a_crash() {
        let disk = Arc::new(SimDisk::default());
        let store = store(&disk);
        store.save(b"one".to_vec()).await.unwrap();
        store.save(b"two".to_vec()).await.unwrap();
        disk.crash();
        assert_eq!(store.load().await.as_deref(), Some(&b"two"[..]));
        assert_eq!(disk.syncs(), 4);
        disk.lose_everything();
        assert_eq!(store.load().await, None);
    }

    #[tokio::test]
    async fn unsynced_writes_and_renames_are_lost() {
        let disk = Arc::new(SimDisk::default());
        let path = PathBuf::from("/state/f");
        disk.write(&path, b"a").await.unwrap();
        disk.crash();
        assert_eq!(
            disk.read(&path).await.unwrap(),
            None,
            "the name was never synced"
        );
        disk.write(&path, b"a").await.unwrap();
        disk.sync_file(&path).await.unwrap();
        disk.sync_dir(Path::new("/state")).await.unwrap();
        disk.write(&path, b"b").await.unwrap();
        disk.crash();
        assert_eq!(disk.read(&path).await.unwrap().as_deref(), Some(&b"a"[..]));
        // A rename that was not synced: the old name comes back.
        let aside = PathBuf::from("/state/f.tmp");
        disk.write(&aside, b"c").await.unwrap();
        disk.sync_file(&aside).await.unwrap();
        disk.rename(&aside, &path).await.unwrap();
        assert_eq!(disk.read(&path).await.unwrap().as_deref(), Some(&b"c"[..]));
        disk.crash();
        assert_eq!(disk.read(&path).await.unwrap().as_deref(), Some(&b"a"[..]));
    }
}
