//! The client's reconnect behaviour on simulated time: a server reached through in-memory
//! pipes that can go down and come back, and tokio's paused clock.

use super::*;
use crate::driver::{drive, Handled, Link, QuestHandler};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;

/// Answers every quest with its params.
struct Echo;

impl QuestHandler for Echo {
    fn quest(&mut self, _link: &Arc<Link>, quest: Quest) -> Handled {
        Handled::Inline(
            quest
                .params()
                .map_err(|e| ErrorAnswer::new(code::CORE_DECODING, e.to_string())),
        )
    }
}

/// A server behind in-memory pipes, up or down, recording every connect attempt.
#[derive(Clone, Default)]
struct FakeServer {
    /// The server side's connection settings (an idle timeout, say).
    config: proto::Config,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// When each attempt was made, and whether the server was up.
    attempts: Arc<Mutex<Vec<(Instant, bool)>>>,
}

impl FakeServer {
    fn connector(&self) -> Connector {
        let server = self.clone();
        Arc::new(move |_endpoint| {
            let server = server.clone();
            Box::pin(async move {
                let up = server.up.load(Ordering::SeqCst);
                server.attempts.lock().unwrap().push((Instant::now(), up));
                if !up {
                    return Err(std::io::ErrorKind::ConnectionRefused.into());
                }
                let (client_end, server_end) = tokio::io::duplex(64 * 1024);
                let addr: SocketAddr = ([127, 0, 0, 1], 13315).into();
                let state = proto::Connection::new(server.config.clone(), driver::now());
                let link = Link::new(state, addr);
                let task = tokio::spawn(async move {
                    drive(server_end, link, Echo).await;
                });
                server.connections.lock().unwrap().push(task);
                Ok((Box::new(client_end) as Box<dyn Stream>, addr))
            })
        })
    }

    /// The server process dies: its connections end (the client reads an end of stream)
    /// and connects are refused.
    fn crash(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Attempts made after `since`, as seconds since then.
    fn attempts_since(&self, since: Instant) -> Vec<(f64, bool)> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(at, up)| ((*at - since).as_secs_f64(), *up))
            .collect()
    }
}

fn client_of(server: &FakeServer, events: Arc<Mutex<Vec<ConnectionEvent>>>) -> Client {
    server.up.store(true, Ordering::SeqCst);
    Client::builder("fake:13315")
        .auto_reconnect(true)
        .quest_timeout(Duration::from_secs(5))
        .connector(server.connector())
        .on_event(move |e| events.lock().unwrap().push(e.clone()))
        .build()
}

#[tokio::test(start_paused = true)]
async fn automatic_reconnects_follow_the_official_schedule() {
    let server = FakeServer::default();
    let client = client_of(&server, Arc::default());
    client.quest("echo", &Value::map()).await.unwrap();
    // Up for a minute, then the server goes away for good.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let down = Instant::now();
    server.crash();
    tokio::time::sleep(Duration::from_secs(200)).await;
    let at: Vec<f64> = server
        .attempts_since(down)
        .iter()
        .map(|(t, _)| (t * 10.0).round() / 10.0)
        .collect();
    // Five at once, then 2 s, then + 23.6 s a step: 2, 27.6, 76.8, 149.6 (s since the loss).
    assert_eq!(at, [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 27.6, 76.8, 149.6]);
}

#[tokio::test(start_paused = true)]
async fn a_quest_while_disconnected_connects_at_once_whatever_the_schedule() {
    let server = FakeServer::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let client = client_of(&server, events.clone());
    client.quest("echo", &Value::map()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let down = Instant::now();
    server.crash();
    // While the server is down, a quest tries (once) and fails with 20012 at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let err = client.quest("echo", &Value::map()).await.unwrap_err();
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION, "{err}");
    // The server is back at 10 s; the next automatic attempt is not due until 27.6 s, but
    // a quest connects now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    server.up.store(true, Ordering::SeqCst);
    let back = Instant::now();
    let answer = client.quest("echo", &Value::map().with("i", 1)).await;
    assert_eq!(answer.unwrap(), Value::map().with("i", 1));
    assert_eq!(Instant::now(), back, "no wait on simulated time");
    let connected: Vec<bool> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Connected { is_reconnect, .. } => Some(*is_reconnect),
            _ => None,
        })
        .collect();
    assert_eq!(
        connected,
        [false, false],
        "the quest connected, not the schedule"
    );
    // The background loop finds the client connected at 27.6 s and stops: no attempt after
    // the quest's.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let attempts = server.attempts_since(down);
    assert_eq!(attempts.last().map(|(_, up)| *up), Some(true));
    assert_eq!(attempts.iter().filter(|(_, up)| *up).count(), 1);
    assert!(client.is_connected());
}

#[tokio::test(start_paused = true)]
async fn close_makes_no_background_reconnect_and_a_later_quest_connects() {
    let server = FakeServer::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let client = client_of(&server, events.clone());
    client.quest("echo", &Value::map()).await.unwrap();
    let attempts = || server.attempts.lock().unwrap().len();
    assert_eq!(attempts(), 1);
    client.close().await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(attempts(), 1, "no reconnect after close");
    assert!(!client.is_connected());
    client.quest("echo", &Value::map()).await.unwrap();
    assert_eq!(attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_keeps_a_connection_open_past_the_server_idle_timeout() {
    let server = FakeServer {
        config: proto::Config {
            idle_timeout: Some(Duration::from_millis(500)),
            ..proto::Config::default()
        },
        ..FakeServer::default()
    };
    let pinging_events = Arc::new(Mutex::new(Vec::new()));
    server.up.store(true, Ordering::SeqCst);
    let pinging = Client::builder("fake:13315")
        .keep_alive(Some(KeepAlive {
            interval: Duration::from_millis(50),
            max_retries: 5,
            ping_timeout: Some(Duration::from_millis(100)),
        }))
        .connector(server.connector())
        .on_event({
            let events = pinging_events.clone();
            move |e| events.lock().unwrap().push(e.clone())
        })
        .build();
    let silent_events = Arc::new(Mutex::new(Vec::new()));
    let silent = client_of(&server, silent_events.clone());
    pinging.connect().await.unwrap();
    silent.connect().await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    // The silent client was closed by the server's idle timeout (20002)...
    let closed: Vec<i32> = silent_events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Closed { reason, .. } => Some(reason.code()),
            _ => None,
        })
        .collect();
    assert_eq!(closed.first(), Some(&code::CORE_CONNECTION_CLOSED));
    // ...while the pinging one stayed up through 120 idle timeouts.
    assert!(pinging.is_connected());
    assert_eq!(
        pinging_events.lock().unwrap().len(),
        1,
        "connected once, never closed"
    );
    pinging.quest("echo", &Value::map()).await.unwrap();
}
