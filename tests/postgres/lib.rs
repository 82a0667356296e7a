//! A throwaway PostgreSQL cluster for a test: `initdb` in a temporary
//! directory, started by `pg_ctl` listening only on a Unix socket in that
//! directory, stopped and removed when dropped. It uses Debian's server
//! binaries (`/usr/lib/postgresql/N/bin`, installed by `scripts/setup-tests`)
//! and never touches a system-wide cluster. As root (CI), the server runs as
//! the `postgres` user, since PostgreSQL refuses to run as root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};

/// A running cluster; stopped and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Where Debian's server binaries are: the newest version installed.
fn server_binaries() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (run scripts/setup-tests): {e}"))?
        .filter_map(|d| d.ok().map(|d| d.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql (run scripts/setup-tests)".into())
}

/// Distinct socket names for the clusters of one test process.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

impl Cluster {
    /// A new cluster with the test settings: `fsync=off` (a test's data is
    /// thrown away; a crash of the machine is not what it checks).
    pub fn start() -> Result<Cluster, String> {
        Cluster::start_with(&["fsync=off"])
    }

    /// A new cluster with these server `settings` (`name=value`).
    pub fn start_with(settings: &[&str]) -> Result<Cluster, String> {
        let bin = server_binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("orchestr8-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory for the cluster: {e}"))?;
        // The owner of a directory this process just made is its user.
        let as_postgres = dir.path().metadata().is_ok_and(|m| m.uid() == 0);
        if as_postgres {
            // The server's user must reach its directory and socket.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .map_err(|e| format!("cannot open the cluster directory up: {e}"))?;
        }
        // A port only names the socket file; nothing listens on TCP.
        let port = 20_000 + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 20_000;
        let cluster = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let mut options = format!(
            "-c listen_addresses='' -c unix_socket_directories={} -p {}",
            cluster.socket_dir().display(),
            port
        );
        for setting in settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = cluster.dir.path().join("server.log");
        let log = log.to_string_lossy();
        cluster.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        )?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far (to show when a test fails).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, String> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            ));
        }
        Ok(out)
    }

    /// Creates database `name`; returns its URL.
    pub fn database(&self, name: &str) -> Result<String, String> {
        let mut args = self.connection();
        args.push(name.to_string());
        self.run(
            "createdb",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        Ok(self.url(name))
    }

    /// The arguments a client tool connects with: the socket, as `postgres`.
    fn connection(&self) -> Vec<String> {
        let socket = self.socket_dir().to_string_lossy().into_owned();
        [
            "-h",
            &socket,
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// The URL of database `name` (over the socket, as `postgres`).
    pub fn url(&self, name: &str) -> String {
        let socket: String = self
            .socket_dir()
            .to_string_lossy()
            .replace('%', "%25")
            .replace('/', "%2F");
        format!("postgres://postgres@{socket}:{}/{name}", self.port)
    }

    /// Runs SQL on database `name` through `psql`; returns what it printed
    /// (unaligned, tuples only).
    pub fn sql(&self, name: &str, sql: &str) -> Result<String, String> {
        let mut args = self.connection();
        for arg in [
            "-d",
            name,
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ] {
            args.push(arg.to_string());
        }
        let out = self.run("psql", &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
