//! The key files of the official `eccKeyMaker` tool, for a `keygen` command.
//!
//! `eccKeyMaker <curve> <name>` writes five files; [`write_key_files`] writes the same:
//!
//! | file | content | who reads it |
//! |---|---|---|
//! | `<name>-private.key` | the raw scalar, 24/28/32 bytes (mode 0600 here) | the server (`privateKey`) |
//! | `<name>-public.key` | raw `X ‖ Y`, 48/56/64 bytes | clients, with the curve's name |
//! | `<name>-compressed-public.key` | `0x02`/`0x03` ‖ X | nobody in FPNN; written for completeness |
//! | `<name>-public.der` | DER SubjectPublicKeyInfo | clients |
//! | `<name>-public.pem` | the same in PEM | clients |
//!
//! The PEM differs from `eccKeyMaker`'s in one way: its base64 lines are 64 columns wide
//! (RFC 7468), where `eccKeyMaker` writes 76. Every reader of the official SDKs ignores the
//! line width, and [`PublicKey::from_pem`](super::PublicKey::from_pem) reads both.

use super::keys::{KeyError, PrivateKey};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The paths of the files [`write_key_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// `<name>-private.key`: the raw private scalar.
    pub private_key: PathBuf,
    /// `<name>-public.key`: the raw `X ‖ Y`.
    pub public_key: PathBuf,
    /// `<name>-compressed-public.key`: the compressed point.
    pub compressed_public_key: PathBuf,
    /// `<name>-public.der`: the DER SubjectPublicKeyInfo.
    pub public_der: PathBuf,
    /// `<name>-public.pem`: the PEM SubjectPublicKeyInfo.
    pub public_pem: PathBuf,
}

impl KeyFiles {
    /// The paths of the key files named `name` (a path prefix, as `eccKeyMaker` takes it:
    /// `keys/server` gives `keys/server-private.key`, …).
    pub fn named(name: impl AsRef<Path>) -> KeyFiles {
        let name = name.as_ref().as_os_str();
        let with = |suffix: &str| {
            let mut path = name.to_owned();
            path.push(suffix);
            PathBuf::from(path)
        };
        KeyFiles {
            private_key: with("-private.key"),
            public_key: with("-public.key"),
            compressed_public_key: with("-compressed-public.key"),
            public_der: with("-public.der"),
            public_pem: with("-public.pem"),
        }
    }

    /// Every path, the private key first.
    pub fn all(&self) -> [&Path; 5] {
        [
            &self.private_key,
            &self.public_key,
            &self.compressed_public_key,
            &self.public_der,
            &self.public_pem,
        ]
    }
}

/// Writes the five key files of `key` under the name `name` (see [`KeyFiles::named`]).
///
/// The private key file is created with mode 0600 on Unix. Without `overwrite`, nothing is
/// written when any of the files exists already (a server's key is not lost by a slip).
pub fn write_key_files(
    key: &PrivateKey,
    name: impl AsRef<Path>,
    overwrite: bool,
) -> Result<KeyFiles, KeyError> {
    let files = KeyFiles::named(name);
    if !overwrite {
        if let Some(existing) = files.all().into_iter().find(|p| p.exists()) {
            return Err(KeyError::io(
                existing,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
    }
    let public = key.public_key();
    write_file(&files.private_key, key.secret_bytes(), true)?;
    write_file(&files.public_key, public.as_bytes(), false)?;
    write_file(&files.compressed_public_key, &public.to_compressed(), false)?;
    write_file(&files.public_der, &public.to_der(), false)?;
    write_file(&files.public_pem, public.to_pem().as_bytes(), false)?;
    Ok(files)
}

/// Writes `bytes` to a new file at `path`, replacing any file there; `private` files are
/// created readable by their owner only.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), KeyError> {
    let io = |e| KeyError::io(path, e);
    // Removing first means a new file is created, so its mode is the one asked for even
    // when an old file with a wider mode was there.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file: File = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}
