// The build script of `edge` and `agent` (included by edge/build.rs and agent/build.rs): sets
// SLUICE_VERSION, what `--version` prints: the crate version and `git describe` of the
// checkout it was built from, or the version alone outside a git checkout (a release tarball,
// `cargo install`).

use std::path::Path;
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let full = match git(&["describe", "--always", "--tags"]) {
        Some(describe) => format!("{version} ({describe})"),
        None => version,
    };
    println!("cargo:rustc-env=SLUICE_VERSION={full}");
    // Described again when HEAD moves: HEAD itself, the branch it names, the packed refs.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            // A path that does not exist would make cargo run this script on every build.
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../scripts/build-version.rs");
}

/// What `git ARGS` printed, trimmed; `None` without git, outside a checkout, or when empty.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}
