//! The browser test harness: headless Chromium opens a page served on loopback, the page
//! posts its result back, and the harness keeps a screenshot of the page's final state.
//!
//! Include it in an integration test with
//!
//! ```ignore
//! #[path = "../../../test-support/browser/harness.rs"]
//! mod browser;
//! ```
//!
//! and see `README.md` beside this file. It is blocking (std threads and processes): call
//! [`run`] from `tokio::task::spawn_blocking` when the server under test runs on tokio.
//!
//! Without Chromium, [`chromium_or_skip`] prints `SKIPPED: …` and the test returns; with
//! `RTM_REQUIRE_BROWSER=1` (CI) it fails instead. `RTM_CHROMIUM` names the binary.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The FPNN-over-WebSocket client for pages (`Fpnn`), served at `/fpnn.js`.
pub const FPNN_JS: &str = include_str!("fpnn.js");
/// The page side of the harness (`Harness.log`, `Harness.report`), served at `/harness.js`.
pub const HARNESS_JS: &str = include_str!("harness.js");
/// The pages' style sheet, served at `/harness.css`.
pub const HARNESS_CSS: &str = include_str!("harness.css");
/// The echo page that proves the harness (against `crates/fpnn/tests/web_echo`).
pub const ECHO_HTML: &str = include_str!("echo.html");
/// The page that checks `fpnn.js` against the official vectors passed in its query.
pub const VECTORS_HTML: &str = include_str!("vectors.html");

/// The flags every Chromium run gets: headless, no sandbox (CI runs as root), and nothing
/// that reaches the network on its own.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// Why a browser run failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BrowserError {
    /// Chromium could not be started.
    Spawn(std::io::Error),
    /// The harness's page server could not listen or a file could not be written.
    Io(std::io::Error),
    /// Chromium exited before the page reported (its log is at the path).
    Exited(std::process::ExitStatus, PathBuf),
    /// No result within the time allowed (Chromium's log is at the path).
    Timeout(Duration, PathBuf),
}

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrowserError::Spawn(e) => write!(f, "cannot start Chromium: {e}"),
            BrowserError::Io(e) => write!(f, "browser harness I/O: {e}"),
            BrowserError::Exited(status, log) => {
                write!(
                    f,
                    "Chromium exited ({status}) before the page reported; see {}",
                    log.display()
                )
            }
            BrowserError::Timeout(d, log) => {
                write!(
                    f,
                    "the page reported nothing within {d:?}; Chromium's log: {}",
                    log.display()
                )
            }
        }
    }
}

impl std::error::Error for BrowserError {}

/// The Chromium binary: `RTM_CHROMIUM`, else `chromium`, `chromium-browser` or
/// `google-chrome` on the `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RTM_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
}

/// The Chromium binary, or `None` after printing `SKIPPED: …` (the test then returns).
///
/// Panics instead when `RTM_REQUIRE_BROWSER=1`: CI installs Chromium and must run these.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(path) = find_chromium() {
        return Some(path);
    }
    let required = std::env::var("RTM_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: Chromium not found and RTM_REQUIRE_BROWSER=1 (install Debian's chromium, or set RTM_CHROMIUM)"
    );
    eprintln!(
        "SKIPPED: {test}: Chromium not found (install Debian's chromium, or set RTM_CHROMIUM)"
    );
    None
}

/// One page to open.
pub struct PageRun<'a> {
    /// Chromium.
    pub chromium: &'a Path,
    /// The name of the run: the screenshot is `<artifacts>/<name>.png`.
    pub name: &'a str,
    /// The page's HTML, served at `/` (with `/fpnn.js`, `/harness.js` and `/harness.css`
    /// beside it).
    pub html: &'a str,
    /// The query string given to the page (`ws=ws://…`), without the `?`.
    pub query: &'a str,
    /// More Chromium flags (e.g. `--ignore-certificate-errors-spki-list=…`).
    pub extra_flags: &'a [String],
    /// How long the page may take to report.
    pub timeout: Duration,
}

/// What a page reported.
#[derive(Debug)]
pub struct Report {
    /// The JSON the page passed to `Harness.report`.
    pub result: String,
    /// The screenshot of the page's final state, when it could be taken.
    pub screenshot: Option<PathBuf>,
}

/// Where the runs keep their screenshots and Chromium logs: `target/tmp/browser/`.
pub fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser")
}

