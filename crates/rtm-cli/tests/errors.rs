//! How `rtm` fails: one style for every subcommand (what failed, where, the code and its
//! official name, a hint), usage errors with exit code 2, negative uids, timeouts, and the
//! exit codes in `--help`.

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::Output;
use tokio::net::TcpListener;

/// The subcommands that talk to a server, with what their failure message calls them.
const CALLS: [(&str, &[&str]); 6] = [
    ("gettoken", &["token", "get", "--uid", "5"]),
    ("removetoken", &["token", "remove", "--uid", "5"]),
    ("getdevices", &["device", "list", "--uid", "5"]),
    ("kickout", &["kickout", "--uid", "5"]),
    ("kickout", &["kickout", "--uid", "5", "--ce", "127.0.0.1:9"]),
    ("login", &["login", "--uid", "5", "--token", "x"]),
];

/// An address where nothing listens.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

/// A listener that accepts connections and never answers; they stay open while it lives.
async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// The failure line of `out` with the name of the call taken out, and the hint line.
fn failure_lines(out: &Output, what: &str) -> (String, String) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(out);
    let mut lines = err.lines();
    let first = lines.next().unwrap_or_default();
    let prefix = format!("rtm: {what} failed at ");
    assert!(first.starts_with(&prefix), "{err}");
    let hint = lines.next().unwrap_or_default().to_owned();
    assert!(hint.starts_with("hint: "), "{err}");
    assert_eq!(lines.next(), None, "{err}");
    (first[prefix.len()..].to_owned(), hint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_reads_the_same_in_every_subcommand() {
    let nowhere = closed_port().await;
    let mut seen = Vec::new();
    for (what, args) in CALLS {
        let out = run(rtm_at(&nowhere, &nowhere, SECRET), args).await;
        let (line, hint) = failure_lines(&out, what);
        assert!(
            line.starts_with(&format!(
                "{nowhere}: connection error 20012 (FPNN_EC_CORE_INVALID_CONNECTION): \
                 cannot connect to {nowhere}: "
            )),
            "{what}: {line}"
        );
        let flags = if what == "login" {
            "--gate / RTM_GATE (127.0.0.1:13321 by default)"
        } else {
            "--endpoint / RTM_ENDPOINT (127.0.0.1:13315 by default)"
        };
        assert_eq!(hint, format!("hint: is rtmd running? check {flags}"));
        seen.push(line);
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "one message: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_service_times_out_after_the_timeout_given_in_every_subcommand() {
    let (silent, task) = silent_server().await;
    let silent = silent.to_string();
    let mut seen = Vec::new();
    for (what, args) in CALLS {
        let mut cmd = rtm_at(&silent, &silent, SECRET);
        cmd.args(["--timeout", "0.2"]);
        let out = run(cmd, args).await;
        let (line, hint) = failure_lines(&out, what);
        assert_eq!(
            line,
            format!("{silent}: timeout 20003 (FPNN_EC_CORE_TIMEOUT): no answer within 0.2 s"),
            "{what}"
        );
        assert!(hint.contains("raise --timeout"), "{hint}");
        seen.push(line);
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "one message: {seen:?}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_port_says_which_port_to_use() {
    let (rtmd, _dir) = start().await;
    let api = rtmd.server_api_addr().to_string();
    let gate = rtmd.gate_addr().to_string();

    // `rtm login` at the server API port.
    let out = run(
        rtm_at(&api, &api, SECRET),
        &["login", "--uid", "5", "--token", "x"],
    )
    .await;
    let (line, hint) = failure_lines(&out, "login");
    assert_eq!(
        line,
        format!("{api}: server error 20004 (FPNN_EC_CORE_UNKNOWN_METHOD): unknown method: auth")
    );
    assert_eq!(
        hint,
        "hint: this looks like the server API; the gate is --gate / RTM_GATE, 13321 by default"
    );

    // A server API call at the gate port.
    let out = run(
        rtm_at(&gate, &gate, SECRET),
        &["token", "get", "--uid", "5"],
    )
    .await;
    let (line, hint) = failure_lines(&out, "gettoken");
    assert!(
        line.starts_with(&format!(
            "{gate}: server error 200022 (RTM_EC_UNAUTHORIZED): "
        )),
        "{line}"
    );
    assert_eq!(
        hint,
        "hint: this looks like the client gate; the server API is --endpoint / RTM_ENDPOINT, \
         13315 by default"
    );
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_name_the_code_and_a_next_step() {
    let (rtmd, _dir) = start().await;
    let api = rtmd.server_api_addr().to_string();

    let out = run(
        rtm(&rtmd, "not-the-secret"),
        &["token", "get", "--uid", "7"],
    )
    .await;
    let (line, hint) = failure_lines(&out, "gettoken");
    assert_eq!(
        line,
        format!(
            "{api}: server error 200002 (RTM_EC_INVALID_PID_OR_SIGN): invalid sign for project {PID}"
        )
    );
    assert_eq!(
        hint,
        "hint: check --pid and --secret (or RTM_PID and RTM_SECRET); rtmd prints them when it starts"
    );

    // A refusal with no next step to suggest has no hint line.
    let out = run(
        rtm(&rtmd, SECRET),
        &[
            "device",
            "add",
            "--uid",
            "7",
            "--apptype",
            "pager",
            "--token",
            "d",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "rtm: adddevice failed at {api}: server error 200034 (RTM_EC_INVALID_PARAMETER): \
             apptype 'pager' is not supported: use \"apns\" or \"fcm\""
        )
    );
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_uids_are_sent_and_judged_by_the_server() {
    let (rtmd, _dir) = start().await;
    let api = rtmd.server_api_addr().to_string();
    for (what, args) in [
        ("gettoken", &["token", "get", "--uid", "-1"][..]),
        ("kickout", &["kickout", "--uid", "-1"]),
        ("getdevices", &["device", "list", "--uid=-5"]),
        ("gettoken", &["token", "get", "--uid", "0"]),
    ] {
        let out = run(rtm(&rtmd, SECRET), args).await;
        let (line, hint) = failure_lines(&out, what);
        assert!(
            line.starts_with(&format!(
                "{api}: server error 200001 (RTM_EC_INVALID_PID_OR_UID): uid "
            )),
            "{line}"
        );
        assert_eq!(
            hint,
            "hint: check --uid and --pid: user ids are positive (rtmd takes 1 to 9223372036854775807)"
        );
    }
    // The gate refuses such a login as it refuses any bad token.
    let out = run(
        rtm(&rtmd, SECRET),
        &["login", "--uid", "-1", "--token", "x"],
    )
    .await;
    assert!(matches!(out.status.code(), Some(1 | 3)), "{out:?}");
    assert!(stderr(&out).starts_with("rtm: login "), "{out:?}");
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_say_what_is_wrong() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--timeout", "0", "token", "get", "--uid", "1"],
            "a timeout must be at least 0.001 seconds; 0 would fail every call at once",
        ),
        (
            &["--timeout", "-3", "token", "get", "--uid", "1"],
            "a timeout must be at least 0.001 seconds",
        ),
        (
            &["--timeout", "1e40", "token", "get", "--uid", "1"],
            "is longer than a day",
        ),
        (
            &["--timeout", "soon", "token", "get", "--uid", "1"],
            "'soon' is not a number of seconds",
        ),
        (
            &["token", "get", "--uid", "1"],
            "no project id: pass --pid or set RTM_PID",
        ),
        (
            &["--pid", "1", "token", "get", "--uid", "1"],
            "no project secret: pass --secret or set RTM_SECRET",
        ),
    ];
    for (args, message) in cases {
        let out = run(bare_rtm(), args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(stdout(&out), "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fractional_timeout_is_used() {
    let (rtmd, _dir) = start().await;
    let (api, gate) = (rtmd.server_api_addr(), rtmd.gate_addr());
    let mut cmd = rtm_at(&api.to_string(), &gate.to_string(), SECRET);
    cmd.args(["--timeout", "0.5"]);
    let out = run(cmd, &["token", "get", "--uid", "3"]).await;
    assert!(out.status.success(), "{out:?}");
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_codes_are_in_the_help() {
    let out = run(bare_rtm(), &["--help"]).await;
    assert!(out.status.success());
    let help = stdout(&out);
    let codes = help
        .split("Exit codes:")
        .nth(1)
        .unwrap_or_else(|| panic!("{help}"));
    for line in [
        "  0  success",
        "  1  the call failed",
        "  2  the command line is wrong",
        "  3  login refused",
        "  4  login: the connection closed without a kickout",
    ] {
        assert!(codes.contains(line), "{line:?} in {codes}");
    }
}
