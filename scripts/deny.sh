#!/usr/bin/env bash
# scripts/deny.sh — the dependency policy in deny.toml, checked with cargo-deny.
#
# Licences (permissive only), bans (no wildcard versions) and sources (crates.io only) are
# checked offline and fail the run. Security advisories need the RustSec database, which
# cargo-deny fetches from GitHub: they are checked when it is reachable, and otherwise the
# script says plainly that they were not.
#
# Installs cargo-deny (pinned, from crates.io: several minutes) when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qF "$version"; then
  echo "deny.sh: installing cargo-deny $version (cargo install, several minutes)"
  # Its release profile asks for fat LTO and one codegen unit, which triples the build on two
  # cores; checking a few hundred crates needs none of that speed.
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    cargo install --locked cargo-deny --version "$version"
fi

cargo deny --log-level error check licenses bans sources

if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "deny.sh: advisories NOT checked: the RustSec database (github.com/rustsec/advisory-db)" \
    "cannot be fetched from this machine"
fi
