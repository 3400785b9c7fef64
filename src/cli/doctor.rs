//! `airlock doctor`: tries each common client installed here through airlock, with the
//! environment `airlock run` gives a command, and prints whether it works and, if not, the
//! fix. Each client fetches the canary URL: only airlock answers `canary.airlock.invalid`
//! (with a 403), so a client that reports the 403 went through airlock and trusted its
//! certificate; one that reports anything else did not.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::Failure;
use super::clients::find_on_path;
use super::run::{client_environment, ensure_bundle, proxy_for};
use crate::config::Config;
use crate::pipeline::decide::CANARY_HOST;

const TIMEOUT: Duration = Duration::from_secs(30);

/// One client's probe: the program that must be installed, and how to ask it for a URL.
struct Probe {
    name: &'static str,
    program: &'static str,
    /// The command line; `{url}` is the canary URL, `{dir}` a scratch directory.
    args: &'static [&'static str],
    /// A file to write in the scratch directory first (a Java program).
    file: Option<(&'static str, &'static str)>,
}

const JAVA_CANARY: &str = r#"public class Canary {
    public static void main(String[] a) throws Exception {
        java.net.HttpURLConnection c = (java.net.HttpURLConnection) new java.net.URL(a[0]).openConnection();
        System.out.println(c.getResponseCode());
    }
}
"#;

const PROBES: &[Probe] = &[
    Probe {
        name: "curl",
        program: "curl",
        args: &["-sS", "-o", "/dev/null", "-w", "%{http_code}", "{url}"],
        file: None,
    },
    Probe {
        name: "wget",
        program: "wget",
        args: &["-O", "/dev/null", "{url}"],
        file: None,
    },
    Probe {
        name: "python (urllib)",
        program: "python3",
        args: &[
            "-c",
            "import sys, urllib.request as u\ntry:\n    u.urlopen(sys.argv[1], timeout=20)\nexcept u.HTTPError as e:\n    print(e.code)\n",
            "{url}",
        ],
        file: None,
    },
    Probe {
        name: "python (requests)",
        program: "python3",
        args: &[
            "-c",
            "import sys\ntry:\n    import requests\nexcept ImportError:\n    print('not installed'); sys.exit(3)\nprint(requests.get(sys.argv[1], timeout=20).status_code)\n",
            "{url}",
        ],
        file: None,
    },
    Probe {
        name: "node (fetch)",
        program: "node",
        args: &[
            "-e",
            "fetch(process.argv[1]).then(r => console.log(r.status)).catch(e => console.log(String((e.cause && (e.cause.code || e.cause.message)) || e.message)))",
            "{url}",
        ],
        file: None,
    },
    Probe {
        name: "node (https)",
        program: "node",
        args: &[
            "-e",
            "require('https').get(process.argv[1], r => console.log(r.statusCode)).on('error', e => console.log(e.code || e.message))",
            "{url}",
        ],
        file: None,
    },
    Probe {
        name: "bun",
        program: "bun",
        args: &[
            "-e",
            "try { console.log((await fetch(process.argv[1])).status) } catch (e) { console.log(String(e.code || e.message)) }",
            "{url}",
        ],
        file: None,
    },
    Probe {
        name: "npm",
        program: "npm",
        args: &["ping", "--registry", "{url}"],
        file: None,
    },
    Probe {
        name: "git",
        program: "git",
        args: &["ls-remote", "{url}"],
        file: None,
    },
    Probe {
        name: "pip",
        program: "pip3",
        // pip reports a 403 from an index only in its debug output.
        args: &[
            "download",
            "-vv",
            "--no-deps",
            "--disable-pip-version-check",
            "--retries",
            "0",
            "-d",
            "{dir}",
            "--index-url",
            "{url}",
            "airlock-doctor-probe",
        ],
        file: None,
    },
    Probe {
        name: "java",
        program: "java",
        args: &["{dir}/Canary.java", "{url}"],
        file: Some(("Canary.java", JAVA_CANARY)),
    },
];

/// What a probe's output says.
enum Verdict {
    Works,
    Fails(String),
    Skipped(String),
}

