//! Throwaway databases for tests: an in-memory SQLite store, and PostgreSQL
//! clusters started from the system's binaries on a free loopback port.
//!
//! A cluster lives in a fresh temporary directory, runs as the `postgres`
//! user when the tests run as root (PostgreSQL refuses to run as root),
//! authenticates with a random password, and is stopped and removed by a
//! watchdog once the test process that started it has exited. Each test gets
//! its own database in the process's shared cluster ([`postgres`]); a test
//! that stops or restarts PostgreSQL starts its own ([`Cluster::start`]).

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use sqlx::Connection as _;

use crate::Store;

/// An in-memory SQLite store.
pub async fn sqlite() -> Store {
    Store::open("sqlite::memory:").await.expect("an in-memory SQLite store")
}

/// A store on a fresh database in this process's PostgreSQL cluster.
pub async fn postgres() -> Store {
    let url = postgres_url().await;
    Store::open(&url).await.expect("a store on the test PostgreSQL")
}

/// The URL of a fresh, empty database in this process's PostgreSQL cluster.
pub async fn postgres_url() -> String {
    Cluster::shared().database().await.expect("a database on the test PostgreSQL")
}

/// Defines each test twice, as `<name>::sqlite` and `<name>::postgres`: the
/// body runs against a store of each backend.
#[macro_export]
macro_rules! store_tests {
    ($(async fn $name:ident($store:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($store: $crate::Store) $body

                #[tokio::test]
                async fn sqlite() {
                    run($crate::testing::sqlite().await).await
                }

                #[tokio::test]
                async fn postgres() {
                    run($crate::testing::postgres().await).await
                }
            }
        )*
    };
}

/// A PostgreSQL server of the tests' own.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    /// The user and group it runs as, when the tests run as root.
    owner: Option<(u32, u32)>,
}

impl Cluster {
    /// The cluster this process's tests share, started on first use.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("starting a test PostgreSQL: {e:#}")))
    }

    /// Creates and starts a cluster.
    pub fn start() -> anyhow::Result<Cluster> {
        let bin = bin_dir()?;
        let owner = if is_root() { Some(postgres_user()?) } else { None };
        let dir = tempdir()?;
        let password = uuid::Uuid::new_v4().simple().to_string();
        let cluster = Cluster { dir, bin, port: free_port()?, password, owner };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid))?;
        }
        std::fs::write(cluster.dir.join("pw"), &cluster.password)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(cluster.dir.join("pw"), Some(uid), Some(gid))?;
        }
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--pwfile",
                &format!("{}/pw", cluster.dir.display()),
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        cluster.resume()?;
        cluster.watch()?;
        Ok(cluster)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{name}", self.password, self.port)
    }

    /// Creates an empty database and returns its URL.
    pub async fn database(&self) -> anyhow::Result<String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        conn.close().await?;
        Ok(self.url(&name))
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn resume(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400",
            self.port,
            self.dir.display()
        );
        let log = format!("{}/server.log", self.dir.display());
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-t", "60", "start"])
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.display())
    }

    /// Runs one of PostgreSQL's programs as the cluster's owner.
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self.command(&self.bin.join(program)).args(args).output()?;
        if !out.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir).env_remove("PGDATA").env("HOME", &self.dir);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// A watchdog, in a session of its own: once this process has exited,
    /// it stops the server and removes the directory.
    fn watch(&self) -> anyhow::Result<()> {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; \
             rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data(),
            dir = self.dir.display()
        );
        let mut cmd = self.command(Path::new("setsid"));
        cmd.args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd.spawn().context("starting the test PostgreSQL's watchdog")?;
        Ok(())
    }
}

/// The directory of PostgreSQL's programs: the newest under
/// `/usr/lib/postgresql`, or what `pg_config --bindir` says.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if bin.join("initdb").exists() {
            return Ok(bin);
        }
    }
    bail!("PostgreSQL's programs (initdb, pg_ctl) were not found: run tests/setup.sh, which installs them")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The `postgres` user's uid and gid, from `/etc/passwd`.
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == "postgres" {
            return Ok((fields[2].parse()?, fields[3].parse()?));
        }
    }
    bail!("there is no `postgres` user to run the test PostgreSQL as (the tests run as root)")
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("fhirgate-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(dir)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
