//! ConfigWatcher actor ("config"): notices edits to the config files and asks the Supervisor to
//! reload.
//!
//! Editors save by writing in place, or by writing a new file and renaming it over the old one;
//! Kubernetes swaps a symlinked directory; a single file bind-mounted into a container only
//! changes in place. So the watcher listens to the files' directories *and* to the files, waits
//! for the burst of events to settle (~500 ms), then compares the files' contents with what it
//! last saw and reloads only if they differ. A slow poll catches whatever the kernel did not
//! report (network filesystems). Like vector's watcher, it sends a bare "reload": the
//! Supervisor loads, validates and diffs.

use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::AbortOnDrop;
use super::supervisor::{ReloadTrigger, SupervisorMsg};

pub struct ConfigWatcher;

pub struct WatcherArgs {
    pub files: Vec<PathBuf>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub settle: Duration,
    pub poll: Duration,
    /// What the files held when last looked at; kept across restarts of the watcher, so an
    /// edit made while it was down is still noticed.
    pub seen: Arc<Mutex<Option<u64>>>,
}

pub enum WatcherMsg {
    /// The filesystem reported something about the files or their directories.
    Touched,
    /// Events have settled (if the generation is still current).
    Settled {
        generation: u64,
    },
    Poll,
    Panic(String),
}

pub struct WatcherState {
    files: Vec<PathBuf>,
    supervisor: ActorRef<SupervisorMsg>,
    settle: Duration,
    seen: Arc<Mutex<Option<u64>>>,
    watcher: Option<RecommendedWatcher>,
    generation: u64,
    settle_timer: Option<AbortOnDrop<Result<(), ractor::MessagingErr<WatcherMsg>>>>,
    _poll: AbortOnDrop<()>,
}

/// A hash of the files' contents; None while one cannot be read (mid-rename, say).
fn fingerprint(files: &[PathBuf]) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        std::fs::read(file).ok()?.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Whether a filesystem event may be an edit of the config files (`names`, their file names).
///
/// The directories are watched to catch a save by rename, so every file beside the config
/// reports too: a SQLite database kept there writes its journal thousands of times a second
/// under load, and each event used to restart the settle timer (a task spawned and aborted per
/// event, and a reload held back while the writes went on). Left out, besides other files:
/// opens and reads (the watcher's own reads of the files included), which edit nothing. Kept:
/// events without a path (a rescan) and Kubernetes' swap of a ConfigMap's `..data` link.
fn concerns(event: &notify::Event, names: &[OsString]) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match event.kind {
        // `close` after writing ends an in-place save; other accesses change nothing.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    event.paths.is_empty()
        || event.paths.iter().any(|path| {
            path.file_name()
                .is_some_and(|name| names.iter().any(|ours| ours == name) || name.as_encoded_bytes().starts_with(b".."))
        })
}

impl WatcherState {
    /// (Re)watches the directories and the files: after a rename-replace the old file's watch
    /// is gone with its inode.
    fn watch(&mut self, myself: &ActorRef<WatcherMsg>) {
        let actor = myself.clone();
        let names: Vec<OsString> = self.files.iter().filter_map(|file| file.file_name().map(OsString::from)).collect();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|event| concerns(&event, &names)) {
                let _ = actor.cast(WatcherMsg::Touched);
            }
        });
        let mut watcher = match watcher {
            Ok(watcher) => watcher,
            Err(error) => {
                tracing::warn!(actor = "config", %error, "cannot watch the config files; polling only");
                return;
            }
        };
        for file in &self.files {
            let directory = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            for (path, what) in [(directory, "directory"), (file.as_path(), "file")] {
                if let Err(error) = watcher.watch(path, RecursiveMode::NonRecursive) {
                    tracing::warn!(actor = "config", path = %path.display(), what, %error, "cannot watch; polling covers it");
                }
            }
        }
        self.watcher = Some(watcher);
    }

    fn check(&mut self, myself: &ActorRef<WatcherMsg>) {
        let Some(now) = fingerprint(&self.files) else { return };
        let changed = {
            let mut seen = self.seen.lock();
            let changed = seen.is_some_and(|before| before != now);
            *seen = Some(now);
            changed
        };
        if changed {
            tracing::info!(actor = "config", "config files changed; reloading");
            let _ = self.supervisor.cast(SupervisorMsg::Reload(ReloadTrigger::FileChange, None));
            self.watch(myself);
        }
    }
}

impl Actor for ConfigWatcher {
    type Msg = WatcherMsg;
    type State = WatcherState;
    type Arguments = WatcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WatcherMsg>,
        args: WatcherArgs,
    ) -> Result<WatcherState, ActorProcessingErr> {
        let poll = AbortOnDrop(myself.send_interval(args.poll, || WatcherMsg::Poll));
        let mut state = WatcherState {
            files: args.files,
            supervisor: args.supervisor,
            settle: args.settle,
            seen: args.seen,
            watcher: None,
            generation: 0,
            settle_timer: None,
            _poll: poll,
        };
        state.watch(&myself);
        state.check(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<WatcherMsg>,
        message: WatcherMsg,
        state: &mut WatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WatcherMsg::Touched => {
                state.generation += 1;
                let generation = state.generation;
                state.settle_timer =
                    Some(AbortOnDrop(myself.send_after(state.settle, move || WatcherMsg::Settled { generation })));
            }
            WatcherMsg::Settled { generation } if generation == state.generation => state.check(&myself),
            WatcherMsg::Settled { .. } => {}
            WatcherMsg::Poll => state.check(&myself),
            WatcherMsg::Panic(reason) => panic!("{reason}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_events_that_may_edit_the_config_files_count() {
        let names = [OsString::from("manifest.json"), OsString::from("notifiers.json")];
        let written = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        // Edits of the files: in place, closed after writing, renamed over, Kubernetes' swap.
        assert!(concerns(&event(written, "/etc/statusd/manifest.json"), &names));
        assert!(concerns(&event(EventKind::Access(AccessKind::Close(AccessMode::Write)), "/c/notifiers.json"), &names));
        assert!(concerns(&event(EventKind::Modify(ModifyKind::Name(RenameMode::To)), "/c/manifest.json"), &names));
        assert!(concerns(&event(EventKind::Create(CreateKind::Any), "/etc/statusd/..data"), &names));
        // A rescan names no file: anything may have changed.
        assert!(concerns(&notify::Event::new(EventKind::Other), &names));
        // A database beside the config, an editor's swap file, and reads (the watcher's own).
        assert!(!concerns(&event(written, "/c/statusd.db-wal"), &names));
        assert!(!concerns(&event(EventKind::Create(CreateKind::File), "/c/.manifest.json.swp"), &names));
        assert!(!concerns(&event(EventKind::Access(AccessKind::Open(AccessMode::Any)), "/c/manifest.json"), &names));
        assert!(!concerns(&event(EventKind::Access(AccessKind::Close(AccessMode::Read)), "/c/manifest.json"), &names));
    }
}
