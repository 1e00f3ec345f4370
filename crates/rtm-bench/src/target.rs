//! The servers under load: `rtmd` started as a child process (or one already running), and
//! the no-work responder in a child process of its own; their memory and CPU from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pid of the development project `rtmd` runs without a configuration.
pub const DEV_PID: i32 = 11000001;

/// A server process the bench talks to.
pub struct Target {
    /// What it is, for reports.
    pub name: String,
    /// Its server API (for the responder: its only port).
    pub server_api: SocketAddr,
    /// Its gate (the responder: the same port).
    pub gate: SocketAddr,
    /// Its operating-system process id, when known (for RSS and CPU).
    pub os_pid: Option<u32>,
    /// Its admin port (`/metrics`), when known.
    pub admin: Option<SocketAddr>,
    /// The project id and secret.
    pub pid: i32,
    /// The project's secret.
    pub secret: String,
    /// When its ports are encrypted (`--encrypt`): what clients encrypt with.
    pub encryption: Option<fpnn::encryption::ClientEncryption>,
    child: Option<Child>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SIGTERM first, so that rtmd closes its store; then make sure.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Only loopback addresses are load targets.
pub fn check_loopback(addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "{addr} is not a loopback address: rtm-bench only loads servers on this machine"
        ))
    }
}

fn wait_ready(
    child: &mut Child,
    prefix: &str,
    what: &str,
) -> Result<Vec<(String, String)>, String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("{what}: no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        // Keep reading so that the child never blocks on a full pipe.
        for _ in lines {}
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => {
                return Ok(line[prefix.len()..]
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect());
            }
            Ok(_) => {}
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                return Err(format!(
                    "{what} did not print '{prefix}…' within 30 s (exit status: {status:?})"
                ));
            }
        }
    }
}

fn field(fields: &[(String, String)], key: &str, what: &str) -> Result<SocketAddr, String> {
    let value = fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| format!("{what}: no {key}= in its ready line"))?;
    let addr: SocketAddr = value
        .parse()
        .map_err(|e| format!("{what}: bad {key} address '{value}': {e}"))?;
    check_loopback(&addr)?;
    Ok(addr)
}

/// The admin address of rtmd's ready line (`admin=ADDR`, or `admin=off`; older builds
/// wrote `admin=Some(ADDR)`), if it is a loopback one.
fn admin_field(fields: &[(String, String)]) -> Option<SocketAddr> {
    let value = fields.iter().find(|(k, _)| k == "admin")?.1.as_str();
    let value = value
        .strip_prefix("Some(")
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or(value);
    value
        .parse()
        .ok()
        .filter(|a: &SocketAddr| a.ip().is_loopback())
}

