//! TLS under FPNN, HTTP and WebSocket alike (`rustls` with the `ring` provider).
//!
//! A listener with TLS loads its certificate chain and private key from PEM files
//! ([`server_config`]); a client that must trust a private CA (tests, `rtm --tls-ca`) loads
//! it with [`client_config`]. The async side is [`tokio_rustls`]: wrap an accepted socket
//! with `TlsAcceptor::from(config).accept(socket)`, or a connected one with
//! `TlsConnector::from(config).connect(name, socket)`. Inside TLS the bytes are exactly
//! those of a plain connection: run the first-bytes detection on the decrypted stream.
//!
//! No ALPN is offered, so browsers speak HTTP/1.1 (and WebSocket) over it, never HTTP/2.

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The rustls and tokio-rustls versions these configurations are made for.
pub use {rustls, tokio_rustls};

/// Why a TLS configuration could not be made. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no `CERTIFICATE` section.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[error("{} holds no PEM private key (-----BEGIN PRIVATE KEY----- or an RSA/EC key)", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid PEM.
    #[error("{} is not valid PEM: {detail}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the certificate, the key, or the pair (a key that does not match the
    /// certificate, an unsupported key type, ...).
    #[error("TLS configuration from {} refused: {source}", path.display())]
    Rejected {
        /// The file at fault (the key file when the pair does not match).
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => TlsError::BadPem {
            path: path.to_owned(),
            detail: other.to_string(),
        },
    })
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key.
pub fn server_config(cert_chain: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_from_pem(&read(cert_chain)?, cert_chain, &read(key)?, key)
}

/// [`server_config`] from PEM text already read; the paths only name the sources in errors.
pub fn server_config_from_pem(
    cert_chain_pem: &[u8],
    cert_chain: &Path,
    key_pem: &[u8],
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certificates(cert_chain_pem, cert_chain)?;
    let private = private_key(key_pem, key)?;
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rejected {
            path: cert_chain.to_owned(),
            source,
        })?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|source| TlsError::Rejected {
            path: key.to_owned(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts the CA certificates in the PEM file `ca` (and only
/// them).
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_from_pem(&read(ca)?, ca)
}

/// [`client_config`] from PEM text already read; the path only names the source in errors.
pub fn client_config_from_pem(ca_pem: &[u8], ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, ca)? {
        roots.add(cert).map_err(|source| TlsError::Rejected {
            path: ca.to_owned(),
            source,
        })?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rejected {
            path: ca.to_owned(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
