//! Test-only: a throwaway PostgreSQL server for the storage tests, so that they
//! need no service they do not start and no network beyond loopback.
//!
//! Principal items: [`fresh_database`] (a new, empty database on the shared
//! server, as a `postgres://` URL), [`url`] (the server's maintenance database),
//! [`restart`] (a crash and restart of the server, for fault tests) and
//! [`Server`] (where the server lives).
//!
//! The server is started once per test process, on first use: the binaries are
//! found (`FIREBREAK_PG_BINDIR`, `pg_config --bindir`, the newest
//! `/usr/lib/postgresql/*/bin`, then `PATH`), `initdb` writes a cluster into a
//! fresh temporary folder (`-A trust`, `--no-sync`), and `pg_ctl start` runs it
//! on a free TCP port of 127.0.0.1 with `fsync=off` and its Unix socket in that
//! folder. It also speaks TLS (`ssl=on`), with a certificate for `127.0.0.1`
//! and `localhost` signed by a throwaway authority that `openssl` makes in that
//! folder ([`Server::certificate`]): clients choose with `sslmode` in their URL. As root (which `initdb` refuses), both run through `runuser -u
//! postgres --` (or `nobody`), the folder owned by that user.
//!
//! Why two ways of stopping it: an `atexit` handler stops the server (`pg_ctl
//! stop -m immediate`) and removes the folder when the test process exits
//! normally, so nothing is left once `cargo test` returns; and a watchdog process
//! (`sh`, reading a pipe whose only writer is the test process) does the same
//! when the test process is killed, since the kernel closes the pipe then. Missing
//! binaries are a panic that says what to install: storage tests are never
//! skipped silently.
//!
//! This crate does not depend on the store; it only starts PostgreSQL and creates
//! databases.
#![warn(missing_docs)]

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use sqlx::Connection as _;

/// The running throwaway server of this process.
#[derive(Debug)]
pub struct Server {
    bindir: PathBuf,
    root: PathBuf,
    data: PathBuf,
    port: u16,
    run_as: Option<String>,
    /// The watchdog and the write end of its pipe: the pipe closes, and the
    /// watchdog stops the server, when this process dies in any way.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// The shared server, started on first use.
///
/// # Panics
/// When the PostgreSQL server binaries are missing or the server does not start.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| match Server::start() {
        Ok(server) => {
            // SAFETY: `stop_at_exit` is a plain `extern "C"` function with no
            // arguments, valid for the whole process.
            let registered = unsafe { libc::atexit(stop_at_exit) };
            assert_eq!(
                registered, 0,
                "could not register the PostgreSQL stop handler"
            );
            server
        }
        Err(message) => panic!("{message}"),
    })
}

/// URL of the server's `postgres` database (as the superuser `postgres`).
pub fn url() -> String {
    server().url("postgres")
}

