//! The databases tests run on: a fresh SQLite file or a fresh PostgreSQL database per test,
//! dropped afterwards, and a throwaway PostgreSQL server that a test can stop and start.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sqlx::{PgPool, SqlitePool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The server the PostgreSQL tests use (the CI machine's local one by default).
pub fn admin_url() -> String {
    std::env::var("STATUSD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether the PostgreSQL half of a test should run. CI sets `STATUSD_REQUIRE_POSTGRES`, so
/// there an unreachable server fails the test instead of skipping it.
pub async fn postgres_available() -> bool {
    let reachable = tokio::time::timeout(Duration::from_secs(3), PgPool::connect(&admin_url())).await;
    match reachable {
        Ok(Ok(pool)) => {
            pool.close().await;
            true
        }
        Ok(Err(error)) => not_available(&format!("{error}")),
        Err(_) => not_available("no answer within 3 s"),
    }
}

fn not_available(why: &str) -> bool {
    let url = admin_url();
    if std::env::var_os("STATUSD_REQUIRE_POSTGRES").is_some() {
        panic!("PostgreSQL is required (STATUSD_REQUIRE_POSTGRES) but {url} is unreachable: {why}");
    }
    eprintln!("\n*** SKIPPED the PostgreSQL half of this test: {url} is unreachable ({why}).");
    eprintln!("*** Start PostgreSQL or set STATUSD_TEST_POSTGRES_URL to run it.\n");
    false
}

/// A database of its own for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("statusd.db").display());
                TestDb { backend, url, _dir: Some(dir), postgres_name: None }
            }
            Backend::Postgres => {
                let name = format!("statusd_test_{}", uuid::Uuid::now_v7().simple());
                let admin = PgPool::connect(&admin_url()).await.expect("connect to PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("create the test database");
                admin.close().await;
                TestDb { backend, url: database_url(&admin_url(), &name), _dir: None, postgres_name: Some(name) }
            }
        }
    }

    /// A database somebody else made (and will drop).
    pub fn existing(backend: Backend, url: String) -> TestDb {
        TestDb { backend, url, _dir: None, postgres_name: None }
    }

    /// A direct connection, to check rows the way an operator would.
    pub async fn inspect(&self) -> Inspect {
        match self.backend {
            Backend::Sqlite => Inspect::Sqlite(SqlitePool::connect(&self.url).await.expect("open the database")),
            Backend::Postgres => Inspect::Postgres(PgPool::connect(&self.url).await.expect("open the database")),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else { return };
        // Drop runs outside async code: a thread with its own runtime does the cleanup.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let admin = PgPool::connect(&admin_url()).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

/// `url` with its database name replaced.
pub fn database_url(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// Rows, read without statusd's code.
pub enum Inspect {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Inspect {
    /// A count from `SELECT count(*) ... WHERE asset_id = $1 ...`.
    pub async fn count(&self, sql: &'static str, asset_id: &str) -> i64 {
        match self {
            Inspect::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("$1", "?1")))
                .bind(asset_id)
                .fetch_one(pool)
                .await
                .expect("count"),
            Inspect::Postgres(pool) => sqlx::query_scalar(sql).bind(asset_id).fetch_one(pool).await.expect("count"),
        }
    }

    /// Every incident: (id, whether it ended, why it closed).
    pub async fn incidents(&self) -> Vec<(String, bool, Option<String>)> {
        const SQL: &str =
            "SELECT CAST(id AS TEXT), ended_at IS NOT NULL, close_reason FROM incidents ORDER BY started_at";
        match self {
            Inspect::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await.expect("incidents"),
            Inspect::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await.expect("incidents"),
        }
    }

    /// The code and message of one failed probe of the asset.
    pub async fn a_failure(&self, asset_id: &str) -> (Option<i32>, Option<String>) {
        const SQL: &str = "SELECT code, message FROM probe_events WHERE asset_id = $1 AND NOT success LIMIT 1";
        match self {
            Inspect::Sqlite(pool) => sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("$1", "?1")))
                .bind(asset_id)
                .fetch_one(pool)
                .await
                .expect("a failure"),
            Inspect::Postgres(pool) => sqlx::query_as(SQL).bind(asset_id).fetch_one(pool).await.expect("a failure"),
        }
    }

    /// Runs statements as an operator would (a trigger, a renamed table): `sqlite` or
    /// `postgres`, whichever this database is.
    pub async fn execute(&self, sqlite: &str, postgres: &str) {
        match self {
            Inspect::Sqlite(pool) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_string())).execute(pool).await.map(drop)
            }
            Inspect::Postgres(pool) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_string())).execute(pool).await.map(drop)
            }
        }
        .unwrap_or_else(|e| panic!("execute: {e}"));
    }

    /// Takes a lock that keeps every writer out (readers go on) until [`WriteLock::release`]:
    /// SQLite's `BEGIN EXCLUSIVE` (writers fail with `database is locked`), PostgreSQL's
    /// `LOCK TABLE … IN EXCLUSIVE MODE` (writers wait).
    pub async fn lock_writes(&self) -> WriteLock {
        match self {
            Inspect::Sqlite(pool) => {
                let mut connection = pool.acquire().await.expect("a connection");
                sqlx::query("BEGIN EXCLUSIVE").execute(&mut *connection).await.expect("lock");
                WriteLock::Sqlite(connection)
            }
            Inspect::Postgres(pool) => {
                let mut connection = pool.acquire().await.expect("a connection");
                sqlx::raw_sql("BEGIN; LOCK TABLE probe_events, incidents IN EXCLUSIVE MODE")
                    .execute(&mut *connection)
                    .await
                    .expect("lock");
                WriteLock::Postgres(connection)
            }
        }
    }

    /// Every row of `assets`: (id, address), by id.
    pub async fn asset_addresses(&self) -> Vec<(String, String)> {
        const SQL: &str = "SELECT id, address FROM assets ORDER BY id";
        match self {
            Inspect::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await.expect("assets"),
            Inspect::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await.expect("assets"),
        }
    }

    /// Every stored probe message of the asset.
    pub async fn messages(&self, asset_id: &str) -> Vec<String> {
        const SQL: &str = "SELECT message FROM probe_events WHERE asset_id = $1 AND message IS NOT NULL";
        match self {
            Inspect::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(SQL.replace("$1", "?1")))
                .bind(asset_id)
                .fetch_all(pool)
                .await
                .expect("messages"),
            Inspect::Postgres(pool) => sqlx::query_scalar(SQL).bind(asset_id).fetch_all(pool).await.expect("messages"),
        }
    }

    pub async fn close(self) {
        match self {
            Inspect::Sqlite(pool) => pool.close().await,
            Inspect::Postgres(pool) => pool.close().await,
        }
    }
}

