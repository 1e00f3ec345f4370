//! Starting and stopping the whole service.

use crate::admin::Admin;
use crate::clock::Clock;
use crate::config::{Config, StoreKind};
use crate::registry::{LocalRegistry, RedisRegistry, Registry};
use crate::state::State;
use crate::store::{EmbeddedOptions, EmbeddedStore, RedisStore, Store, StoreError};
use crate::token::Tokens;
use crate::{gate, server_api};
use fpnn::server::{Server, ServerBuilder, ServerConfig, ServerEncryption};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A port could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A port's encryption key could not be loaded.
    #[error(transparent)]
    Encryption(#[from] crate::config::ConfigError),
}

/// Encrypts `builder`'s port when the configuration says so, and counts its encrypted
/// connections in the metrics.
fn with_encryption(
    builder: ServerBuilder,
    encryption: Option<ServerEncryption>,
    port: &'static str,
    state: &Arc<State>,
) -> ServerBuilder {
    let Some(encryption) = encryption else {
        return builder;
    };
    tracing::info!(
        port,
        curve = %encryption.key().curve(),
        policy = %encryption.get_policy(),
        "encryption on"
    );
    let state = state.clone();
    builder.encryption(encryption).on_key_exchange(move |conn| {
        state.metrics().encrypted_opened(port);
        let (conn, state) = (conn.clone(), state.clone());
        tokio::spawn(async move {
            conn.closed().await;
            state.metrics().encrypted_closed(port);
        });
    })
}

/// The running service.
pub struct Rtmd {
    state: Arc<State>,
    server_api: Server,
    gate: Server,
    admin: Option<Admin>,
    tasks: Tasks,
}

/// The service's own background tasks (store health and upkeep, the kicks from other
/// nodes), stopped when the service stops or is dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn listen(what: &'static str, addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            what,
            addr: addr.to_owned(),
            source,
        })
}

/// Opens the store the configuration selects.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match config.store_kind() {
        StoreKind::Embedded => {
            let dir = config.data_dir.clone();
            let options = EmbeddedOptions {
                replay_capacity: config.limits.replay_capacity,
                ..EmbeddedOptions::default()
            };
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open_with(dir, options))
                .await
                .map_err(|e| StoreError::Unavailable(format!("store open task failed: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreKind::Redis(url) => Ok(Arc::new(RedisStore::connect(&url, &config.redis).await?)),
    }
}

/// Configures how [`Rtmd`] starts: [`Rtmd::builder`].
pub struct RtmdBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    clock: Clock,
    #[cfg(feature = "testing")]
    cluster: Option<crate::registry::MemoryCluster>,
}

impl RtmdBuilder {
    /// Serves over a store opened by the caller (tests use a memory store), on a single
    /// node, instead of the store the configuration selects.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Reads the time from `clock` (a test's paused tokio clock) instead of the wall clock.
    #[cfg(feature = "testing")]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Joins an in-process cluster of nodes (which should share one store): kickouts on any
    /// of them reach the sessions of all.
    #[cfg(feature = "testing")]
    pub fn cluster(mut self, cluster: &crate::registry::MemoryCluster) -> Self {
        self.cluster = Some(cluster.clone());
        self
    }

    /// Opens the store (unless one was given) and starts the server API, the gate and the
    /// admin port. With a Redis store the node joins the cluster of the nodes sharing that
    /// Redis ([`crate::registry::RedisRegistry`]).
    pub async fn start(self) -> Result<Rtmd, StartError> {
        let (store, registry) = self.store_and_registry().await?;
        Rtmd::start_inner(self.config, store, registry, self.clock).await
    }

    async fn store_and_registry(&self) -> Result<(Arc<dyn Store>, Box<dyn Registry>), StartError> {
        #[cfg(feature = "testing")]
        if let (Some(cluster), Some(store)) = (&self.cluster, &self.store) {
            return Ok((store.clone(), Box::new(cluster.node())));
        }
        if let Some(store) = &self.store {
            return Ok((store.clone(), Box::new(LocalRegistry)));
        }
        match self.config.store_kind() {
            StoreKind::Embedded => Ok((open_store(&self.config).await?, Box::new(LocalRegistry))),
            StoreKind::Redis(url) => {
                let store = RedisStore::connect(&url, &self.config.redis).await?;
                let registry = RedisRegistry::connect(&url, &store, &self.config.redis).await?;
                tracing::info!(
                    node = registry.node_id(),
                    redis = store.url(),
                    "joined the cluster"
                );
                Ok((Arc::new(store), Box::new(registry)))
            }
        }
    }
}

impl Rtmd {
    /// Opens the store and starts the server API, the gate and the admin port.
    ///
    /// With a Redis store the node joins the cluster of the nodes sharing that Redis.
    pub async fn start(config: Config) -> Result<Rtmd, StartError> {
        Rtmd::builder(config).start().await
    }