/// Creates a new, empty database with a name unique to this process and call,
/// and returns its `postgres://` URL.
///
/// # Panics
/// When the server cannot be started or the database cannot be created.
pub async fn fresh_database() -> String {
    let server = server();
    let name = format!(
        "firebreak_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(&server.url("postgres"))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    let _ = conn.close().await;
    server.url(&name)
}

/// Crashes and restarts the server (`pg_ctl restart -m immediate`): every
/// connection is cut, uncommitted transactions are lost, committed ones survive
/// (crash recovery), and the port stays the same.
///
/// # Panics
/// When the server does not come back.
pub fn restart() {
    if let Err(message) = server().pg_ctl_start("restart") {
        panic!("{message}");
    }
}

impl Server {
    /// `postgres://` URL of database `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The certificate authority that signed the server's TLS certificate
    /// (PEM), for `sslrootcert`.
    pub fn certificate(&self) -> PathBuf {
        self.root.join("ca.crt")
    }

    /// A throwaway certificate authority and the server's certificate for
    /// `127.0.0.1` and `localhost`, signed by it, in the server's folder and
    /// owned by the server's user (PostgreSQL refuses a key others can read).
    fn make_certificate(&self) -> Result<(), String> {
        const SCRIPT: &str = "set -e
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \\
  -subj /CN=firebreak-test-ca -keyout ca.key -out ca.crt
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
  -subj /CN=localhost -keyout server.key -out server.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \\
  -extfile server.ext -out server.crt
chmod 644 ca.crt";
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "sh", "-c", SCRIPT]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", SCRIPT]);
                c
            }
        };
        let output = command
            .current_dir(&self.root)
            .output()
            .map_err(|e| format!("running sh for openssl: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "openssl could not make the test server's certificates ({}; install openssl):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    fn start() -> Result<Server, String> {
        let bindir = find_bindir()?;
        let root = tempfile::Builder::new()
            .prefix("firebreak-pg-")
            .tempdir()
            .map_err(|e| format!("creating a folder for the test PostgreSQL: {e}"))?
            .keep();
        let run_as = run_as_user()?;
        if let Some(user) = &run_as {
            let (uid, gid) = ids_of(user)?;
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .map_err(|e| format!("giving {} to {user}: {e}", root.display()))?;
        }
        let mut server = Server {
            bindir,
            data: root.join("data"),
            root,
            port: 0,
            run_as,
            watchdog: Mutex::new(None),
        };
        server.initdb()?;
        server.make_certificate()?;
        server.start_watchdog()?;
        // A free port may be taken between asking and binding: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port()?;
            match server.pg_ctl_start("start") {
                Ok(()) => return Ok(server),
                Err(message) => last = message,
            }
        }
        server.stop();
        Err(last)
    }

    /// A command running `program` of the server's binaries, as the server's user.
    fn command(&self, program: &str) -> Command {
        let binary = self.bindir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command.current_dir(&self.root).stdin(Stdio::null());
        command
    }

    fn initdb(&self) -> Result<(), String> {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    /// `pg_ctl start` or `restart`, waiting until the server accepts connections.
    fn pg_ctl_start(&self, action: &str) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c fsync=off -c full_page_writes=off \
             -c unix_socket_directories='{}' -c max_connections=300 \
             -c ssl=on -c ssl_cert_file='{}' -c ssl_key_file='{}'",
            self.port,
            self.root.display(),
            self.root.join("server.crt").display(),
            self.root.join("server.key").display()
        );
        let log = self.root.join("server.log");
        let mut command = self.command("pg_ctl");
        command
            .arg(action)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options]);
        if action == "restart" {
            command.args(["-m", "immediate"]);
        }
        let output = command
            .output()
            .map_err(|e| format!("running pg_ctl {action}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "pg_ctl {action} failed ({}):\n{}{}\nserver log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// Starts the watchdog: `sh` waits for end of file on its standard input,
    /// then stops the server and removes the folder.
    fn start_watchdog(&self) -> Result<(), String> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(
                "cat >/dev/null; \"$@\" stop -D \"$DATA\" -m immediate -w >/dev/null 2>&1; \
                 rm -rf \"$ROOT\"",
            )
            .arg("firebreak-pg-watchdog");
        if let Some(user) = &self.run_as {
            command.args(["runuser", "-u", user, "--"]);
        }
        let mut child = command
            .arg(pg_ctl)
            .env("DATA", &self.data)
            .env("ROOT", &self.root)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the PostgreSQL watchdog: {e}"))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| "the watchdog has no standard input".to_string())?;
        *self
            .watchdog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((child, stdin));
        Ok(())
    }

    /// Stops the server at once and removes its folder; the watchdog, told by
    /// its pipe closing, finds nothing left to do.
    fn stop(&self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = self
                .command("pg_ctl")
                .arg("stop")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((mut child, mut stdin)) = watchdog {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

extern "C" fn stop_at_exit() {
    if let Some(server) = SERVER.get() {
        server.stop();
    }
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

/// Where `initdb` and `pg_ctl` are.
fn find_bindir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("FIREBREAK_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "FIREBREAK_PG_BINDIR={} holds no initdb and pg_ctl",
                dir.display()
            ))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        candidates.push(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    // Debian keeps the server binaries per major version, off PATH.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    candidates.extend(versions.into_iter().rev().map(|(_, dir)| dir));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|dir| has_server_binaries(dir))
        .ok_or_else(|| {
            "the PostgreSQL server binaries (initdb, pg_ctl) were not found, and the storage \
             tests run against PostgreSQL\nhint: install Debian's `postgresql` package \
             (`apt-get install postgresql`), or set FIREBREAK_PG_BINDIR to the folder holding \
             initdb and pg_ctl"
                .to_string()
        })
}

/// The user to run the server as: none unless this process runs as root.
fn run_as_user() -> Result<Option<String>, String> {
    let uid = std::fs::metadata("/proc/self")
        .map_err(|e| format!("reading /proc/self: {e}"))?
        .uid();
    if uid != 0 {
        return Ok(None);
    }
    for user in ["postgres", "nobody"] {
        if ids_of(user).is_ok() {
            return Ok(Some(user.to_string()));
        }
    }
    Err(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run \
         PostgreSQL as (initdb refuses root)"
            .to_string(),
    )
}

fn ids_of(user: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let output = Command::new("id")
            .args([flag, user])
            .output()
            .map_err(|e| format!("running id: {e}"))?;
        if !output.status.success() {
            return Err(format!("no user {user}"));
        }
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("id {flag} {user}: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fresh_databases_are_distinct_and_empty() {
        let a = fresh_database().await;
        let b = fresh_database().await;
        assert_ne!(a, b);
        let mut conn = sqlx::PgConnection::connect(&a).await.expect("connected");
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("counted");
        assert_eq!(tables, 0);
        sqlx::query("CREATE TABLE t (x BIGINT)")
            .execute(&mut conn)
            .await
            .expect("created");
        conn.close().await.expect("closed");
        restart();
        // The committed table survived the crash; a new connection sees it.
        let mut conn = sqlx::PgConnection::connect(&a).await.expect("reconnected");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut conn)
            .await
            .expect("read");
        assert_eq!(rows, 0);
    }
}
