//! `kickout`: M users logged in to the gate, one connection each; the server API kicks them
//! one by one at a fixed rate. The latency of a kickout runs from the moment its quest is
//! written to the server API to the moment the kicked client reads the `kickout` push, the
//! end of the whole path: server API, session lookup, the push, the client's read. The
//! client then closes the connection, as the official clients do (the gate would close it
//! itself only after `limits.kickout_grace`).

use crate::gate_client::{self, Ending};
use crate::hist::Histogram;
use crate::report::{Latency, Run};
use crate::scenario::CpuMark;
use crate::target::Target;
use crate::wire::{Method, Signer};
use bytes::BytesMut;
use fpnn::{Frame, FrameDecoder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How many kickouts, how fast.
#[derive(Debug, Clone)]
pub struct Options {
    /// Users logged in and then kicked.
    pub users: usize,
    /// Kickouts a second.
    pub rate: f64,
}

/// Runs the scenario; `tokens` are for users `1..=users`.
pub fn run(target: &Target, tokens: &[(i64, String)], opts: &Options) -> Result<Run, String> {
    let users = opts.users.min(tokens.len());
    if users == 0 {
        return Err("no users to kick".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let (gate, pid) = (target.gate, target.pid);
    let signer = Signer::new(target.pid, &target.secret);
    let server_api = target.server_api;
    let tokens = tokens[..users].to_vec();
    let rate = opts.rate.max(1.0);
    let mut cpu = None;
    let result = runtime.block_on(async {
        // Log everyone in, 200 at a time.
        eprintln!("  [kickout] logging in {users} users");
        let mut sessions = Vec::with_capacity(users);
        for chunk in tokens.chunks(200) {
            let logins: Vec<_> = chunk
                .iter()
                .map(|(uid, token)| {
                    let (uid, token) = (*uid, token.clone());
                    async move { gate_client::login(gate, pid, uid, &token).await }
                })
                .collect();
            for login in futures_join(logins).await {
                sessions.push(login.map_err(|e| format!("login: {e}"))?);
            }
        }
        let holders: Vec<_> = sessions
            .into_iter()
            .map(|s| tokio::spawn(s.hold()))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;

        // The driver: one server API connection, kickouts at a fixed rate.
        let stream = TcpStream::connect(server_api)
            .await
            .map_err(|e| format!("connect to {server_api}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let base = Instant::now();
        let sent_at: Arc<Vec<AtomicU64>> =
            Arc::new((0..users).map(|_| AtomicU64::new(0)).collect());
        let answered = {
            let sent_at = sent_at.clone();
            tokio::spawn(async move {
                let mut calls = Histogram::new();
                let mut errors = 0u64;
                let mut buf = BytesMut::with_capacity(16 * 1024);
                let mut decoder = FrameDecoder::default();
                let mut got = 0;
                while got < users {
                    match rd.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let now = base.elapsed().as_nanos() as u64;
                    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                        if let Frame::Answer(a) = frame {
                            got += 1;
                            if a.is_error() {
                                errors += 1;
                            }
                            if let Some(t0) = sent_at.get((a.seq - 1) as usize) {
                                calls.record_ns(now.saturating_sub(t0.load(Ordering::Relaxed)));
                            }
                        }
                    }
                }
                (calls, errors)
            })
        };
        eprintln!("  [kickout] kicking {users} users at {rate:.0}/s");
        let mark = CpuMark::now(target);
        let mut buf = BytesMut::with_capacity(512);
        for i in 0..users {
            let due = base + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let uid = tokens[i].0;
            signer.append(&mut buf, Method::Kickout, (i + 1) as u32, uid, 0);
            sent_at[i].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            wr.write_all(&buf)
                .await
                .map_err(|e| format!("kickout write: {e}"))?;
            buf.clear();
            if (i + 1) % 1000 == 0 {
                eprintln!("  [kickout] {} kicked", i + 1);
            }
        }
        let mut endings: Vec<Ending> = Vec::with_capacity(users);
        for h in holders {
            let ending = tokio::time::timeout(Duration::from_secs(10), h).await;
            endings.push(match ending {
                Ok(Ok(e)) => e,
                _ => Ending::default(),
            });
        }
        let (calls, call_errors) = tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        cpu = Some(mark.since(target));
        let mut pushed = Histogram::new();
        let (mut missing, mut closed_unpushed) = (0u64, 0u64);
        for (i, e) in endings.iter().enumerate() {
            let t0 = base + Duration::from_nanos(sent_at[i].load(Ordering::Relaxed));
            match (e.kickout, e.closed) {
                (Some(t), _) => pushed.record(t.saturating_duration_since(t0)),
                (None, Some(_)) => closed_unpushed += 1,
                (None, None) => missing += 1,
            }
        }
        Ok::<_, String>((pushed, calls, call_errors, missing, closed_unpushed))
    });
    let (pushed, calls, call_errors, missing, closed_unpushed) = result?;
    let seconds = users as f64 / rate;
    let mut run = Run {
        scenario: "kickout".into(),
        label: format!("kickout {users} users at {rate:.0}/s"),
        target: target.name.clone(),
        client: "raw".into(),
        schedule: "open".into(),
        connections: users,
        depth: 1,
        target_rate: Some(rate),
        seconds,
        ops: pushed.count(),
        rate: pushed.count() as f64 / seconds,
        latency: Latency::of(&pushed),
        ..Run::default()
    };
    run.by_method
        .insert("kickout call answered".into(), Latency::of(&calls));
    if missing > 0 {
        run.errors
            .insert("no kickout push within 10 s".into(), missing);
    }
    if closed_unpushed > 0 {
        run.errors
            .insert("closed without a kickout push".into(), closed_unpushed);
    }
    if call_errors > 0 {
        run.errors
            .insert("kickout error answers".into(), call_errors);
    }
    run.notes.push(
        "latency = kickout quest written to the server API → the kicked client reads the kickout push (it then closes the connection, as official clients do)"
            .into(),
    );
    if let Some((server, load, wall)) = cpu {
        run.set_cpu(server, load, wall);
    }
    Ok(run)
}

/// Awaits every future, in order (they run concurrently once spawned).
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}
