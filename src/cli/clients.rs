//! What `airlock run` gives clients: the CA variables (`CA_VARS`), and settings for clients
//! that read neither the proxy nor the CA variables:
//! a wgetrc for wget (GnuTLS ignores `SSL_CERT_FILE`) and, when Java is installed, the system
//! properties and trust store Java needs (it ignores every variable). Files live in the data
//! directory's `clients/`, written once and rewritten only when their content changes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::Config;
pub use crate::jail::find_on_path;
use crate::tls::CertificateAuthority;

/// Variables pointed at the bundle (system roots + airlock CA): SPEC 5's, then the ones of
/// clients that ignore those (npm's `cafile` replaces Node's roots, httplib2 and grpcio carry
/// their own store, gcloud, Nix, Deno and Cargo read their own variable). They are set even
/// when the parent set them: a store without airlock's CA is exactly what fails.
pub const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "AWS_CA_BUNDLE",
    "npm_config_cafile",
    "HTTPLIB2_CA_CERTS",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "NIX_SSL_CERT_FILE",
    "DENO_CERT",
    "CARGO_HTTP_CAINFO",
];
/// The Node option that loads the preload making Node's `fetch` honour the proxy
/// variables (undici's `EnvHttpProxyAgent` as the global dispatcher, which Node's built-in
/// fetch shares), installing undici with npm, in `env` (through airlock), the first time.
pub fn node_preload(dir: &Path, env: &[(String, String)]) -> Result<String, String> {
    let home = dir.join("node-preload");
    if !home.join("node_modules/undici/package.json").exists() {
        let npm =
            find_on_path("npm").ok_or("npm is not installed, and it is needed to fetch undici")?;
        fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        let out = Command::new(npm)
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&home)
            .arg(UNDICI)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "npm could not install {UNDICI}: {}",
                said.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    let preload = home.join("preload.mjs");
    let require_from = format!("{}/", home.display());
    let script = format!(
        "// written by `airlock run --node-preload`: Node's fetch through the proxy variables\n\
import {{ createRequire }} from 'node:module';\n\
const require = createRequire({require_from:?});\n\
const {{ EnvHttpProxyAgent, setGlobalDispatcher }} = require('undici');\n\
// undici calls the agent experimental; that warning is noise in the agent's terminal.\n\
const emit = process.emitWarning;\n\
process.emitWarning = () => {{}};\n\
try {{ setGlobalDispatcher(new EnvHttpProxyAgent()); }} finally {{ process.emitWarning = emit; }}\n"
    );
    write_if_changed(&home, &preload, script.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", preload.display()))?;
    Ok(format!("--import \"file://{}\"", preload.display()))
}

/// The undici whose EnvHttpProxyAgent works with Node 20's built-in fetch.
const UNDICI: &str = "undici@6";

/// A wgetrc holding the user's own settings plus `ca_certificate` (WGETRC replaces
/// `~/.wgetrc`, so its lines are carried over).
pub fn wgetrc(dir: &Path, bundle: &str) -> io::Result<PathBuf> {
    let path = dir.join("wgetrc");
    let own = std::env::var_os("WGETRC")
        .map(PathBuf::from)
        .filter(|p| p != &path)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".wgetrc")))
        .and_then(|p| fs::read_to_string(p).ok())
        .unwrap_or_default();
    let mut content = String::new();
    for line in own.lines() {
        // Ours wins: a user's ca_certificate would point wget away from airlock's CA.
        if !line.trim_start().starts_with("ca_certificate") {
            content.push_str(line);
            content.push('\n');
        }
    }
    content.push_str(&format!(
        "# written by `airlock run`\nca_certificate = {bundle}\n"
    ));
    write_if_changed(dir, &path, content.as_bytes())?;
    Ok(path)
}

/// `JAVA_TOOL_OPTIONS` for the proxy at `listen` and a trust store holding the JDK's roots
/// plus airlock's CA; empty when no `java` is on the PATH.
pub fn java_options(dir: &Path, config: &Config, listen: &str) -> String {
    if find_on_path("java").is_none() {
        return String::new();
    }
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "8888"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut options = format!(
        "-Dhttp.proxyHost={host} -Dhttp.proxyPort={port} -Dhttps.proxyHost={host} -Dhttps.proxyPort={port} -Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]"
    );
    match java_trust_store(dir, config) {
        // The JVM splits the options at spaces, except inside quotes.
        Ok(store) => options.push_str(&format!(
            " \"-Djavax.net.ssl.trustStore={}\" -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword={STORE_PASSWORD}",
            store.display()
        )),
        Err(e) => tracing::warn!(
            error = %e,
            "Java will not trust airlock's CA (its HTTPS through airlock fails)"
        ),
    }
    options
}

/// The password of the trust store: it protects nothing (certificates are public), but
/// keytool and Java insist on one.
const STORE_PASSWORD: &str = "changeit";

/// A PKCS#12 trust store made by keytool (Java only trusts certificates that carry its own
/// trust attribute, which keytool writes): the JDK's `cacerts` plus airlock's CA. Named by the
/// CA's fingerprint, so a new CA gets a new store.
fn java_trust_store(dir: &Path, config: &Config) -> Result<PathBuf, String> {
    let ca = CertificateAuthority::load_or_create(&config.ca_dir()).map_err(|e| e.to_string())?;
    let digest = ring::digest::digest(&ring::digest::SHA256, ca.cert_der().as_ref());
    let tag: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let store = dir.join(format!("java-truststore-{tag}.p12"));
    if store.exists() {
        return Ok(store);
    }
    let keytool = find_on_path("keytool").ok_or("keytool is not on the PATH")?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        "java-truststore-{tag}.p12.tmp{}",
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    // The JDK's roots first, so Java still reaches hosts airlock tunnels blindly.
    let jdk_home = fs::canonicalize(&keytool)
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.to_path_buf()));
    if let Some(cacerts) = jdk_home.map(|h| h.join("lib/security/cacerts"))
        && cacerts.exists()
    {
        keytool_run(
            &keytool,
            &[
                "-importkeystore",
                "-srckeystore",
                &cacerts.display().to_string(),
                "-srcstorepass",
                "changeit",
                "-destkeystore",
                &tmp.display().to_string(),
                "-deststoretype",
                "PKCS12",
                "-deststorepass",
                STORE_PASSWORD,
            ],
        )?;
    }
    keytool_run(
        &keytool,
        &[
            "-importcert",
            "-trustcacerts",
            "-alias",
            "airlock-ca",
            "-file",
            &ca.cert_path().display().to_string(),
            "-keystore",
            &tmp.display().to_string(),
            "-storetype",
            "PKCS12",
            "-storepass",
            STORE_PASSWORD,
        ],
    )?;
    fs::rename(&tmp, &store).map_err(|e| format!("cannot write {}: {e}", store.display()))?;
    Ok(store)
}

fn keytool_run(keytool: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(keytool)
        .arg("-noprompt")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run keytool: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "keytool failed: {}",
            said.split_whitespace().collect::<Vec<_>>().join(" ")
        ))
    }
}

fn write_if_changed(dir: &Path, path: &Path, content: &[u8]) -> io::Result<()> {
    if fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, content)?;
    fs::rename(&tmp, path)
}
