//! What the real `rtmd` binary writes to stderr: plain text when stderr is a file, the
//! ready line once, JSON lines with `log_format = "json"`, and configuration warnings.

mod common;

use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Starts `rtmd --config` with this TOML (loopback ports, data in `dir`), `extra` arguments.
fn start_with_config(dir: &Path, toml: &str, extra: &[&str]) -> Binary {
    let config = dir.join("rtmd.toml");
    let data = dir.join("data");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = {{ server_api = \"127.0.0.1:0\", gate = \"127.0.0.1:0\", admin = \"127.0.0.1:0\" }}\n{toml}",
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut args: Vec<&OsStr> = vec!["--config".as_ref(), config.as_os_str()];
    args.extend(extra.iter().map(|a| OsStr::new(*a)));
    Binary::start_args(&args, dir.join("stderr"))
}

/// Stops `rtmd` with SIGTERM and returns its stderr.
fn stop(mut rtmd: Binary) -> String {
    rtmd.terminate();
    let status = rtmd.wait_exit();
    let log = rtmd.stderr();
    assert!(status.success(), "{status:?}\n{log}");
    log
}

const PROJECT: &str = "[[projects]]\npid = 11000001\nsecrets = [\"0123456789abcdef0123\"]\n";

#[test]
fn text_logs_to_a_file_have_no_colours_and_one_clean_ready_line() {
    let dir = tempfile::tempdir().unwrap();
    let rtmd = Binary::start(&dir.path().join("data"));
    let admin = rtmd.admin.clone();
    let log = stop(rtmd);
    assert!(!log.contains('\x1b'), "ANSI escapes in a file:\n{log:?}");
    let ready: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rtmd is ready"))
        .collect();
    assert_eq!(ready.len(), 1, "{log}");
    assert!(ready[0].contains(&format!("admin={admin}")), "{log}");
    assert!(!log.contains("Some("), "{log}");
    assert!(log.contains(" INFO "), "{log}");
}

#[test]
fn the_admin_port_off_reads_off_in_the_ready_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rtmd = Binary::start_args(
        &[
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--server-api".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--gate".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--admin".as_ref(),
            "".as_ref(),
        ],
        dir.path().join("stderr"),
    );
    assert_eq!(rtmd.admin, "off");
    let log = stop(rtmd);
    assert!(log.contains("admin=off"), "{log}");
    assert!(!log.contains("None"), "{log}");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let rtmd = start_with_config(
        dir.path(),
        &format!("log_format = \"json\"\n{PROJECT}"),
        &[],
    );
    let log = stop(rtmd);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let ready = lines
        .iter()
        .find(|v| v["fields"]["message"] == "rtmd is ready")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(ready["level"], "INFO");
    assert!(ready["fields"]["gate"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(
        lines.iter().any(|v| v["fields"]["message"] == "stopped"),
        "{log}"
    );
}

#[test]
fn ignored_and_weak_settings_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let rtmd = start_with_config(
        dir.path(),
        "[redis]\nkey_prefix = \"x\"\n[[projects]]\npid = 5\nsecrets = [\"short\"]\n",
        &["--data-dir", "/nonexistent/ignored"],
    );
    let log = stop(rtmd);
    let warns: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warns.len(), 3, "{log}");
    assert!(
        warns
            .iter()
            .any(|l| l.contains("[redis] section is ignored")),
        "{log}"
    );
    assert!(
        warns
            .iter()
            .any(|l| l.contains("--data-dir") && l.contains("ignored with --config")),
        "{log}"
    );
    assert!(
        warns
            .iter()
            .any(|l| l.contains("projects[0].secrets[0]") && l.contains("5 characters")),
        "{log}"
    );
    assert!(!PathBuf::from("/nonexistent/ignored").exists());
}

#[test]
fn a_clean_configuration_draws_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let log = stop(start_with_config(dir.path(), PROJECT, &[]));
    assert!(!log.contains("WARN"), "{log}");
}

#[test]
fn a_host_name_is_accepted_where_an_address_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rtmd = Binary::start_args(
        &[
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--server-api".as_ref(),
            "localhost:0".as_ref(),
            "--gate".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--admin".as_ref(),
            "".as_ref(),
        ],
        dir.path().join("stderr"),
    );
    let api: std::net::SocketAddr = rtmd.api.parse().unwrap();
    assert!(api.ip().is_loopback(), "{api}");
    stop(rtmd);
    // A malformed one is still refused before anything starts, with exit code 2.
    let out = run_to_exit(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--gate",
        "local host:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen.gate") && err.contains("host:port"),
        "{err}"
    );
}
