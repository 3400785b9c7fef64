//! TLS: the interception CA and its leaf certificates (client side), verified upstream
//! connections (server side), and the optional key log for both.

pub mod ca;
pub mod keylog;
pub mod leaf_cache;
pub mod roots;

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;

use crate::config::Config;
pub use ca::CertificateAuthority;
pub use leaf_cache::LeafCertCache;

/// One crypto provider for the whole process, passed explicitly everywhere (with two
/// compiled in, rustls's implicit default would panic at run time).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(transparent)]
    Ca(#[from] ca::CaError),
    #[error(transparent)]
    Roots(#[from] roots::RootsError),
    #[error("cannot open the TLS key log {path}: {source}")]
    KeyLog {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the upstream TLS configuration: {0}")]
    Client(rustls::Error),
}

/// Everything TLS the proxy needs, built once at start.
pub struct TlsContext {
    pub ca: Arc<CertificateAuthority>,
    pub leaf_cache: LeafCertCache,
    /// Offers h2 and http/1.1 to upstreams.
    pub upstream_any: Arc<ClientConfig>,
    /// Offers only http/1.1 (WebSocket upgrades, `http1_only_hosts`).
    pub upstream_h1: Arc<ClientConfig>,
}

impl TlsContext {
    pub fn new(config: &Config) -> Result<Self, TlsSetupError> {
        let provider = provider();
        let ca = Arc::new(CertificateAuthority::load_or_create(&config.ca_dir())?);
        let system = roots::system_roots(ca.cert_der());
        roots::write_bundle(&config.bundle_path(), &system, ca.cert_pem())?;
        let root_store = Arc::new(roots::upstream_roots(&system, &config.upstream_ca)?);

        let keylog = match &config.keylog_file {
            Some(path) => {
                let sink =
                    keylog::KeyLogSink::open(path).map_err(|source| TlsSetupError::KeyLog {
                        path: path.clone(),
                        source,
                    })?;
                tracing::warn!(
                    path = %path.display(),
                    "TLS session keys are being written to the key log: anyone with this file can decrypt captured traffic"
                );
                Some(Arc::new(sink))
            }
            None => None,
        };

        let client = |alpn: Vec<Vec<u8>>| -> Result<Arc<ClientConfig>, TlsSetupError> {
            let mut c = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(TlsSetupError::Client)?
                .with_root_certificates(root_store.clone())
                .with_no_client_auth();
            c.alpn_protocols = alpn;
            if let Some(k) = &keylog {
                c.key_log = k.clone();
            }
            Ok(Arc::new(c))
        };
        let upstream_any = client(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?;
        let upstream_h1 = client(vec![b"http/1.1".to_vec()])?;
        let leaf_cache = LeafCertCache::new(ca.clone(), provider, keylog);
        Ok(TlsContext {
            ca,
            leaf_cache,
            upstream_any,
            upstream_h1,
        })
    }
}
