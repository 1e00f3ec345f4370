//! The async client.

use crate::error::{Error, Result};
use fpnn::client::{Client, ClientBuilder, ConnectionEvent, KeepAlive, RegressiveStrategy};
use rtm_protocol::api::{
    AddDevice, Device, GetDevices, GetToken, Kickout, RemoveDevice, RemoveToken, Request, Signer,
};
use rtm_protocol::clock::unix_secs;
use rtm_protocol::salt::next_salt;
use std::sync::Arc;
use std::time::Duration;

/// The default timeout of a call: 30 s, as in the official server SDKs.
pub const DEFAULT_QUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default connect timeout: 30 s, as in the official server SDKs.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures an [`RtmServerClient`].
pub struct RtmServerClientBuilder {
    signer: Signer,
    fpnn: ClientBuilder,
}

impl RtmServerClientBuilder {
    /// The default timeout of every call (zero keeps the current one). Default 30 s.
    pub fn quest_timeout(mut self, timeout: Duration) -> Self {
        self.fpnn = self.fpnn.quest_timeout(timeout);
        self
    }

    /// The timeout of a TCP connect. Default 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.fpnn = self.fpnn.connect_timeout(timeout);
        self
    }

    /// Reconnect in the background when the connection is lost (default on, as in the
    /// official SDKs). Either way, a call made while disconnected connects first.
    pub fn auto_reconnect(mut self, on: bool) -> Self {
        self.fpnn = self.fpnn.auto_reconnect(on);
        self
    }

    /// The delays between reconnect attempts (the official SDKs' strategy by default).
    pub fn regressive_strategy(mut self, strategy: RegressiveStrategy) -> Self {
        self.fpnn = self.fpnn.regressive_strategy(strategy);
        self
    }

    /// Keep-alive pings (off by default): with them, a server that goes silent is detected
    /// and the connection replaced before the next call needs it.
    pub fn keep_alive(mut self, keep_alive: Option<KeepAlive>) -> Self {
        self.fpnn = self.fpnn.keep_alive(keep_alive);
        self
    }

    /// Encrypts the connection as the official SDKs' `enableEncryptor` does: ECDH with the
    /// server's public key (PEM, DER or raw `X‖Y` with its curve, see
    /// [`PublicKey::decode`](crate::encryption::PublicKey::decode)), then AES-CFB in
    /// `mode` ([`Mode::Package`](crate::encryption::Mode::Package), the C++ SDK's default, or
    /// [`Mode::Stream`](crate::encryption::Mode::Stream)) with a 128- or 256-bit key.
    ///
    /// The exchange (`*key`) runs first on every connect and reconnect, with a fresh
    /// ephemeral key; the connection counts as made once the server's answer decrypts. With
    /// a wrong key, calls fail with [`Error::Connect`](crate::Error::Connect) and
    /// [`ConnectError::KeyExchange`](crate::ConnectError::KeyExchange).
    ///
    /// ```no_run
    /// use rtm_server_sdk::encryption::{Bits, Mode, PublicKey};
    /// use rtm_server_sdk::RtmServerClient;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // The public key file `rtmd keygen` (or the official eccKeyMaker) wrote.
    /// let server_key = PublicKey::from_file("server-secp256r1-public.pem", None)?;
    /// let client = RtmServerClient::builder(11000001, "project-secret", "127.0.0.1:13315")
    ///     .enable_encryptor(server_key, Mode::Package, Bits::Aes128)
    ///     .build();
    /// let token = client.get_token(42).await?;
    /// # let _ = token;
    /// # Ok(())
    /// # }
    /// ```
    pub fn enable_encryptor(
        mut self,
        server_key: crate::encryption::PublicKey,
        mode: crate::encryption::Mode,
        bits: crate::encryption::Bits,
    ) -> Self {
        let encryption = fpnn::encryption::ClientEncryption::new(server_key)
            .mode(mode)
            .bits(bits);
        self.fpnn = self.fpnn.encryption(encryption);
        self
    }

    /// Connection callbacks: connected (with `is_reconnect`), connect failed, closed (with
    /// `by_error` and `will_reconnect`).
    pub fn on_event(mut self, hook: impl Fn(&ConnectionEvent) + Send + Sync + 'static) -> Self {
        self.fpnn = self.fpnn.on_event(hook);
        self
    }

    /// Builds the async client. It connects on the first call (or [`RtmServerClient::connect`]).
    pub fn build(self) -> RtmServerClient {
        RtmServerClient {
            shared: Arc::new(Shared {
                signer: self.signer,
                client: self.fpnn.build(),
            }),
            timeout: None,
        }
    }
}

/// The RTM server client: the Token API over one FPNN connection.
///
/// Cheap to clone (clones share the connection) and safe to use from many tasks at once;
/// calls from all of them are multiplexed over the one connection.
#[derive(Clone)]
pub struct RtmServerClient {
    shared: Arc<Shared>,
    /// The per-call timeout of this handle; `None` for the client's default.
    timeout: Option<Duration>,
}

struct Shared {
    signer: Signer,
    client: Client,
}

