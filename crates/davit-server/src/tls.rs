//! TLS with rustls: certificate and key from PEM files, HTTP/2 or HTTP/1.1 by ALPN, and a
//! reload (on SIGHUP, from the binary) that swaps the certificate for new connections without
//! touching open ones.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor whose certificate can be reloaded from its files.
#[derive(Clone)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<RwLock<TlsAcceptor>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn load(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("reading certificates from", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("reading certificates from", cert, &e))?;
    if chain.is_empty() {
        return Err(bad("no certificate in", cert, &"empty"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad("reading the private key from", key, &e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("configuring TLS for", cert, &e))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| bad("using the certificate", cert, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Tls {
    /// Loads the certificate chain and private key (PEM).
    pub fn from_files(cert: &Path, key: &Path) -> io::Result<Tls> {
        let acceptor = load(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Arc::new(RwLock::new(acceptor)),
        })
    }

    /// Reads the files again; new connections use the new certificate. On error the old one
    /// stays in use.
    pub fn reload(&self) -> io::Result<()> {
        let acceptor = load(&self.cert, &self.key)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| io::Error::other("TLS state poisoned"))?;
        *current = acceptor;
        Ok(())
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> io::Result<TlsAcceptor> {
        self.current
            .read()
            .map(|a| a.clone())
            .map_err(|_| io::Error::other("TLS state poisoned"))
    }
}
