//! Several nodes in one process, sharing one store and an in-memory session registry (the
//! `testing` feature's `MemoryCluster`): what cluster mode promises, checked without a Redis
//! (`tests/cluster.rs` checks it again over a real Redis, with real processes).
//!
//! Tokens minted on one node log in on another; a kickout, a `removetoken` that kicks and a
//! login of a single-login project reach the user's sessions on every node; a node that
//! leaves is forgotten.

mod common;

use common::*;
use rtmd::store::{DeviceRecord, Fingerprint, MemoryStore, Store, StoreError, TokenKey};
use rtmd::testing::MemoryCluster;
use std::sync::Arc;
use std::time::Duration;

/// One node's handle on the store the nodes share: everything but `close`, which a node's
/// shutdown calls and which would close it for the others (each node of a real cluster has
/// its own connection to Redis).
struct NodeStore(Arc<MemoryStore>);

type StoreResult<T> = Result<T, StoreError>;

#[async_trait::async_trait]
impl Store for NodeStore {
    async fn generation(&self, pid: i32, uid: i64) -> StoreResult<u64> {
        self.0.generation(pid, uid).await
    }
    async fn bump_generation(&self, pid: i32, uid: i64) -> StoreResult<u64> {
        self.0.bump_generation(pid, uid).await
    }
    async fn add_device(
        &self,
        pid: i32,
        uid: i64,
        apptype: &str,
        device_token: &str,
        now_ms: i64,
        max_per_user: usize,
    ) -> StoreResult<()> {
        (self.0)
            .add_device(pid, uid, apptype, device_token, now_ms, max_per_user)
            .await
    }
    async fn remove_device(&self, pid: i32, uid: i64, token: &str) -> StoreResult<bool> {
        self.0.remove_device(pid, uid, token).await
    }
    async fn devices(&self, pid: i32, uid: i64) -> StoreResult<Vec<DeviceRecord>> {
        self.0.devices(pid, uid).await
    }
    async fn check_and_record_request(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> StoreResult<bool> {
        self.0.check_and_record_request(pid, fingerprint, ttl).await
    }
    async fn token_keys(&self) -> StoreResult<Vec<TokenKey>> {
        self.0.token_keys().await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.0.ping().await
    }
    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Three nodes of one cluster over one memory store, the configuration adjusted by `adjust`.
async fn three_nodes(adjust: impl Fn(&mut rtmd::config::Config)) -> [TestServer; 3] {
    let cluster = MemoryCluster::new();
    let store = Arc::new(MemoryStore::new());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let node_store = Arc::new(NodeStore(store.clone()));
        nodes.push(TestServer::start_in_cluster(&cluster, node_store, &adjust).await);
    }
    match <[TestServer; 3]>::try_from(nodes) {
        Ok(nodes) => nodes,
        Err(_) => unreachable!("three nodes were started"),
    }
}

async fn page(node: &TestServer) -> String {
    http_get(node.admin(), "/metrics").await.1
}

#[tokio::test(start_paused = true)]
async fn a_kickout_on_one_node_reaches_the_sessions_of_every_node() {
    let [a, b, c] = three_nodes(|_| {}).await;
    // Minted on a, logged in on a and b.
    let token = a.token(7).await;
    let on_a = GateClient::connect(&a.gate()).await;
    on_a.login(PID, 7, &token).await;
    let mut on_b = GateClient::connect(&b.gate()).await;
    on_b.login(PID, 7, &token).await;
    let mut bystander = b.logged_in(8).await;
    let mut on_a = on_a;

    // Kicked from c, which holds none of them.
    let kicked = within("kickout", c.sdk().kickout(7)).await.unwrap();
    assert_eq!(kicked, Some(2), "both sessions, on two other nodes");
    on_a.kicked_and_closed().await;
    on_b.kicked_and_closed().await;
    bystander.assert_alive().await;
    assert_eq!((a.sessions(), b.sessions(), c.sessions()), (0, 1, 0));

    let c_page = page(&c).await;
    assert_eq!(metric(&c_page, "rtmd_cluster_kicks_sent_total"), 2.0);
    for node in [&a, &b] {
        let page = page(node).await;
        let by_message = "rtmd_cluster_kicks_received_total{path=\"message\"}";
        assert_eq!(metric(&page, by_message), 1.0);
        assert_eq!(metric(&page, "rtmd_kicked_sessions_total"), 1.0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_kickout_with_ce_reaches_only_that_login_wherever_it_is() {
    let [a, b, _c] = three_nodes(|_| {}).await;
    let token = a.token(9).await;
    let mut first = RawConn::logged_in(&a.gate(), 9, &token).await;
    let mut second = RawConn::logged_in(&b.gate(), 9, &token).await;
    let ce = second.local_addr().to_string();
    let kicked = within("kickout", a.sdk().kickout_endpoint(9, &ce))
        .await
        .unwrap();
    assert_eq!(kicked, Some(1));
    let (frames, _) = second.until_closed().await;
    assert!(
        matches!(frames.as_slice(), [fpnn::Frame::Quest(q)] if q.method == "kickout"),
        "{frames:?}"
    );
    // The other login, on the kicking node itself, stays.
    let ping = first.quest("ping", &fpnn::Value::map()).await;
    assert_eq!(ping, Ok(fpnn::Value::map()));
}

#[tokio::test(start_paused = true)]
async fn removetoken_kicks_and_revokes_on_every_node() {
    let [a, b, c] = three_nodes(|config| {
        config.projects[0].removetoken_kicks = true;
    })
    .await;
    let token = a.token(10).await;
    let mut on_b = GateClient::connect(&b.gate()).await;
    on_b.login(PID, 10, &token).await;
    within("removetoken", c.sdk().remove_token(10))
        .await
        .unwrap();
    on_b.kicked_and_closed().await;
    // The token is revoked for every node (they share the store).
    let again = GateClient::connect(&a.gate()).await;
    again.refused(PID, 10, &token).await;
}

#[tokio::test(start_paused = true)]
async fn without_multi_login_a_login_on_one_node_kicks_the_one_on_another() {
    let [a, b, _c] = three_nodes(|config| {
        config.projects[0].multi_login = false;
    })
    .await;
    let token = a.token(11).await;
    let mut older = GateClient::connect(&a.gate()).await;
    older.login(PID, 11, &token).await;
    let mut newer = GateClient::connect(&b.gate()).await;
    newer.login(PID, 11, &token).await;
    older.kicked_and_closed().await;
    newer.assert_alive().await;
    assert_eq!((a.sessions(), b.sessions()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn closed_sessions_and_a_node_that_left_are_not_counted() {
    let [mut a, b, c] = three_nodes(|_| {}).await;
    let token = b.token(12).await;
    let gone = GateClient::connect(&b.gate()).await;
    gone.login(PID, 12, &token).await;
    gone.client.close().await;
    within("the session to go", async {
        while b.sessions() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // A node leaves the cluster (graceful shutdown) with a session still open.
    let _left_behind = a.logged_in(12).await;
    a.shutdown().await;
    let kicked = within("kickout", c.sdk().kickout(12)).await.unwrap();
    assert_eq!(
        kicked,
        Some(0),
        "neither the closed session nor the departed node's"
    );
}
