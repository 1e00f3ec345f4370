//! A throwaway CA and a `localhost`/`127.0.0.1` certificate for the TLS tests (rcgen), as PEM
//! files under the test target's tmp directory: the development certificate story of the
//! tests. Included with `#[path]` by the tests of `fpnn` and `rtmd` (needs `rcgen`, `ring` and
//! `base64` as dev-dependencies).

/// A throwaway CA and a `localhost`/`127.0.0.1` certificate it signed, as PEM files in a
/// fresh directory: the development certificate story of the tests.
pub struct TestPki {
    pub dir: std::path::PathBuf,
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate, for Chromium's
    /// `--ignore-certificate-errors-spki-list`.
    pub spki_sha256: String,
}

impl TestPki {
    pub fn new(name: &str) -> TestPki {
        use base64::Engine;
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pki-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("pki dir");

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("rtm-rs test CA {name}"));
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");

        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");

        let digest = ring::digest::digest(&ring::digest::SHA256, &key.public_key_der());
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
            dir,
        };
        std::fs::write(&pki.ca, ca.pem()).expect("write CA");
        std::fs::write(&pki.cert, cert.pem()).expect("write cert");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
        pki
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
