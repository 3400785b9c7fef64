//! Trust: the roots upstream servers are verified against (system + `upstream_ca`), and the
//! bundle handed to clients (system + the airlock CA).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("upstream_ca {path}: {reason}")]
    UpstreamCa { path: PathBuf, reason: String },
    #[error("cannot write the CA bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The system's trusted roots, never including our own CA: if `SSL_CERT_FILE` points at our
/// bundle (as under `airlock run`), trusting it upstream would let the proxy vouch for itself.
pub fn system_roots(own_ca: &CertificateDer<'_>) -> Vec<CertificateDer<'static>> {
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::debug!(error = %e, "skipping an unreadable system root store");
    }
    loaded
        .certs
        .into_iter()
        .filter(|c| c.as_ref() != own_ca.as_ref() && is_ca_certificate(c))
        .collect()
}

/// Whether a certificate from the system store may act as a root: it says it is a CA, or it
/// is a self-issued certificate of the era before extensions. Stores also hold server
/// certificates (Debian's `ssl-cert-snakeoil.pem`, `CA:FALSE`, CN=localhost): trusting one
/// as a root would let whoever holds its key impersonate `localhost` to every client.
fn is_ca_certificate(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    match parsed.basic_constraints() {
        Ok(Some(bc)) => bc.value.ca,
        Ok(None) => parsed.subject() == parsed.issuer(),
        Err(_) => false,
    }
}

/// Roots for verifying upstream servers.
pub fn upstream_roots(
    system: &[CertificateDer<'static>],
    extra: &[PathBuf],
) -> Result<RootCertStore, RootsError> {
    let mut store = RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(system.iter().cloned());
    for path in extra {
        let bad = |reason: String| RootsError::UpstreamCa {
            path: path.clone(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read: {e:?}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("not a PEM certificate file: {e:?}")))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| bad(format!("unusable certificate: {e}")))?;
        }
    }
    if store.is_empty() {
        tracing::warn!(
            "no trusted roots found for upstream servers (no system store, no upstream_ca): every HTTPS upstream will be refused"
        );
    }
    Ok(store)
}

/// Writes `bundle.pem` atomically: the system roots then the airlock CA.
pub fn write_bundle(
    path: &Path,
    system: &[CertificateDer<'static>],
    ca_pem: &str,
) -> Result<(), RootsError> {
    let err = |source| RootsError::Bundle {
        path: path.to_path_buf(),
        source,
    };
    let mut out = String::with_capacity(system.len() * 2000 + ca_pem.len());
    for cert in system {
        out.push_str(&pem_encode(cert.as_ref()));
    }
    out.push_str(ca_pem);
    if !ca_pem.ends_with('\n') {
        out.push('\n');
    }
    if fs::read_to_string(path).is_ok_and(|old| old == out) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("pem.tmp{}", std::process::id()));
    let mut file = fs::File::create(&tmp).map_err(err)?;
    file.write_all(out.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

fn pem_encode(der: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(TABLE[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ca_certificates_count_as_roots() {
        let dir = std::env::temp_dir().join(format!("airlock-roots-{}", uuid::Uuid::now_v7()));
        let ca = crate::tls::CertificateAuthority::load_or_create(&dir).unwrap();
        assert!(is_ca_certificate(ca.cert_der()));
        let (chain, _) = ca.issue_leaf("localhost").unwrap();
        assert!(!is_ca_certificate(&chain[0]), "a server certificate");
        assert!(!is_ca_certificate(&CertificateDer::from(vec![
            0x30, 0x03, 1, 2, 3
        ])));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pem_round_trips() {
        let der: Vec<u8> = (0u8..=255).cycle().take(1000).collect();
        let pem = pem_encode(&der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), &der[..]);
    }
}
