//! Puts the short git revision of the build into `AIRLOCK_GIT_REV`, for `airlock --version`
//! (`airlock X.Y.Z (git <rev>)`). No dependencies: it asks `git` and reads `.git` by hand only
//! to tell cargo which files to watch. Without a repository (a source tarball, a container
//! build whose context leaves `.git` out) or without git, the revision is `unknown`, unless the
//! builder passes `AIRLOCK_GIT_REV` itself.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AIRLOCK_GIT_REV");
    let rev = match std::env::var("AIRLOCK_GIT_REV") {
        Ok(rev) if !rev.trim().is_empty() => rev.trim().to_string(),
        _ => git_rev().unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo:rustc-env=AIRLOCK_GIT_REV={rev}");
}

fn git_rev() -> Option<String> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let dot_git = root.join(".git");
    // Only this crate's own repository: a tarball unpacked inside some other checkout must
    // not report that checkout's revision.
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else {
        // A worktree or a submodule: `.git` is a file saying `gitdir: <path>`.
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let path = text.strip_prefix("gitdir:")?.trim();
        root.join(path)
    };
    watch(&git_dir);
    let out = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let hex = !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_hexdigit());
    (out.status.success() && hex).then_some(rev)
}

/// Reruns the script when HEAD moves: HEAD itself (a checkout), the branch it points to (a
/// commit), and where that branch may live instead (packed-refs; the refs folder, for a
/// branch whose loose file does not exist yet). A worktree's HEAD is in its own git dir, its
/// refs in the common one (named by the `commondir` file).
fn watch(git_dir: &Path) {
    let head = git_dir.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => git_dir.join(rel.trim()),
        Err(_) => git_dir.to_path_buf(),
    };
    let Ok(text) = std::fs::read_to_string(&head) else {
        return;
    };
    let Some(name) = text.strip_prefix("ref:").map(str::trim) else {
        return; // a detached HEAD holds the commit itself
    };
    let packed = common.join("packed-refs");
    if packed.exists() {
        println!("cargo:rerun-if-changed={}", packed.display());
    }
    let loose = common.join(name);
    if loose.exists() {
        println!("cargo:rerun-if-changed={}", loose.display());
    } else if let Some(folder) = loose.parent().filter(|f| f.exists()) {
        println!("cargo:rerun-if-changed={}", folder.display());
    }
}
