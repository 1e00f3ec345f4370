//! [`LocalRegistry`]: a single node, with no other node to know about.

use super::{NodeLink, Registry};
use crate::sessions::Session;
use crate::store::StoreError;
use async_trait::async_trait;

/// The registry of a node alone: its sessions are all in [`crate::sessions`], and no kick
/// comes from elsewhere.
#[derive(Debug, Default)]
pub struct LocalRegistry;

#[async_trait]
impl Registry for LocalRegistry {
    fn start(&self, _node: NodeLink) {}

    async fn register(&self, _session: &Session, _conn_id: u64) -> Result<(), StoreError> {
        Ok(())
    }

    fn deregister(&self, _session: &Session, _conn_id: u64) {}

    async fn kick_remote(
        &self,
        _pid: i32,
        _uid: i64,
        _ce: Option<&str>,
        _keep: Option<(&Session, u64)>,
    ) -> Result<usize, StoreError> {
        Ok(0)
    }

    async fn leave(&self) {}
}
