//! SQLite on a disk that fills up: a real small filesystem (a 4 MiB tmpfs the test mounts)
//! filled to the last byte while an asset goes down, then freed. Writing must resume by itself
//! with nothing lost, and `/readyz` must say what happens meanwhile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::e2e::databases::{Backend, TestDb};
use crate::e2e::harness::{Mode, Receiver, Setup, Target, eventually, http_asset, probes_counted};

const WAIT: Duration = Duration::from_secs(30);

/// A tmpfs of its own, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None, with a loud message, where this process may not mount filesystems (not root, or
    /// a container without the capability).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|o| o.status.success().then_some(()).ok_or(String::from_utf8_lossy(&o.stderr).into_owned()));
        match mounted {
            Ok(Ok(())) => Some(Tmpfs { dir }),
            Ok(Err(why)) => skip(&why),
            Err(why) => skip(&why.to_string()),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn skip(why: &str) -> Option<Tmpfs> {
    eprintln!("\n*** SKIPPED: cannot mount a tmpfs for the full-disk test ({}).\n", why.trim());
    None
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros until the filesystem has no byte left; returns the file to delete.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create the filler");
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).and_then(|()| file.sync_data()).is_ok() {}
    // The last partial block, byte by byte.
    while file.write_all(&[0]).and_then(|()| file.sync_data()).is_ok() {}
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_holds_writes_back_and_when_space_is_freed_everything_is_written() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    let url = format!("sqlite://{}", disk.path().join("statusd.db").display());
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {"webhook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {"onDown": ["webhook"], "onRecovery": ["webhook"], "throttleSeconds": 0}
    });
    let setup =
        Setup::on(TestDb::existing(Backend::Sqlite, url), json!([http_asset("full-disk", &target.url())]), notifiers);
    let statusd = setup.start(&[]).await;
    statusd.wait_status("full-disk", "up", WAIT).await;
    let written = |body: serde_json::Value| body["checks"]["store"]["backlog"]["written"].as_u64().unwrap_or(0);
    eventually("first results written", WAIT, || async {
        (written(statusd.get("/readyz").await.1) >= 2).then_some(())
    })
    .await;

    let filler = fill(disk.path());
    target.set(Mode::Error);
    statusd.wait_status("full-disk", "down", WAIT).await;
    eventually("the DOWN", WAIT, || async { (receiver.events("webhook") == ["DOWN"]).then_some(()) }).await;
    let ready = eventually("readiness to report the writes failing", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(ready)
    })
    .await;
    let error = ready["checks"]["store"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("full"), "the reason is the disk: {ready}");
    // Several flushes' worth fail while the disk stays full (a failed commit, too).
    eventually("a backlog to build up", WAIT, || async {
        let backlog = statusd.get("/readyz").await.1["checks"]["store"]["backlog"].clone();
        (backlog["queued"].as_u64()? >= 12).then_some(())
    })
    .await;
    target.set(Mode::Ok);
    statusd.wait_status("full-disk", "up", WAIT).await;

    std::fs::remove_file(filler).expect("free the space");
    eventually("everything buffered written", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (status == StatusCode::OK && ready["checks"]["store"]["backlog"]["queued"] == 0).then_some(())
    })
    .await;
    // No connection was left holding the write lock: another writer gets it at once.
    let db = setup.inspect().await;
    db.execute("BEGIN IMMEDIATE; ROLLBACK;", "").await;
    statusd.stop().await;

    let stored = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "full-disk").await;
    println!("full-disk: {} results accepted, {stored} stored", probes_counted("full-disk"));
    assert_eq!(stored, probes_counted("full-disk"), "every result accepted is stored");
    let incidents = db.incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!((incidents[0].1, incidents[0].2.as_deref()), (true, Some("recovered")), "{incidents:?}");
    db.close().await;
}
