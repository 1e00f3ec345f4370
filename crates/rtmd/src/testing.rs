//! What the integration tests, the benches and the fuzz targets reach inside `rtmd` (the
//! `testing` feature): the service's clock, an in-process cluster, the login tokens, the
//! server API's signature check and error type, the request fingerprint, the gate's error
//! type and the metrics' login results.
//!
//! Not a stable interface: it follows the service's insides.

pub use crate::clock::{Clock, Now};
pub use crate::fingerprint::{Fingerprint, ReplayMode};
pub use crate::gate::GateError;
pub use crate::metrics::AuthResult;
pub use crate::registry::MemoryCluster;
pub use crate::server_api::{check_signature, ApiError, Checked};
pub use crate::token::{Claims, TokenError, Tokens};
