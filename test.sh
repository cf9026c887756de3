#!/usr/bin/env bash
# The project's test command: installs what the build and the tests need (on Debian, as root),
# then runs formatting, lints, every test (unit, integration against a real mosquitto, doc
# tests), the docs build with warnings denied, and the offline quickstart.
set -euo pipefail
cd "$(dirname "$0")"

# cmake + a C compiler + OpenSSL headers build Paho C (jobs-paho); mosquitto and openssl serve
# the integration tests; python3 with venv runs the real AWS clients (boto3, the AWS CLI)
# against jobs-service.
packages=(cmake build-essential libssl-dev pkg-config mosquitto openssl python3 python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing packages: ${missing[*]}" >&2
    echo "install them first, e.g.: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

# boto3, the AWS CLI and the AWS IoT device SDK (awsiotsdk) from PyPI, pinned, in a virtual
# environment under target/ (created once; examples/tests/aws_clients.rs finds it through
# JOBS_SERVICE_PYTHON and fails without it).
venv=target/aws-venv
aws_clients=(boto3==1.44.8 awscli==1.46.3 awsiotsdk==1.31.0)
if ! "$venv/bin/python" -c 'import boto3, awscli, awsiot' >/dev/null 2>&1 \
  || [ "$(cat "$venv/requirements" 2>/dev/null)" != "${aws_clients[*]}" ]; then
  rm -rf "$venv"
  mkdir -p target
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir "${aws_clients[@]}"
  echo "${aws_clients[*]}" > "$venv/requirements"
fi
export JOBS_SERVICE_PYTHON="$PWD/$venv/bin/python"

set -x
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo test --workspace --all-features --locked
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --all-features --no-deps --locked
cargo run --locked -q -p examples --bin quickstart >/dev/null
# The job runner's soak in its short mode: devices over mosquitto, the broker killed and
# restarted under them; exits non-zero unless every execution ended exactly once.
cargo run --locked -q -p examples --features paho --bin soak -- --short
# The three library crates as a registry would get them: packaged together, so that each is
# verified against the others' packages (none is published yet), with path-only
# dev-dependencies dropped. `--allow-dirty`: this checks the packages, it publishes nothing,
# and must also pass on a work tree with uncommitted changes.
# Cargo verifies each package against the others' from a temporary local registry, and treats
# what it unpacked and built from there before (same name and version) as up to date. So the
# verification builds in a target directory of its own, and our crates' unpacked sources and
# build fingerprints from an earlier run are removed first (dependencies stay built).
verify_target=target/package-verify
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/jobs-{core,mock,paho}-* \
  "$verify_target"/debug/.fingerprint/jobs-{core,mock,paho}-*
CARGO_TARGET_DIR="$verify_target" \
  cargo package --locked --allow-dirty -q -p jobs-core -p jobs-mock -p jobs-paho
# The benchmark in smoke mode (small counts, no targets judged), so it cannot rot.
cargo run --locked -q -p examples --features paho,rumqttc,bench --bin bench -- --smoke --out target/bench-smoke >/dev/null