impl std::fmt::Debug for RtmServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmServerClient")
            .field("pid", &self.shared.signer.pid())
            .field("endpoint", &self.shared.client.endpoint())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RtmServerClient {
    /// A client of project `pid` with its `secret`, for the server gate at `endpoint`
    /// (`"host:port"`), with the default options.
    pub fn new(pid: i32, secret: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self::builder(pid, secret, endpoint).build()
    }

    /// A builder for the options: timeouts, reconnection, keep-alive, callbacks.
    pub fn builder(
        pid: i32,
        secret: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> RtmServerClientBuilder {
        RtmServerClientBuilder {
            signer: Signer::new(pid, secret),
            fpnn: Client::builder(endpoint)
                .quest_timeout(DEFAULT_QUEST_TIMEOUT)
                .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
                .auto_reconnect(true),
        }
    }

    /// The project id.
    pub fn pid(&self) -> i32 {
        self.shared.signer.pid()
    }

    /// The server endpoint.
    pub fn endpoint(&self) -> &str {
        self.shared.client.endpoint()
    }

    /// A handle on the same client whose calls use `timeout` instead of the default (zero
    /// means the default): the per-call timeout.
    ///
    /// ```no_run
    /// # async fn f(client: rtm_server_sdk::RtmServerClient) -> rtm_server_sdk::Result<()> {
    /// use std::time::Duration;
    /// let token = client.with_timeout(Duration::from_secs(2)).get_token(42).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> RtmServerClient {
        RtmServerClient {
            shared: self.shared.clone(),
            timeout: (!timeout.is_zero()).then_some(timeout),
        }
    }

    /// Connects now instead of on the first call.
    pub async fn connect(&self) -> Result<()> {
        Ok(self.shared.client.connect().await?)
    }

    /// `true` while connected.
    pub fn is_connected(&self) -> bool {
        self.shared.client.is_connected()
    }

    /// Closes the connection; calls in flight fail with 20002. A later call reconnects.
    pub async fn close(&self) {
        self.shared.client.close().await;
    }

    /// A login token for user `uid`, to hand to the user's app, which passes it to the RTM
    /// gate's `auth`. Method `gettoken`; answer `{token}`.
    pub async fn get_token(&self, uid: i64) -> Result<String> {
        Ok(self.call(&GetToken { uid }).await?.token)
    }

    /// Revokes the user's login tokens; the next `auth` with them fails. Method `removetoken`.
    pub async fn remove_token(&self, uid: i64) -> Result<()> {
        self.call(&RemoveToken { uid }).await.map(drop)
    }

    /// Registers a push device token for the user. `app_type` is [`app_type::APNS`] or
    /// [`app_type::FCM`]. Method `adddevice`.
    ///
    /// [`app_type::APNS`]: crate::app_type::APNS
    /// [`app_type::FCM`]: crate::app_type::FCM
    pub async fn add_device(&self, uid: i64, app_type: &str, device_token: &str) -> Result<()> {
        let request = AddDevice {
            uid,
            apptype: app_type.to_owned(),
            devicetoken: device_token.to_owned(),
        };
        self.call(&request).await.map(drop)
    }

    /// Removes a push device token of the user. Method `removedevice`.
    pub async fn remove_device(&self, uid: i64, device_token: &str) -> Result<()> {
        let request = RemoveDevice {
            uid,
            devicetoken: device_token.to_owned(),
        };
        self.call(&request).await.map(drop)
    }

    /// Forces every login of the user offline. Method `kickout`.
    ///
    /// Returns how many sessions the kickout closed when the server says so: `rtmd` answers
    /// `{kicked}` (counting the sessions of every node of a cluster); the hosted RTM service
    /// answers `{}`, and then this is `None`. A count the server sends in another form is
    /// ignored (`None`): the kickout itself succeeded.
    pub async fn kickout(&self, uid: i64) -> Result<Option<u64>> {
        Ok(self.call(&Kickout { uid, ce: None }).await?.kicked)
    }

    /// Forces offline only the user's login at endpoint `ce` (the client's `ip:port` as the
    /// gate sees it), the form of the SDKs before API 2.7.0. Method `kickout` with `ce`.
    ///
    /// An empty `ce` means every login of the user, as in the official SDKs (servers treat
    /// `""` like no `ce`). Returns the number of sessions closed, as [`kickout`](Self::kickout).
    pub async fn kickout_endpoint(&self, uid: i64, ce: &str) -> Result<Option<u64>> {
        let request = Kickout {
            uid,
            ce: Some(ce.to_owned()),
        };
        Ok(self.call(&request).await?.kicked)
    }

    /// The user's registered devices, oldest first. Method `getdevices`: an extension of
    /// `rtmd`, not part of the hosted RTM service (which answers 20004).
    pub async fn get_devices(&self, uid: i64) -> Result<Vec<Device>> {
        Ok(self.call(&GetDevices { uid }).await?.devices)
    }

    /// Sends a request signed now with a fresh salt (`{pid, sign, salt, ts, …}` in the
    /// official SDKs' order) and reads its answer.
    async fn call<R: Request>(&self, request: &R) -> Result<R::Answer> {
        let method = R::METHOD.name();
        let params = self
            .shared
            .signer
            .payload(request, next_salt(), unix_secs())
            .map_err(|e| Error::Protocol {
                code: fpnn::code::CORE_ENCODING,
                message: format!("cannot encode {method}: {e}"),
            })?;
        let answer = self
            .shared
            .client
            .quest_with_timeout(method, &params, self.timeout)
            .await?;
        fpnn::from_value(&answer).map_err(|e| Error::Protocol {
            code: e.code(),
            message: format!("unexpected {method} answer: {e}: {answer}"),
        })
    }
}
