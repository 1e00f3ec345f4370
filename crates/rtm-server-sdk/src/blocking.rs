//! The blocking client, for code that is not async (like `reqwest::blocking`).
//!
//! It runs the async client on a small runtime of its own (one worker thread) and waits for
//! each call. It is cheap to clone and safe to share between threads; calls from several
//! threads are multiplexed over the one connection. Do not use it from inside an async
//! runtime: there, calls return [`Error::Runtime`] instead of blocking the runtime.

use crate::client::RtmServerClientBuilder;
use crate::error::{Error, Result};
use crate::Device;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The blocking RTM server client. See [`crate::RtmServerClient`] for each call.
///
/// ```no_run
/// let client = rtm_server_sdk::blocking::RtmServerClient::new(11000001, "secret", "127.0.0.1:13315")?;
/// let token = client.get_token(42)?;
/// client.kickout(42)?;
/// # Ok::<(), rtm_server_sdk::Error>(())
/// ```
#[derive(Clone)]
pub struct RtmServerClient {
    client: crate::RtmServerClient,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for RtmServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("blocking::RtmServerClient")
            .field(&self.client)
            .finish()
    }
}

impl RtmServerClientBuilder {
    /// Builds the blocking client, which runs its own small runtime.
    pub fn build_blocking(self) -> Result<RtmServerClient> {
        RtmServerClient::from_async(self.build())
    }
}

/// Owns the runtime, and shuts it down without blocking when dropped on an async thread.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl RtmServerClient {
    /// A blocking client with the default options; see [`crate::RtmServerClient::new`].
    pub fn new(pid: i32, secret: impl Into<String>, endpoint: impl Into<String>) -> Result<Self> {
        Self::builder(pid, secret, endpoint).build_blocking()
    }

    /// A builder; finish it with [`RtmServerClientBuilder::build_blocking`].
    pub fn builder(
        pid: i32,
        secret: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> RtmServerClientBuilder {
        crate::RtmServerClient::builder(pid, secret, endpoint)
    }

    fn from_async(client: crate::RtmServerClient) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rtm-server-sdk")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(format!("cannot start the client's runtime: {e}")))?;
        Ok(RtmServerClient {
            client,
            runtime: Arc::new(Runtime(Some(runtime))),
        })
    }

    fn wait<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Runtime(
                "the blocking client was called from inside an async runtime; use the async RtmServerClient there".into(),
            ));
        }
        match &self.runtime.0 {
            Some(runtime) => runtime.block_on(call),
            None => Err(Error::Runtime("the client's runtime has stopped".into())),
        }
    }

    /// The async client underneath (sharing the connection).
    pub fn as_async(&self) -> &crate::RtmServerClient {
        &self.client
    }

    /// The project id.
    pub fn pid(&self) -> i32 {
        self.client.pid()
    }

    /// A handle whose calls use `timeout` (zero: the default); the per-call timeout.
    pub fn with_timeout(&self, timeout: Duration) -> RtmServerClient {
        RtmServerClient {
            client: self.client.with_timeout(timeout),
            runtime: self.runtime.clone(),
        }
    }

    /// Connects now instead of on the first call.
    pub fn connect(&self) -> Result<()> {
        self.wait(self.client.connect())
    }

    /// `true` while connected.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Closes the connection.
    pub fn close(&self) -> Result<()> {
        self.wait(async {
            self.client.close().await;
            Ok(())
        })
    }

    /// See [`crate::RtmServerClient::get_token`].
    pub fn get_token(&self, uid: i64) -> Result<String> {
        self.wait(self.client.get_token(uid))
    }

    /// See [`crate::RtmServerClient::remove_token`].
    pub fn remove_token(&self, uid: i64) -> Result<()> {
        self.wait(self.client.remove_token(uid))
    }

    /// See [`crate::RtmServerClient::add_device`].
    pub fn add_device(&self, uid: i64, app_type: &str, device_token: &str) -> Result<()> {
        self.wait(self.client.add_device(uid, app_type, device_token))
    }

    /// See [`crate::RtmServerClient::remove_device`].
    pub fn remove_device(&self, uid: i64, device_token: &str) -> Result<()> {
        self.wait(self.client.remove_device(uid, device_token))
    }

    /// See [`crate::RtmServerClient::kickout`].
    pub fn kickout(&self, uid: i64) -> Result<Option<u64>> {
        self.wait(self.client.kickout(uid))
    }

    /// See [`crate::RtmServerClient::kickout_endpoint`].
    pub fn kickout_endpoint(&self, uid: i64, ce: &str) -> Result<Option<u64>> {
        self.wait(self.client.kickout_endpoint(uid, ce))
    }

    /// See [`crate::RtmServerClient::get_devices`].
    pub fn get_devices(&self, uid: i64) -> Result<Vec<Device>> {
        self.wait(self.client.get_devices(uid))
    }
}