/// A lock held on a database (see [`Inspect::lock_writes`]).
pub enum WriteLock {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl WriteLock {
    pub async fn release(self) {
        match self {
            WriteLock::Sqlite(mut connection) => sqlx::query("COMMIT").execute(&mut *connection).await.map(drop),
            WriteLock::Postgres(mut connection) => sqlx::query("COMMIT").execute(&mut *connection).await.map(drop),
        }
        .expect("release the lock");
    }
}

/// A PostgreSQL server of the test's own, on a free port, that the test may stop and start
/// to make a real outage. Runs as the `postgres` user when the test runs as root.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PgCluster {
    /// None (with a loud message) where the PostgreSQL server binaries are not installed,
    /// unless CI requires them.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = postgres_bin() else {
            if std::env::var_os("STATUSD_REQUIRE_POSTGRES").is_some() {
                panic!("PostgreSQL is required (STATUSD_REQUIRE_POSTGRES) but initdb/pg_ctl are not installed");
            }
            eprintln!("\n*** SKIPPED: the PostgreSQL server binaries (initdb, pg_ctl) are not installed.\n");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::e2e::harness::free_port();
        let cluster = PgCluster { dir, bin, port };
        if is_root() {
            let chown = Command::new("chown").args(["-R", "postgres"]).arg(cluster.dir.path()).status().expect("chown");
            assert!(chown.success(), "chown the cluster directory to postgres");
        }
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"]);
        cluster.resume();
        Some(cluster)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server, dropping every connection: an outage.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the server (again) on the same port.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let output = if is_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where initdb and pg_ctl live: `pg_config --bindir`, or Debian's versioned directory.
fn postgres_bin() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let debian = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|versions| {
        let mut dirs: Vec<PathBuf> = versions.filter_map(|v| Some(v.ok()?.path().join("bin"))).collect();
        dirs.sort();
        dirs.pop()
    });
    [from_pg_config, debian]
        .into_iter()
        .flatten()
        .find(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
}
