//! Per-host server configurations for intercepted TLS, issued on demand and cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

use super::ca::{CaError, CertificateAuthority, LEAF_VALIDITY_DAYS};
use super::keylog::KeyLogSink;

/// Entries are re-issued a day before the certificate would expire.
const RENEW_AFTER: Duration = Duration::from_secs((LEAF_VALIDITY_DAYS as u64 - 1) * 24 * 3600);
/// A bound on memory for a client that asks for a great many names.
const MAX_ENTRIES: usize = 10_000;

/// (host, offers only http/1.1)
type LeafKey = (String, bool);

/// Issues and caches one rustls `ServerConfig` per (host, protocol offer). Caching the config,
/// not just the certificate, keeps TLS session resumption working across connections.
pub struct LeafCertCache {
    ca: Arc<CertificateAuthority>,
    provider: Arc<CryptoProvider>,
    keylog: Option<Arc<KeyLogSink>>,
    entries: Mutex<HashMap<LeafKey, (Instant, Arc<ServerConfig>)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl LeafCertCache {
    pub fn new(
        ca: Arc<CertificateAuthority>,
        provider: Arc<CryptoProvider>,
        keylog: Option<Arc<KeyLogSink>>,
    ) -> Self {
        LeafCertCache {
            ca,
            provider,
            keylog,
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The server config presenting a certificate for `host`, offering h2 unless
    /// `http1_only`.
    pub fn server_config(
        &self,
        host: &str,
        http1_only: bool,
    ) -> Result<Arc<ServerConfig>, CaError> {
        let key = (host.to_ascii_lowercase(), http1_only);
        if let Some((made, config)) = self.entries.lock().expect("leaf cache").get(&key)
            && made.elapsed() < RENEW_AFTER
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(config.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Issued outside the lock: signing takes a while and other hosts need not wait.
        let config = Arc::new(self.build(&key.0, http1_only)?);
        let mut entries = self.entries.lock().expect("leaf cache");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), config.clone()));
        Ok(config)
    }

    /// (hits, misses) of the cache since start, for `/metrics`.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn build(&self, host: &str, http1_only: bool) -> Result<ServerConfig, CaError> {
        let (chain, key) = self.ca.issue_leaf(host)?;
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| CaError::Leaf {
                host: host.to_string(),
                reason: e.to_string(),
            })?;
        config.alpn_protocols = if http1_only {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        if let Some(keylog) = &self.keylog {
            config.key_log = keylog.clone();
        }
        Ok(config)
    }
}
