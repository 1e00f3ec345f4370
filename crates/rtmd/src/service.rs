//! Starting and stopping the whole service.

use crate::admin::Admin;
use crate::cluster::Cluster;
use crate::config::{Config, StoreKind, TlsFiles};
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::state::State;
use crate::store::{EmbeddedOptions, EmbeddedStore, RedisStore, Store, StoreError};
use crate::token::Tokens;
use crate::{gate, server_api};
use fpnn::server::{Server, ServerBuilder, ServerConfig};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
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
    /// A listener's TLS certificate or key could not be loaded.
    #[error("TLS of the {what} listener: {source}")]
    Tls {
        /// Which listener.
        what: &'static str,
        /// Why (names the file at fault).
        source: fpnn::web::tls::TlsError,
    },
}

/// The running service.
pub struct Rtmd {
    state: Arc<State>,
    server_api: Server,
    gate: Server,
    admin: Option<Admin>,
    health: JoinHandle<()>,
}

/// A server builder with the listener's web and TLS settings.
fn web_and_tls(
    builder: ServerBuilder,
    what: &'static str,
    web: bool,
    tls: Option<&TlsFiles>,
) -> Result<ServerBuilder, StartError> {
    let builder = builder.web(web);
    match tls {
        None => Ok(builder),
        Some(files) => {
            let config = fpnn::web::tls::server_config(&files.cert, &files.key)
                .map_err(|source| StartError::Tls { what, source })?;
            Ok(builder.tls(config))
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

impl Rtmd {
    /// Opens the store and starts the server API, the gate and the admin port.
    ///
    /// With a Redis store the node joins the cluster of the nodes sharing that Redis
    /// ([`crate::cluster`]).
    pub async fn start(config: Config) -> Result<Rtmd, StartError> {
        match config.store_kind() {
            StoreKind::Embedded => {
                let store = open_store(&config).await?;
                Rtmd::start_with_store(config, store).await
            }
            StoreKind::Redis(url) => {
                let store = Arc::new(RedisStore::connect(&url, &config.redis).await?);
                let cluster = Cluster::connect(&url, store.clone(), &config.redis).await?;
                tracing::info!(
                    node = cluster.node_id(),
                    redis = store.url(),
                    "joined the cluster"
                );
                Rtmd::start_inner(config, store, Some(cluster)).await
            }
        }
    }

    /// Starts the service over a store opened by the caller (tests use a memory store), on
    /// a single node.
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Rtmd, StartError> {
        Rtmd::start_inner(config, store, None).await
    }

    async fn start_inner(
        config: Config,
        store: Arc<dyn Store>,
        cluster: Option<Cluster>,
    ) -> Result<Rtmd, StartError> {
        let keys = store.token_keys().await?;
        let tokens = Tokens::new(keys)
            .ok_or_else(|| StoreError::Corrupt("the token key ring is empty".into()))?;
        let projects = config.projects.iter().map(|p| (p.pid, p.clone())).collect();
        let state = Arc::new(State {
            projects,
            store,
            tokens,
            sessions: Sessions::new(),
            metrics: Arc::new(Metrics::new()),
            cluster,
            config,
        });
        if let Some(cluster) = &state.cluster {
            cluster.start(Arc::downgrade(&state));
        }
        let limits = &state.config.limits;
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

        let listen_config = &state.config.listen;
        let server_api_builder = web_and_tls(
            Server::builder(),
            "server_api",
            listen_config.web,
            listen_config.server_api_tls.as_ref(),
        )?;
        let gate_builder = web_and_tls(
            Server::builder(),
            "gate",
            listen_config.web,
            listen_config.gate_tls.as_ref(),
        )?;
        let listener = listen("server_api", &state.config.listen.server_api).await?;
        let (up, down) = (state.clone(), state.clone());
        let builder = server_api_builder
            .config(server_config.clone())
            .on_connect(move |_| {
                up.metrics
                    .server_api_connections
                    .fetch_add(1, Ordering::Relaxed);
            })
            .on_close(move |_, _| {
                down.metrics
                    .server_api_connections
                    .fetch_sub(1, Ordering::Relaxed);
            });
        let server_api = server_api::routes(builder, state.clone())
            .serve(listener)
            .map_err(|source| StartError::Listen {
                what: "server_api",
                addr: state.config.listen.server_api.clone(),
                source,
            })?;

        let listener = listen("gate", &state.config.listen.gate).await?;
        let gate = gate::routes(gate_builder.config(server_config), state.clone())
            .serve(listener)
            .map_err(|source| StartError::Listen {
                what: "gate",
                addr: state.config.listen.gate.clone(),
                source,
            })?;

        let admin = match state.config.listen.admin.as_str() {
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
        let health = tokio::spawn(health_loop(state.clone()));
        Ok(Rtmd {
            state,
            server_api,
            gate,
            admin,
            health,
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

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Graceful shutdown: stop accepting, answer the calls in flight, close every
    /// connection, then flush and close the store.
    pub async fn shutdown(self) {
        self.health.abort();
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
        if let Some(cluster) = &self.state.cluster {
            cluster.leave(&self.state).await;
        }
        tokio::join!(self.server_api.shutdown(), self.gate.shutdown());
        if let Err(e) = self.state.store.close().await {
            tracing::warn!(error = %e, "closing the store failed");
        }
    }
}

/// Checks the store every few seconds, for `rtmd_store_up`.
async fn health_loop(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let ok = state.store_call(state.store.ping()).await.is_ok();
        state.metrics.set_store_up(ok);
    }
}