    /// Starts the service over a store opened by the caller (tests use a memory store), on
    /// a single node.
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Rtmd, StartError> {
        Rtmd::builder(config).store(store).start().await
    }

    /// A builder, for a store opened by the caller and, with the `testing` feature, a
    /// paused clock or an in-process cluster.
    pub fn builder(config: Config) -> RtmdBuilder {
        RtmdBuilder {
            config,
            store: None,
            clock: Clock::system(),
            #[cfg(feature = "testing")]
            cluster: None,
        }
    }

    async fn start_inner(
        config: Config,
        store: Arc<dyn Store>,
        registry: Box<dyn Registry>,
        clock: Clock,
    ) -> Result<Rtmd, StartError> {
        let keys = store.token_keys().await?;
        let tokens = Tokens::new(keys)
            .ok_or_else(|| StoreError::Corrupt("the token key ring is empty".into()))?;
        let limits = &config.limits;
        let server_config = ServerConfig {
            max_connections: limits.max_connections,
            idle_timeout: Some(limits.idle_timeout),
            max_frame: limits.max_frame,
            push_timeout: limits.client_ping_interval,
            shutdown_grace: limits.shutdown_grace,
            read_buffer: limits.read_buffer,
            frame_memory: limits.frame_memory,
            outbound_budget: limits.outbound_budget,
            outbound_high_water: limits.outbound_high_water,
            max_in_flight: limits.max_in_flight,
            max_in_flight_total: limits.max_in_flight_total,
            write_stall_timeout: Some(limits.write_stall_timeout),
        };
        let listen_at = config.listen.clone();
        let (server_api_encryption, gate_encryption) = config.encryption.load()?;
        let (state, kicks) = State::new(config, store, tokens, registry, clock);
        let state = Arc::new(state);

        let listener = listen("server_api", &listen_at.server_api).await?;
        let builder = with_encryption(
            Server::builder().config(server_config.clone()),
            server_api_encryption,
            "server_api",
            &state,
        );
        let server_api = server_api::routes(builder, &state)
            .serve(listener)
            .map_err(|source| StartError::Listen {
                what: "server_api",
                addr: listen_at.server_api.clone(),
                source,
            })?;

        let listener = listen("gate", &listen_at.gate).await?;
        let builder = with_encryption(
            Server::builder().config(server_config),
            gate_encryption,
            "gate",
            &state,
        );
        let gate = gate::routes(builder, &state)
            .serve(listener)
            .map_err(|source| StartError::Listen {
                what: "gate",
                addr: listen_at.gate.clone(),
                source,
            })?;

        let admin = match listen_at.admin.as_str() {
            "" => None,
            addr => {
                let listener = listen("admin", addr).await?;
                Some(Admin::start(listener, state.clone()).map_err(|source| {
                    StartError::Listen {
                        what: "admin",
                        addr: addr.to_owned(),
                        source,
                    }
                })?)
            }
        };
        let tasks = Tasks(vec![
            tokio::spawn(health_loop(state.clone())),
            gate::drain_kicks(state.clone(), kicks),
        ]);
        Ok(Rtmd {
            state,
            server_api,
            gate,
            admin,
            tasks,
        })
    }

    /// The server API address.
    pub fn server_api_addr(&self) -> SocketAddr {
        self.server_api.local_addr()
    }

    /// The gate address.
    pub fn gate_addr(&self) -> SocketAddr {
        self.gate.local_addr()
    }

    /// The admin address, when the admin port is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::local_addr)
    }

    /// The logged-in client sessions of this node.
    pub fn sessions(&self) -> usize {
        self.state.session_count()
    }

    /// The logged-in sessions of one user on this node.
    #[cfg(feature = "testing")]
    pub fn sessions_of(&self, pid: i32, uid: i64) -> usize {
        self.state.sessions_of(pid, uid)
    }

    /// The token service, keyed with the store's ring (tests mint tokens at chosen times).
    #[cfg(feature = "testing")]
    pub fn tokens(&self) -> &Tokens {
        self.state.tokens()
    }

    /// The time on the service's clock.
    #[cfg(feature = "testing")]
    pub fn now(&self) -> crate::clock::Now {
        self.state.now()
    }

    /// Graceful shutdown: stop accepting, answer the calls in flight, close every
    /// connection, then flush and close the store.
    pub async fn shutdown(self) {
        drop(self.tasks);
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
        self.state.leave_cluster().await;
        tokio::join!(self.server_api.shutdown(), self.gate.shutdown());
        if let Err(e) = self.state.close_store().await {
            tracing::warn!(error = %e, "closing the store failed");
        }
    }
}

/// Checks the store every few seconds, for `rtmd_store_up`, and runs its upkeep.
async fn health_loop(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        state.maintain_store().await;
    }
}
