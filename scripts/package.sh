#!/usr/bin/env bash
# scripts/package.sh — build the Debian package: target/debian/davit_<version>-1_<arch>.deb
#
# Builds davit in release mode, writes the generated assets (manual page, bash/zsh/fish
# completions) to target/assets/, and runs cargo-deb (installed with `cargo install --locked
# cargo-deb` when missing, and reused when present). Prints the path of the .deb last.
# DAVIT_COMMIT overrides the commit `davit --version` reports (for builds outside git).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -x $HOME/.cargo/bin/cargo ]] && export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo deb --version >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb (cargo install --locked)" >&2
  cargo install --locked cargo-deb >&2
fi

cargo build --release -p davit >&2
bin="$ROOT/target/release/davit"
rm -rf target/assets
mkdir -p target/assets/man
"$bin" man --dir target/assets/man
gzip -9n target/assets/man/*.1
"$bin" completions bash >target/assets/davit.bash
"$bin" completions zsh >target/assets/_davit
"$bin" completions fish >target/assets/davit.fish

# --no-build: the binary above is the one packaged (stripped by cargo-deb).
cargo deb -p davit --no-build 2>&1 | tail -n 1
