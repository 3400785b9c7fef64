//! The audit chain head's signature (issue 13 item 4). The hash chain finds an edited,
//! removed or reordered line, but someone who may write the log directory can rewrite the
//! chain from an edit onwards and `chain-head.json` with it. An Ed25519 key kept in the data
//! directory (`audit/signing.key`, never in the log directory) signs the head each time it
//! moves, so that a copy of the logs can be checked elsewhere with the public key alone
//! (`airlock audit verify --public-key chain-head.pub`): a rewritten head no longer matches.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Where the key lives, under the data directory.
pub const KEY_FILE: &str = "audit/signing.key";
/// The public key beside the logs (PEM, SubjectPublicKeyInfo), for whoever checks a copy.
pub const PUBLIC_KEY_FILE: &str = "chain-head.pub";

/// DER of an Ed25519 SubjectPublicKeyInfo up to the 32 key bytes (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(
        "cannot read or create the audit signing key {path}: {source}; check the data directory's permissions"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the audit signing key {path} is not an Ed25519 key ({reason}); remove it to make a new one (copies of the logs are then checked with the new chain-head.pub)"
    )]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "the audit signing key {path} is readable by other users (mode {mode:04o}), who may have copied it; if nobody did, run chmod 600 {path}, otherwise remove it to make a new one"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

pub struct HeadSigner {
    key: Ed25519KeyPair,
}

impl HeadSigner {
    /// The key in `<data_dir>/audit/signing.key`, made (mode 0600) at the first start.
    pub fn load_or_create(data_dir: &Path) -> Result<HeadSigner, SigningError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| SigningError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::config::restrict_dir(dir).map_err(io)?;
        }
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => {
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SigningError::Exposed { path, mode });
                }
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| io(std::io::Error::other("the system's random source failed")))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(doc.as_ref()).map_err(io)?;
                file.sync_all().map_err(io)?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| SigningError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(HeadSigner { key })
    }

    pub fn sign(&self, message: &[u8]) -> String {
        crate::config::hex(self.key.sign(message).as_ref())
    }

    pub fn public_key_hex(&self) -> String {
        crate::config::hex(self.key.public_key().as_ref())
    }

    /// The public key as PEM (what `openssl pkey -pubin` reads).
    pub fn public_key_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    /// Writes `chain-head.pub` into the log directory when it is missing or names another key.
    pub fn publish(&self, log_dir: &Path) -> std::io::Result<()> {
        let path = log_dir.join(PUBLIC_KEY_FILE);
        let pem = self.public_key_pem();
        if std::fs::read_to_string(&path).is_ok_and(|have| have == pem) {
            return Ok(());
        }
        crate::config::replace_private_file(&path, pem.as_bytes())
    }
}

/// A public key given to `audit verify --public-key`: the PEM of `chain-head.pub`, or the key's
/// 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = if let Some(body) = text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
        let body = body
            .split("-----END PUBLIC KEY-----")
            .next()
            .unwrap_or_default();
        let b64: String = body.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("the PEM's base64 does not decode: {e}"))?;
        der.strip_prefix(&SPKI_PREFIX[..])
            .ok_or("the PEM holds no Ed25519 public key")?
            .to_vec()
    } else {
        from_hex_bytes(text).ok_or("expected a PEM public key or 64 hex digits")?
    };
    bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())
}

/// Whether `signature` (hex) is `public_key`'s (hex) signature of `message`.
pub fn verify(public_key: &str, message: &[u8], signature: &str) -> bool {
    let (Some(key), Some(sig)) = (from_hex_bytes(public_key), from_hex_bytes(signature)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, key)
        .verify(message, &sig)
        .is_ok()
}

/// Hex digits (either case) as bytes; `None` for an odd length or another character.
pub fn from_hex_bytes(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("airlock-sign-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_signature_holds_for_its_message_and_key_only() {
        let dir = temp_dir();
        let signer = HeadSigner::load_or_create(&dir).unwrap();
        let sig = signer.sign(b"head");
        assert!(verify(&signer.public_key_hex(), b"head", &sig));
        assert!(!verify(&signer.public_key_hex(), b"head2", &sig));
        let other = HeadSigner::load_or_create(&temp_dir()).unwrap();
        assert!(!verify(&other.public_key_hex(), b"head", &sig));
        // The same key after a restart.
        let again = HeadSigner::load_or_create(&dir).unwrap();
        assert_eq!(again.public_key_hex(), signer.public_key_hex());
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_published_pem_and_hex_parse_to_the_key() {
        let dir = temp_dir();
        let signer = HeadSigner::load_or_create(&dir).unwrap();
        signer.publish(&dir).unwrap();
        let pem = std::fs::read_to_string(dir.join(PUBLIC_KEY_FILE)).unwrap();
        let from_pem = parse_public_key(&pem).unwrap();
        let from_hex = parse_public_key(&signer.public_key_hex()).unwrap();
        assert_eq!(from_pem, from_hex);
        assert_eq!(crate::config::hex(&from_pem), signer.public_key_hex());
        assert!(parse_public_key("not a key").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = temp_dir();
        HeadSigner::load_or_create(&dir).unwrap();
        let path = dir.join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = HeadSigner::load_or_create(&dir).err().unwrap().to_string();
        assert!(
            err.contains("readable by other users") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