pub fn doctor(config: &Config) -> Result<ExitCode, Failure> {
    let (listen, private) = proxy_for(config)?;
    let result = (|| {
        ensure_bundle(config)?;
        let env = client_environment(config, &listen);
        let scratch = std::env::temp_dir().join(format!("airlock-doctor-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)
            .map_err(|e| Failure::runtime(format!("cannot create {}: {e}", scratch.display())))?;
        println!(
            "Each client below fetched https://{CANARY_HOST}/ with the environment `airlock run` gives (proxy {listen})."
        );
        println!("{:<20}{:<8}fix", "client", "result");
        let mut failed = 0;
        let mut tried = 0;
        for probe in PROBES {
            if find_on_path(probe.program).is_none() {
                continue;
            }
            let verdict = try_probe(probe, &env, &scratch);
            let (result, detail) = match &verdict {
                Verdict::Works => ("works", String::new()),
                Verdict::Fails(fix) => ("FAILS", fix.clone()),
                Verdict::Skipped(why) => ("-", why.clone()),
            };
            if !matches!(verdict, Verdict::Skipped(_)) {
                tried += 1;
            }
            if matches!(verdict, Verdict::Fails(_)) {
                failed += 1;
            }
            println!("{:<20}{:<8}{detail}", probe.name, result);
        }
        let _ = std::fs::remove_dir_all(&scratch);
        if failed == 0 {
            println!("{tried} clients tried: all go through airlock.");
            Ok(ExitCode::SUCCESS)
        } else {
            println!(
                "{failed} of {tried} clients do not go through airlock as they are; apply the fixes above, or run the agent in a jail (`sudo airlock run --jail -- CMD`), which catches every client."
            );
            Ok(ExitCode::FAILURE)
        }
    })();
    if let Some(private) = private {
        private.stop();
    }
    result
}

fn try_probe(probe: &Probe, env: &[(String, String)], scratch: &Path) -> Verdict {
    let url = format!(
        "https://{CANARY_HOST}/airlock-doctor/{}",
        probe.name.replace([' ', '(', ')'], "")
    );
    if let Some((name, content)) = probe.file
        && std::fs::write(scratch.join(name), content).is_err()
    {
        return Verdict::Skipped(format!("cannot write {name}"));
    }
    let args: Vec<String> = probe
        .args
        .iter()
        .map(|a| {
            a.replace("{url}", &url)
                .replace("{dir}", &scratch.display().to_string())
        })
        .collect();
    let mut cmd = Command::new(probe.program);
    cmd.args(&args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        // git must not ask for credentials on a terminal.
        .env("GIT_TERMINAL_PROMPT", "0")
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        return Verdict::Skipped("could not be started".into());
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut said);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut said);
    }
    if status.is_none() {
        return Verdict::Fails(format!(
            "no answer within {} s; it may ignore the proxy variables: run it in a jail",
            TIMEOUT.as_secs()
        ));
    }
    if probe.name == "python (requests)" && said.contains("not installed") {
        return Verdict::Skipped("requests is not installed".into());
    }
    judge(probe, status.and_then(|s| s.code()), &said)
}

/// Whether the output shows airlock's 403, and if not, why and what fixes it.
fn judge(probe: &Probe, code: Option<i32>, said: &str) -> Verdict {
    let lower = said.to_ascii_lowercase();
    // wget reports a server's error status by exit code 8; the others print the 403.
    let saw_403 = said.contains("403") || (probe.program == "wget" && code == Some(8));
    if saw_403 {
        return Verdict::Works;
    }
    let untrusted = [
        "certificate",
        "ssl",
        "tls",
        "self-signed",
        "unable_to_verify",
        "issuer",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if untrusted {
        return Verdict::Fails(format!(
            "it does not trust airlock's CA: {}",
            trust_fix(probe.program)
        ));
    }
    let direct = [
        "enotfound",
        "name or service not known",
        "could not resolve",
        "getaddrinfo",
        "eai_again",
        "nodename nor servname",
        "temporary failure in name resolution",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if direct {
        return Verdict::Fails(format!(
            "it ignores the proxy variables and went direct: {}",
            proxy_fix(probe)
        ));
    }
    let first_line = said
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    Verdict::Fails(format!(
        "it did not reach airlock's canary ({}); run it in a jail (`sudo airlock run --jail -- …`)",
        first_line.chars().take(120).collect::<String>()
    ))
}

fn trust_fix(program: &str) -> &'static str {
    match program {
        "java" => {
            "give Java a trust store with the CA (airlock run does, through JAVA_TOOL_OPTIONS, when keytool is installed)"
        }
        "wget" => "set ca_certificate in a wgetrc (airlock run sets WGETRC)",
        "npm" => "set npm's cafile to the bundle (airlock run sets npm_config_cafile)",
        _ => "point its CA variable at the bundle (see `airlock ca`), or trust the CA system-wide",
    }
}

fn proxy_fix(probe: &Probe) -> &'static str {
    match probe.program {
        "node" => {
            "Node before 22.21 ignores HTTPS_PROXY in fetch and https; use Node 22.21 or later (airlock run sets NODE_USE_ENV_PROXY=1), `airlock run --node-preload` (fetch only), or a jail (`sudo airlock run --jail -- …`)"
        }
        _ => "run it in a jail (`sudo airlock run --jail -- …`), which redirects every connection",
    }
}
