#!/usr/bin/env bash
# Builds the packages into target/packages/: a .deb (cargo-deb) and an .rpm
# (cargo-generate-rpm), installing those tools with cargo if they are missing.
#   packaging/build.sh          build both packages
#   packaging/build.sh --man    regenerate packaging/man/ and packaging/completions/ from the code
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--man" ]; then
    cargo build --locked
    ./target/debug/sectigo-connector man 8 > packaging/man/sectigo-connector.8
    ./target/debug/sectigo-connector man 5 > packaging/man/sectigo-connector.toml.5
    mkdir -p packaging/completions
    ./target/debug/sectigo-connector completions bash > packaging/completions/sectigo-connector.bash
    ./target/debug/sectigo-connector completions zsh > packaging/completions/_sectigo-connector
    ./target/debug/sectigo-connector completions fish > packaging/completions/sectigo-connector.fish
    echo "regenerated packaging/man/ and packaging/completions/"
    exit 0
fi

command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb@3.8.0
command -v cargo-generate-rpm >/dev/null 2>&1 || cargo install --locked cargo-generate-rpm@0.21.1

mkdir -p target/packages
# Without the default `demo` feature: the packaged binary holds no simulator (check.sh checks).
cargo build --release --locked --no-default-features
cargo deb --no-build --locked --output target/packages/
cargo generate-rpm --output target/packages/
ls -l target/packages/
