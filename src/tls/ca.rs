//! The interception CA: generated once into `<data_dir>/ca/`, reused after, and the signer of
//! the per-host leaf certificates.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub const CA_COMMON_NAME: &str = "airlock CA";
const CA_VALIDITY_DAYS: i64 = 3650;
/// Leaf certificates live a week; the cache renews them well before that.
pub const LEAF_VALIDITY_DAYS: i64 = 7;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} exists but {missing} is missing; restore it, or remove the ca/ directory to generate a new CA (clients must then trust the new one)"
    )]
    Incomplete { path: PathBuf, missing: PathBuf },
    #[error(
        "the CA in {path} cannot be used: {reason}; remove the ca/ directory to generate a new one"
    )]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "the CA key {path} is readable by other users (mode {mode:04o}), who may have copied it; if you are sure nobody did, run chmod 600 {path}, otherwise remove the ca/ directory to generate a new CA (clients must then trust the new one)"
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error("cannot issue a certificate for {host:?}: {reason}")]
    Leaf { host: String, reason: String },
}

/// The loaded CA plus the one key pair all leaf certificates share (a leaf key per host would
/// cost a key generation per new host and buys nothing: the CA key is what must stay secret).
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    cert_path: PathBuf,
    leaf_key: KeyPair,
}

impl CertificateAuthority {
    /// Loads the CA from `dir`, generating it first if neither file exists.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join("airlock-ca.pem");
        let key_path = dir.join("airlock-ca.key");
        match (cert_path.exists(), key_path.exists()) {
            (false, false) => generate(dir, &cert_path, &key_path)?,
            (true, false) => {
                return Err(CaError::Incomplete {
                    path: cert_path,
                    missing: key_path,
                });
            }
            (false, true) => {
                return Err(CaError::Incomplete {
                    path: key_path,
                    missing: cert_path,
                });
            }
            (true, true) => {}
        }
        enforce_key_mode(&key_path)?;
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let invalid = |reason: String| CaError::Invalid {
            path: cert_path.clone(),
            reason,
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| invalid(format!("bad key: {e}")))?;
        let cert_der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid(format!("bad certificate PEM: {e:?}")))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| invalid(format!("bad certificate: {e}")))?;
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| invalid(format!("cannot generate a leaf key: {e}")))?;
        Ok(CertificateAuthority {
            issuer,
            cert_pem,
            cert_der,
            cert_path,
            leaf_key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// A certificate for `host` (a DNS name or an IP address, which becomes an IP SAN so that
    /// clients asking for `https://127.0.0.1` accept it), followed by the CA's, and its
    /// private key.
    pub fn issue_leaf(
        &self,
        host: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
        let leaf_err = |reason: String| CaError::Leaf {
            host: host.to_string(),
            reason,
        };
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| leaf_err(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(LEAF_VALIDITY_DAYS);
        params.serial_number = Some(random_serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| leaf_err(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        // The CA goes in the chain too: clients that pin the CA's key (Chromium's SPKI list)
        // need to see it, and a client that already trusts it ignores the copy.
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key))
    }
}

fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), CaError> {
    crate::config::restrict_dir(dir).map_err(|source| CaError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| CaError::Invalid {
        path: cert_path.to_path_buf(),
        reason,
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| invalid(format!("cannot generate the CA key: {e}")))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, "airlock");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
    params.serial_number = Some(random_serial());
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid(format!("cannot sign the CA certificate: {e}")))?;

    // The key first, created 0600 from the start (never world-readable, not even briefly);
    // `create_new` makes a concurrent first start fail here rather than mix two CAs.
    write_new(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| CaError::Io {
            action: "create",
            path: path.to_path_buf(),
            source,
        })?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|source| CaError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
}

fn enforce_key_mode(key_path: &Path) -> Result<(), CaError> {
    let meta = fs::metadata(key_path).map_err(|source| CaError::Io {
        action: "inspect",
        path: key_path.to_path_buf(),
        source,
    })?;
    // Tightening it now would hide that it was exposed: the operator decides.
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CaError::KeyExposed {
            path: key_path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("system random source");
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_generated_once_with_a_private_key_file() {
        let dir = std::env::temp_dir().join(format!("airlock-ca-{}", uuid::Uuid::now_v7()));
        let first = CertificateAuthority::load_or_create(&dir).unwrap();
        let mode = fs::metadata(dir.join("airlock-ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = CertificateAuthority::load_or_create(&dir).unwrap();
        assert_eq!(first.cert_pem(), second.cert_pem());
        let (chain, _key) = second.issue_leaf("127.0.0.1").unwrap();
        assert_eq!(chain.len(), 2, "the leaf, then the CA");
        assert_eq!(&chain[1], second.cert_der());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("airlock-ca-{}", uuid::Uuid::now_v7()));
        CertificateAuthority::load_or_create(&dir).unwrap();
        let key = dir.join("airlock-ca.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = CertificateAuthority::load_or_create(&dir).err().unwrap();
        assert!(err.to_string().contains("mode 0644"), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o644
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
