//! Encryption options (`--server-key`, `--gate-key`, `--curve`, `--encrypt-mode`,
//! `--key-bits`) and `rtm keygen`.
//!
//! FPNN encryption has no certificates: the client is given the server's public key (the
//! `-public.pem`, `-public.der` or raw `-public.key` file `rtm keygen` writes), exchanges a
//! fresh key with it (`*key`, ECDH), and from then on every frame is AES-CFB encrypted.

use crate::output::json;
use crate::{Global, Problem};
use clap::{Args, ValueEnum};
use fpnn::encryption::{
    write_key_files, Bits, ClientEncryption, Curve, Mode, PrivateKey, PublicKey,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How connections are encrypted.
#[derive(Args, Debug, Clone)]
pub struct CryptoArgs {
    /// Encrypt the server API connection with this server public key (PEM, DER, or raw X‖Y
    /// with --curve), as written by `rtm keygen`.
    #[arg(long, global = true, env = "RTM_SERVER_KEY", value_name = "FILE")]
    pub server_key: Option<PathBuf>,
    /// Encrypt the gate connection of `login` with this public key (PEM, DER, or raw with
    /// --curve).
    #[arg(long, global = true, env = "RTM_GATE_KEY", value_name = "FILE")]
    pub gate_key: Option<PathBuf>,
    /// The curve of a raw public key file (PEM and DER name their own); for `keygen`, the
    /// curve of the new key (default secp256r1).
    #[arg(long, global = true, value_parser = parse_curve)]
    pub curve: Option<Curve>,
    /// Encrypted framing: package (each frame on its own, the C++ SDK's default) or stream.
    #[arg(long, global = true, value_enum, default_value = "package")]
    pub encrypt_mode: EncryptMode,
    /// AES key size: 128 or 256.
    #[arg(long, global = true, default_value = "128", value_parser = parse_bits)]
    pub key_bits: Bits,
}

/// `--encrypt-mode`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptMode {
    /// Each frame encrypted on its own, after its length.
    Package,
    /// Each direction one cipher stream.
    Stream,
}

fn parse_curve(text: &str) -> Result<Curve, String> {
    text.parse().map_err(|_| {
        format!("'{text}' is not a curve: secp256r1, secp256k1, secp224r1 or secp192r1")
    })
}

fn parse_bits(text: &str) -> Result<Bits, String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(Bits::from_bits)
        .ok_or_else(|| format!("'{text}' is not a key size: 128 or 256"))
}

impl CryptoArgs {
    fn encryption(&self, path: &Path, flag: &str) -> Result<ClientEncryption, Problem> {
        let key = PublicKey::from_file(path, self.curve).map_err(|e| {
            Problem::Usage(format!(
                "{flag} {}: {e} (PEM and DER files name their curve; a raw key needs --curve)",
                path.display()
            ))
        })?;
        let mode = match self.encrypt_mode {
            EncryptMode::Package => Mode::Package,
            EncryptMode::Stream => Mode::Stream,
        };
        Ok(ClientEncryption::new(key).mode(mode).bits(self.key_bits))
    }

    /// The server API's encryption, when `--server-key` is given.
    pub fn server_api(&self) -> Result<Option<ClientEncryption>, Problem> {
        self.server_key
            .as_deref()
            .map(|path| self.encryption(path, "--server-key"))
            .transpose()
    }

    /// The gate's encryption, when `--gate-key` is given.
    pub fn gate(&self) -> Result<Option<ClientEncryption>, Problem> {
        self.gate_key
            .as_deref()
            .map(|path| self.encryption(path, "--gate-key"))
            .transpose()
    }
}

/// `rtm keygen …`
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write: NAME-private.key, NAME-public.key (raw X‖Y),
    /// NAME-compressed-public.key, NAME-public.der and NAME-public.pem.
    #[arg(value_name = "NAME")]
    name: PathBuf,
    /// Replace existing files (otherwise nothing is written when one exists).
    #[arg(long)]
    force: bool,
}

/// Writes a new key pair (on `--curve`, secp256r1 by default).
pub fn keygen(global: &Global, args: KeygenArgs) -> Result<ExitCode, Problem> {
    let curve = global.crypto.curve.unwrap_or(Curve::Secp256r1);
    let fail = |e: fpnn::encryption::KeyError| {
        Problem::Usage(format!(
            "cannot write the key files {}-*: {e}",
            args.name.display()
        ))
    };
    let key = PrivateKey::generate(curve).map_err(fail)?;
    let files = write_key_files(&key, &args.name, args.force).map_err(fail)?;
    if global.json {
        json(json!({
            "curve": curve.to_string(),
            "private_key": files.private_key,
            "public_key": files.public_key,
            "compressed_public_key": files.compressed_public_key,
            "public_der": files.public_der,
            "public_pem": files.public_pem,
        }));
    } else {
        println!("wrote a {curve} key pair:");
        println!(
            "  {}   (secret: rtmd's encryption.*.private_key, curve = \"{curve}\")",
            files.private_key.display()
        );
        println!(
            "  {}   (give clients this one: --server-key / --gate-key)",
            files.public_pem.display()
        );
        for path in [
            &files.public_der,
            &files.public_key,
            &files.compressed_public_key,
        ] {
            println!("  {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
