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

/// Starts the development project (data in `dir/data`) with the server API on `server_api`,
/// the gate on a free loopback port and the admin port off.
fn start_dev_without_admin(dir: &Path, server_api: &str) -> Binary {
    let data = dir.join("data");
    let args: [&OsStr; 8] = [
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--server-api".as_ref(),
        server_api.as_ref(),
        "--gate".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--admin".as_ref(),
        "".as_ref(),
    ];
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
    let rtmd = start_dev_without_admin(dir.path(), "127.0.0.1:0");
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
    let rtmd = start_dev_without_admin(dir.path(), "localhost:0");
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

const SECRET_OK: &str = "0123456789abcdef0123";

/// The `rtmd::audit` lines of a JSON log.
fn audit_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .filter(|v| v["target"] == "rtmd::audit")
        .map(|v| v["fields"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_kickouts_removetokens_and_refused_calls_are_audited() {
    use rtmd::config::DEV_PID;
    let dir = tempfile::tempdir().unwrap();
    let rtmd = start_with_config(
        dir.path(),
        &format!("log_format = \"json\"\n{PROJECT}"),
        &[],
    );
    let client = sdk(&rtmd.api, DEV_PID, SECRET_OK);
    let token = within("gettoken", client.get_token(42)).await.unwrap();
    let session = RawConn::logged_in_to(&rtmd.gate, DEV_PID, 42, &token).await;
    let ce = session.local_addr().to_string();
    GateClient::connect(&rtmd.gate)
        .await
        .refused(DEV_PID, 43, "forged")
        .await;
    let kicked = within("kickout", client.kickout(42)).await.unwrap();
    within("removetoken", client.remove_token(44))
        .await
        .unwrap();
    within("adddevice", client.add_device(45, "fcm", "device-45"))
        .await
        .unwrap();
    within("removedevice", client.remove_device(45, "device-45"))
        .await
        .unwrap();
    // Refused server API calls: a bad sign, a ts out of the window, a replay.
    let wrong = sdk(&rtmd.api, DEV_PID, "not-the-secret-at-all");
    assert_eq!(
        sdk_code(within("bad sign", wrong.get_token(1)).await),
        200002
    );
    let raw = fpnn::client::Client::builder(rtmd.api.as_str())
        .quest_timeout(WAIT)
        .build();
    let late = signed(DEV_PID, SECRET_OK, "gettoken", fresh_salt(), now() - 3600).with("uid", 1);
    let e = answer_error(within("late", raw.quest("gettoken", &late)).await);
    assert_eq!(e.code, 200008);
    let once = signed(DEV_PID, SECRET_OK, "gettoken", fresh_salt(), now()).with("uid", 1);
    within("first", raw.quest("gettoken", &once)).await.unwrap();
    let e = answer_error(within("replay", raw.quest("gettoken", &once)).await);
    assert_eq!(e.code, 200006);

    let log = stop(rtmd);
    let audit = audit_lines(&log);
    let find = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        audit
            .iter()
            .find(|v| pred(v))
            .cloned()
            .unwrap_or_else(|| panic!("no {what} in:\n{log}"))
    };
    let accepted = find("accepted login", &|v| {
        v["event"] == "login" && v["result"] == "ok"
    });
    assert_eq!(accepted["pid"], "11000001");
    assert_eq!(accepted["uid"], "42");
    assert_eq!(accepted["ce"], ce.as_str());
    assert_eq!(accepted["message"], "login accepted");
    let refused = find("refused login", &|v| {
        v["event"] == "login" && v["result"] != "ok"
    });
    assert_eq!(refused["result"], "malformed");
    assert_eq!(refused["reason"], "malformed token");
    assert_eq!(refused["uid"], "43");
    assert!(refused["ce"].as_str().unwrap().starts_with("127.0.0.1:"));
    let kick = find("kickout", &|v| v["event"] == "kickout");
    assert_eq!(kicked, Some(1));
    assert_eq!(
        (kick["pid"].as_i64(), kick["uid"].as_i64()),
        (Some(i64::from(DEV_PID)), Some(42))
    );
    assert_eq!(kick["ce"], "*");
    assert_eq!(kick["kicked"].as_u64(), Some(1));
    let revoked = find("removetoken", &|v| v["event"] == "removetoken");
    assert_eq!(revoked["uid"].as_i64(), Some(44));
    let added = find("device added", &|v| {
        v["event"] == "device" && v["change"] == "added"
    });
    assert_eq!(
        (added["uid"].as_i64(), added["apptype"].as_str()),
        (Some(45), Some("fcm"))
    );
    let removed = find("device removed", &|v| {
        v["event"] == "device" && v["change"] == "removed"
    });
    assert_eq!(removed["uid"].as_i64(), Some(45));
    let refusals: Vec<_> = audit.iter().filter(|v| v["event"] == "refused").collect();
    let codes: Vec<_> = refusals
        .iter()
        .map(|v| v["code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![200002, 200008, 200006], "{log}");
    for r in &refusals {
        assert_eq!(r["method"], "gettoken");
        assert!(r["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(!r["reason"].as_str().unwrap().is_empty());
    }
    assert!(refusals[1]["reason"]
        .as_str()
        .unwrap()
        .contains("check the clock"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_rate_limited_and_counted() {
    use rtmd::config::DEV_PID;
    const FLOOD: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let rtmd = start_with_config(
        dir.path(),
        &format!("log_format = \"json\"\n{PROJECT}"),
        &[],
    );
    let wrong = sdk(&rtmd.api, DEV_PID, "not-the-secret-at-all");
    let started = std::time::SystemTime::now();
    let mut calls = Vec::new();
    for uid in 0..FLOOD {
        let wrong = wrong.clone();
        calls.push(tokio::spawn(
            async move { wrong.get_token(uid as i64).await },
        ));
    }
    for call in calls {
        assert_eq!(sdk_code(within("flood", call).await.unwrap()), 200002);
    }
    let took = started.elapsed().unwrap();
    // One more refusal in a later second reports what was left out before it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(sdk_code(within("last", wrong.get_token(1)).await), 200002);
    let log = stop(rtmd);
    let audit = audit_lines(&log);
    let written = audit.iter().filter(|v| v["event"] == "refused").count();
    let left_out: u64 = audit
        .iter()
        .filter(|v| v["event"] == "left_out" && v["kind"] == "refusals")
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    // Every refusal is either a line or counted in one.
    assert_eq!(written as u64 + left_out, FLOOD as u64 + 1, "{log}");
    // At most 100 lines in each second the flood touched (and the last call's second).
    let seconds = took.as_secs() + 2;
    assert!(
        written as u64 <= 100 * (seconds + 1),
        "{written} lines over {took:?}"
    );
    assert!(
        left_out > 0,
        "a flood of {FLOOD} in {took:?} was not limited"
    );
}