/// Opens the page in headless Chromium, waits (at most `timeout`) for its report, stops
/// Chromium, and renders the page's final state as a screenshot.
pub fn run(page: &PageRun<'_>) -> Result<Report, BrowserError> {
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).map_err(BrowserError::Io)?;
    let server = PageServer::start(page.html).map_err(BrowserError::Io)?;
    let url = format!("http://{}/?{}", server.addr, page.query);
    let log = artifacts.join(format!("{}.chromium.log", page.name));

    let mut browser = Browser::start(page.chromium, &log, page.extra_flags, &[url])?;
    let deadline = Instant::now() + page.timeout;
    let result = loop {
        match server.results.recv_timeout(Duration::from_millis(100)) {
            Ok(result) => break Ok(result),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(BrowserError::Io(std::io::ErrorKind::BrokenPipe.into()))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(status)) = browser.child.try_wait() {
            break Err(BrowserError::Exited(status, log.clone()));
        }
        if Instant::now() >= deadline {
            break Err(BrowserError::Timeout(page.timeout, log.clone()));
        }
    };
    browser.stop();
    let result = result?;

    let screenshot = server.snapshot().and_then(|_| {
        let png = artifacts.join(format!("{}.png", page.name));
        let _ = std::fs::remove_file(&png);
        let shot_log = artifacts.join(format!("{}.screenshot.log", page.name));
        let flags = [
            format!("--screenshot={}", png.display()),
            "--window-size=1000,800".to_owned(),
            "--hide-scrollbars".to_owned(),
        ];
        let snapshot_url = format!("http://{}/snapshot", server.addr);
        let mut shot = Browser::start(page.chromium, &shot_log, &flags, &[snapshot_url]).ok()?;
        // A screenshot run exits by itself once the page has loaded.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(shot.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(50));
        }
        shot.stop();
        png.is_file().then_some(png)
    });
    Ok(Report { result, screenshot })
}

/// A running Chromium, in a process group of its own (its zygote and renderers with it), and
/// its fresh profile directory.
struct Browser {
    child: Child,
    profile: PathBuf,
    stopped: bool,
}

static PROFILES: AtomicUsize = AtomicUsize::new(0);

impl Browser {
    fn start(
        chromium: &Path,
        log: &Path,
        extra_flags: &[String],
        urls: &[String],
    ) -> Result<Browser, BrowserError> {
        use std::os::unix::process::CommandExt;
        let n = PROFILES.fetch_add(1, Ordering::Relaxed);
        let profile = std::env::temp_dir().join(format!("rtm-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).map_err(BrowserError::Io)?;
        let log_file = std::fs::File::create(log).map_err(BrowserError::Io)?;
        let log_err = log_file.try_clone().map_err(BrowserError::Io)?;
        let child = Command::new(chromium)
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra_flags)
            .args(urls)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(BrowserError::Spawn)?;
        Ok(Browser {
            child,
            profile,
            stopped: false,
        })
    }

    /// Kills Chromium's process group (the group we made for it, by its id) and waits.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The harness's own small HTTP server: the page and its scripts, and the two endpoints the
/// page posts to (`/result`, `/snapshot`).
struct PageServer {
    addr: SocketAddr,
    results: mpsc::Receiver<String>,
    snapshot: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PageServer {
    fn start(html: &str) -> std::io::Result<PageServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, results) = mpsc::channel();
        let snapshot = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let html = html.to_owned();
        let thread = {
            let (snapshot, stop) = (Arc::clone(&snapshot), Arc::clone(&stop));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (tx, snapshot, html) = (tx.clone(), Arc::clone(&snapshot), html.clone());
                    thread::spawn(move || serve(stream, &html, &tx, &snapshot));
                }
            })
        };
        Ok(PageServer {
            addr,
            results,
            snapshot,
            stop,
            thread: Some(thread),
        })
    }

    fn snapshot(&self) -> Option<String> {
        self.snapshot.lock().ok()?.clone()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The largest request the page server reads (a page snapshot is a few kilobytes).
const MAX_REQUEST: usize = 4 << 20;

/// Serves one request, then closes the connection.
fn serve(
    mut stream: TcpStream,
    html: &str,
    results: &mpsc::Sender<String>,
    snapshot: &Mutex<Option<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (method, path, body) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(head)) => {
                let length = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .unwrap_or(0);
                if buf.len() >= head + length {
                    let method = request.method.unwrap_or("").to_owned();
                    let path = request.path.unwrap_or("").to_owned();
                    break (method, path, buf[head..head + length].to_vec());
                }
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return,
        }
        if buf.len() > MAX_REQUEST {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let path = path.split('?').next().unwrap_or("");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let (status, kind, content) = match (method.as_str(), path) {
        ("GET", "/") => ("200 OK", "text/html; charset=utf-8", html.to_owned()),
        ("GET", "/fpnn.js") => ("200 OK", "text/javascript", FPNN_JS.to_owned()),
        ("GET", "/harness.js") => ("200 OK", "text/javascript", HARNESS_JS.to_owned()),
        ("GET", "/harness.css") => ("200 OK", "text/css", HARNESS_CSS.to_owned()),
        ("GET", "/snapshot") => match snapshot.lock().ok().and_then(|s| s.clone()) {
            Some(page) => ("200 OK", "text/html; charset=utf-8", page),
            None => ("404 Not Found", "text/plain", String::new()),
        },
        ("POST", "/snapshot") => {
            if let Ok(mut s) = snapshot.lock() {
                *s = Some(text(body));
            }
            ("204 No Content", "text/plain", String::new())
        }
        ("POST", "/result") => {
            let _ = results.send(text(body));
            ("204 No Content", "text/plain", String::new())
        }
        _ => ("404 Not Found", "text/plain", String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        content.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(content.as_bytes());
}