impl Target {
    /// Starts `rtmd` (the binary at `bin`) on free loopback ports, with a configuration file
    /// written into `data_dir`: the development project's pid, a fresh secret, and a replay
    /// window of `replay_capacity` requests (0: no setting, rtmd's default). Waits for its
    /// ready line.
    pub fn start_rtmd(
        bin: &Path,
        data_dir: &Path,
        replay_capacity: usize,
        extra_limits: &str,
        encrypt: Option<fpnn::encryption::Mode>,
    ) -> Result<Target, String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let secret = format!(
            "bench-{:x}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        // 0: rtmd's default (and a configuration that rtmd before limits.replay_capacity reads).
        let mut limits = String::new();
        if replay_capacity > 0 {
            limits.push_str(&format!("replay_capacity = {replay_capacity}\n"));
        }
        limits.push_str(extra_limits);
        let limits = if limits.is_empty() {
            limits
        } else {
            format!("[limits]\n{limits}\n")
        };
        // With --encrypt: a secp256r1 key for both ports, plain connections still allowed
        // (the plain runs of the same rtmd and the encrypted ones share it).
        let (encryption, encryption_tables) = match encrypt {
            None => (None, String::new()),
            Some(mode) => {
                use fpnn::encryption::{write_key_files, ClientEncryption, Curve, PrivateKey};
                let key = PrivateKey::generate(Curve::Secp256r1).map_err(|e| e.to_string())?;
                let files = write_key_files(&key, data_dir.join("bench-key"), true)
                    .map_err(|e| e.to_string())?;
                let table = |port: &str| {
                    format!(
                        "[encryption.{port}]\ncurve = \"secp256r1\"\nprivate_key = {:?}\npolicy = \"allow\"\n\n",
                        files.private_key.display().to_string()
                    )
                };
                let tables = table("server_api") + &table("gate");
                let client = ClientEncryption::new(key.public_key().clone()).mode(mode);
                (Some(client), tables)
            }
        };
        let config = format!(
            "data_dir = {dir:?}\n\n[listen]\nserver_api = \"127.0.0.1:0\"\ngate = \"127.0.0.1:0\"\n\
             admin = \"127.0.0.1:0\"\n\n{limits}[[projects]]\npid = {DEV_PID}\nsecrets = [\"{secret}\"]\n\n{encryption_tables}",
            dir = data_dir.display().to_string(),
        );
        let config_path = data_dir.join("rtmd.toml");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        // Through a shell that raises the soft limit of open files to the hard one, so that
        // rtmd can hold as many connections as the machine allows.
        let mut child = raised_nofile(bin)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e} (build it with `cargo build --release -p rtmd`, or pass --rtmd)", bin.display()))?;
        let fields = match wait_ready(&mut child, "rtmd ready ", "rtmd") {
            Ok(f) => f,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Target {
            name: "rtmd".into(),
            server_api: field(&fields, "server_api", "rtmd")?,
            gate: field(&fields, "gate", "rtmd")?,
            admin: admin_field(&fields),
            os_pid: Some(child.id()),
            pid: DEV_PID,
            secret,
            encryption,
            child: Some(child),
        })
    }

    /// Starts the no-work responder (`rtm-bench responder`) in a child process.
    pub fn start_responder() -> Result<Target, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find rtm-bench: {e}"))?;
        let mut child = raised_nofile(&exe)
            .args(["responder", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the responder: {e}"))?;
        let fields = wait_ready(&mut child, "responder ready ", "responder")?;
        let addr = field(&fields, "addr", "responder")?;
        Ok(Target {
            name: "limit".into(),
            server_api: addr,
            gate: addr,
            admin: None,
            os_pid: Some(child.id()),
            pid: DEV_PID,
            secret: "any".into(),
            encryption: None,
            child: Some(child),
        })
    }

    /// An `rtmd` started by someone else.
    pub fn running(
        server_api: SocketAddr,
        gate: SocketAddr,
        pid: i32,
        secret: String,
        os_pid: Option<u32>,
    ) -> Result<Target, String> {
        check_loopback(&server_api)?;
        check_loopback(&gate)?;
        Ok(Target {
            name: "rtmd".into(),
            server_api,
            gate,
            admin: None,
            os_pid,
            pid,
            secret,
            encryption: None,
            child: None,
        })
    }

    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.os_pid?)
    }

    /// The process's CPU time so far.
    pub fn cpu(&self) -> Option<Duration> {
        cpu_time(&format!("/proc/{}/stat", self.os_pid?))
    }
}

/// A command that runs `program` with the soft limit of open files raised to the hard one
/// (`sh -c 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"'`); `exec` keeps the process id, so the
/// child's pid is the program's.
fn raised_nofile(program: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$0\" \"$@\"")
        .arg(program);
    command
}

/// This process's soft and hard limits of open files, from `/proc/self/limits`.
pub fn nofile_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| match v? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(numbers.next())?, parse(numbers.next())?))
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User + system CPU time from a `/proc/…/stat` file.
pub fn cpu_time(stat_path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 1000 / clock_ticks()))
}

/// utime + stime, in clock ticks, of a `/proc/…/stat` line.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the whole line; utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> u64 {
    // USER_HZ is 100 on every Linux the bench runs on; `getconf` confirms when present.
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU time of this process.
pub fn own_cpu() -> Option<Duration> {
    cpu_time("/proc/self/stat")
}

/// A temporary data directory for an `rtmd` the bench starts.
pub fn temp_data_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("rtm-bench-{}-{nanos}", std::process::id()))
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_a_stat_line() {
        let line = "1234 (rtm bench) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(line), Some(287));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn only_loopback_targets() {
        assert!(check_loopback(&"127.0.0.1:1".parse().unwrap()).is_ok());
        assert!(check_loopback(&"[::1]:1".parse().unwrap()).is_ok());
        assert!(check_loopback(&"10.0.0.1:1".parse().unwrap()).is_err());
    }
}
