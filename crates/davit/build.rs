//! Records the commit the binary is built from, for `davit --version` and the
//! `davit_build_info` metric: `DAVIT_COMMIT` from the environment (packagers building from a
//! tarball), else `git rev-parse`, else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DAVIT_COMMIT");
    let commit = std::env::var("DAVIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DAVIT_COMMIT={commit}");
}

fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    };
    // Rebuild when HEAD moves (a commit, a checkout). Only files that exist: cargo would
    // run this again on every build for a missing one.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let mut watch = vec![
            format!("{dir}/HEAD"),
            format!("{dir}/packed-refs"),
            format!("{dir}/refs/heads"),
        ];
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(format!("{dir}/{head}"));
        }
        for file in watch.iter().filter(|f| std::path::Path::new(f).exists()) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
