//! The build-info metric and the process metrics of `/metrics`.
//!
//! `rtmd_build_info{version="…"} 1` is always there. The `process_*` metrics follow the
//! Prometheus client libraries' names and are read from `/proc/self` on Linux; elsewhere
//! (and when `/proc` cannot be read) they are left out rather than shown as zero.

use std::fmt::Write;

/// Appends `rtmd_build_info` and, on Linux, the `process_*` metrics to `out`.
pub fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP rtmd_build_info The running rtmd's version (the value is always 1)."
    );
    let _ = writeln!(out, "# TYPE rtmd_build_info gauge");
    let _ = writeln!(
        out,
        "rtmd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(p) = read() {
        render_process(out, &p);
    }
}

/// What the process metrics show.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Process {
    resident_bytes: u64,
    cpu_seconds: f64,
    open_fds: u64,
    start_time_seconds: f64,
}

fn render_process(out: &mut String, p: &Process) {
    let samples: [(&str, &str, &str, String); 4] = [
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_bytes.to_string(),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            format!("{}", p.cpu_seconds),
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            p.open_fds.to_string(),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            format!("{}", p.start_time_seconds),
        ),
    ];
    for (name, kind, help, value) in samples {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(target_os = "linux")]
fn read() -> Option<Process> {
    // Times in /proc are in USER_HZ ticks, which the kernel fixes at 100 for user space on
    // every architecture rtmd builds for (asking `sysconf` would need unsafe code, which the
    // workspace forbids). The RSS comes from /proc/self/status, in kB, so no page size.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let (utime, stime, start_ticks) = parse_stat(&stat)?;
    let resident_bytes = parse_vm_rss(&status)?;
    let boot_time = parse_btime(&boot)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(Process {
        resident_bytes,
        cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
        // One of the counted descriptors is the directory being read.
        open_fds: open_fds.saturating_sub(1),
        start_time_seconds: boot_time as f64 + start_ticks as f64 / TICKS_PER_SECOND,
    })
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<Process> {
    None
}

/// `utime`, `stime` and `starttime` (fields 14, 15 and 22) of `/proc/self/stat`. The second
/// field (the command name) may hold spaces and parentheses, so fields are counted from the
/// last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(stat: &str) -> Option<(u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (the state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)?, field(15)?, field(22)?))
}

/// `VmRSS` of `/proc/self/status`, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kb.checked_mul(1024)?)
}

/// `btime` (boot time, Unix seconds) of `/proc/stat`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let stat = "4242 (rt md) (x)) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 10000000 2000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((250, 75, 123456)));
        assert_eq!(parse_stat("4242 (rtmd) S 1 2"), None, "too few fields");
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn parses_rss_and_boot_time() {
        let status = "Name:\trtmd\nVmHWM:\t  9000 kB\nVmRSS:\t  8192 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(8192 * 1024));
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None, "unknown unit");
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1700000000)
        );
        assert_eq!(parse_btime("cpu 1 2 3\n"), None);
    }

    #[test]
    fn renders_build_info_and_on_linux_the_process() {
        let mut out = String::new();
        render(&mut out);
        assert!(out.contains(&format!(
            "rtmd_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        let has_process = out.contains("process_resident_memory_bytes ");
        assert_eq!(has_process, cfg!(target_os = "linux"), "{out}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let before = read().expect("/proc/self is readable on Linux");
        assert!(before.resident_bytes > 1024 * 1024, "{before:?}");
        // stdin/stdout/stderr at least.
        assert!(before.open_fds >= 3, "{before:?}");
        let after = read().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            after.start_time_seconds <= now + 1.0
                && after.start_time_seconds > now - 86_400.0 * 365.0
        );
        assert!(after.cpu_seconds >= before.cpu_seconds);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in ".{0,300}") {
            let _ = parse_stat(&text);
            let _ = parse_vm_rss(&text);
            let _ = parse_btime(&text);
        }

        #[test]
        fn a_stat_line_gives_back_its_fields(
            name in "[ -~]{0,20}",
            utime in proptest::num::u64::ANY,
            stime in proptest::num::u64::ANY,
            start in proptest::num::u64::ANY,
        ) {
            let filler = |n: usize| vec!["0"; n].join(" ");
            let stat = format!(
                "1 ({name}) S {} {utime} {stime} {} {start} 10 20",
                filler(10),
                filler(6)
            );
            proptest::prop_assert_eq!(parse_stat(&stat), Some((utime, stime, start)));
        }
    }
}
