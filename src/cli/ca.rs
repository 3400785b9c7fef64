//! `airlock ca [--path|--pem]`: where the CA is and how to trust it.

use std::process::ExitCode;

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
  export NODE_EXTRA_CA_CERTS={path} GIT_SSL_CAINFO={bundle} PIP_CERT={bundle} AWS_CA_BUNDLE={bundle}"
    );
    Ok(ExitCode::SUCCESS)
}
