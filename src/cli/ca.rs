//! `airlock ca [--path|--pem|--nss [DIR]]`: where the CA is and how to trust it.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use super::Failure;
use crate::config::Config;
use crate::tls::CertificateAuthority;

pub fn ca(config: &Config, path_only: bool, pem: bool) -> Result<ExitCode, Failure> {
    let ca = CertificateAuthority::load_or_create(&config.ca_dir())
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let path = ca.cert_path().display().to_string();
    if path_only {
        println!("{path}");
        return Ok(ExitCode::SUCCESS);
    }
    if pem {
        print!("{}", ca.cert_pem());
        return Ok(ExitCode::SUCCESS);
    }
    let bundle = config.bundle_path().display().to_string();
    println!(
        "\
The airlock CA certificate: {path}
(ECDSA P-256, valid 10 years; its private key stays in the same directory, mode 0600)

Clients must trust it for airlock to inspect HTTPS. Either system-wide:

  macOS:
    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {path}
  Debian / Ubuntu:
    sudo cp {path} /usr/local/share/ca-certificates/airlock-ca.crt && sudo update-ca-certificates
  RHEL / Fedora / CentOS:
    sudo cp {path} /etc/pki/ca-trust/source/anchors/airlock-ca.pem && sudo update-ca-trust

or per process (what `airlock run -- CMD` does for you), with the bundle of the system roots
plus the airlock CA:

  export SSL_CERT_FILE={bundle} REQUESTS_CA_BUNDLE={bundle} CURL_CA_BUNDLE={bundle}
  export NODE_EXTRA_CA_CERTS={path} GIT_SSL_CAINFO={bundle} PIP_CERT={bundle} AWS_CA_BUNDLE={bundle}

Browsers: Chromium on Linux trusts only its NSS database; `airlock ca --nss` adds the CA to
~/.pki/nssdb (needs certutil, Debian package libnss3-tools). Firefox: Settings, Certificates,
Import."
    );
    Ok(ExitCode::SUCCESS)
}

/// `airlock ca --nss [DIR]`: adds the CA to an NSS database (created when missing), as a CA
/// trusted for TLS servers.
pub fn add_to_nss(config: &Config, dir: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let ca = CertificateAuthority::load_or_create(&config.ca_dir())
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".pki/nssdb"))
            .ok_or_else(|| Failure::usage("HOME is not set: name the database, --nss DIR"))?,
    };
    if super::clients::find_on_path("certutil").is_none() {
        return Err(Failure::runtime(
            "certutil is not installed: install it (Debian/Ubuntu: apt install libnss3-tools; Fedora: dnf install nss-tools) and run this again",
        ));
    }
    let db = format!("sql:{}", dir.display());
    let certutil = |args: &[&str]| -> Result<(), Failure> {
        let out = Command::new("certutil")
            .args(args)
            .output()
            .map_err(|e| Failure::runtime(format!("cannot run certutil: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        Err(Failure::runtime(format!(
            "certutil {} failed: {}",
            args.first().unwrap_or(&""),
            said.trim()
        )))
    };
    if !dir.join("cert9.db").exists() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::runtime(format!("cannot create {}: {e}", dir.display())))?;
        certutil(&["-N", "-d", &db, "--empty-password"])?;
    }
    let path = ca.cert_path().display().to_string();
    certutil(&[
        "-A",
        "-d",
        &db,
        "-n",
        "airlock CA",
        "-t",
        "C,,",
        "-i",
        &path,
    ])?;
    println!(
        "added the airlock CA ({path}) to the NSS database {}: Chromium started by this user now trusts airlock's certificates (restart it if it runs)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
