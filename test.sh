#!/usr/bin/env bash
# The project's test command: installs what the build and the tests need (on Debian, as root),
# then runs formatting, lints, every test (unit, integration against a real mosquitto, doc
# tests), the docs build with warnings denied, the offline quickstart, the soak, the packaging
# check and the benchmark's smoke run, and ends with a summary: each stage with its time, and
# how many tests passed and failed.
#
# It writes only inside the repository (target/ for the builds, the Python environment and
# the packaging check's private cargo home); packages are installed with apt-get when run as
# root.
set -euo pipefail
cd "$(dirname "$0")"

# cmake + a C compiler + OpenSSL headers build Paho C (jobs-paho); mosquitto and openssl serve
# the integration tests (the jobs-mosquitto-plugin declares the few mosquitto functions it calls
# by hand, so no mosquitto-dev headers); mosquitto-clients (mosquitto_pub, mosquitto_sub) are what
# examples/README.md uses to talk to the control topic; python3 with venv runs the real AWS
# clients (boto3, the AWS CLI) against jobs-service.
packages=(cmake build-essential libssl-dev pkg-config mosquitto mosquitto-clients openssl python3 python3-venv)
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

mkdir -p target
log=target/test-output.log
: > "$log"
stages=()
started_all=$SECONDS
current=""
current_start=0

# The summary, also when a stage fails (then it is the last one listed, marked FAILED).
summary() {
  local status=$?
  set +x
  if [ -n "$current" ]; then
    stages+=("$(printf '  %-28s %5ss  %s' "$current" $((SECONDS - current_start)) "$([ $status -eq 0 ] && echo ok || echo FAILED)")")
  fi
  # cargo test prints one "test result:" line per test binary and doc-test run.
  local passed failed ignored
  read -r passed failed ignored < <(sed -n 's/.*test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$log" |
    awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}')
  echo
  echo "== test.sh summary ($((SECONDS - started_all)) s) =="
  printf '%s\n' "${stages[@]}"
  echo "  (cargo test output: $log)"
  if [ $status -eq 0 ]; then
    echo "all stages passed"
  else
    echo "FAILED in stage: $current"
  fi
  echo "tests: $passed passed, $failed failed, $ignored skipped"
}
trap summary EXIT

# Runs one stage: `stage NAME command…`, timed, its output shown (and kept in the log).
stage() {
  current=$1
  shift
  current_start=$SECONDS
  echo
  echo "== $current =="
  echo "+ $*"
  "$@" 2>&1 | tee -a "$log"
  stages+=("$(printf '  %-28s %5ss  ok' "$current" $((SECONDS - current_start)))")
  current=""
}

# boto3, the AWS CLI and the AWS IoT device SDK (awsiotsdk) from PyPI, pinned, in a virtual
# environment under target/ (created once; jobs-mock/tests/aws_clients.rs finds it through
# JOBS_SERVICE_PYTHON and fails without it).
venv=target/aws-venv
aws_clients=(boto3==1.44.8 awscli==1.46.3 awsiotsdk==1.31.0)
install_python_clients() {
  echo "installing ${aws_clients[*]} into $venv (once; under a minute)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # One line per package as pip goes, not minutes of silence.
  "$venv/bin/pip" install --disable-pip-version-check --no-cache-dir --progress-bar off \
    "${aws_clients[@]}" | grep --line-buffered -E '^(Collecting|Successfully installed)' || true
  "$venv/bin/python" -c 'import boto3, awscli, awsiot'
  echo "${aws_clients[*]}" > "$venv/requirements"
}
if ! "$venv/bin/python" -c 'import boto3, awscli, awsiot' >/dev/null 2>&1 \
  || [ "$(cat "$venv/requirements" 2>/dev/null)" != "${aws_clients[*]}" ]; then
  stage "python environment" install_python_clients
fi
export JOBS_SERVICE_PYTHON="$PWD/$venv/bin/python"

stage "format" cargo fmt --all --check
stage "clippy" cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
stage "tests" cargo test --workspace --all-features --locked
stage "docs" env RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --all-features --no-deps --locked
quickstart() { cargo run --locked -q -p examples --bin quickstart >/dev/null; }
stage "quickstart" quickstart
# The job runner's soak in its short mode: devices over mosquitto, the broker killed and
# frozen under them, crashes, reboots, cancels, timeouts, failing handlers and re-runs; exits
# non-zero unless every execution ended as AWS would end it, each handler call and ending is
# accounted for, and a quarter of the terminal reports happened during outages (about 30 s).
stage "soak (short)" cargo run --locked -q -p examples --features paho --bin soak -- --short
# Its OTA mode, short: devices download a 2 MiB file from jobs-service's object store while
# the broker is killed and frozen and a proxy cuts, refuses and stalls the transfers; exits
# non-zero unless every file arrived whole (byte for byte, SHA-256), no partial file is left,
# every execution SUCCEEDED once and some downloads resumed (about 20 s).
stage "soak (OTA, short)" cargo run --locked -q -p examples --features paho --bin soak -- --ota --short

# The three library crates as a registry would get them: packaged together, so that each is
# verified against the others' packages (none is published yet), with path-only
# dev-dependencies dropped. `--allow-dirty`: this checks the packages, it publishes nothing,
# and must also pass on a work tree with uncommitted changes.
# Cargo verifies each package against the others' from a temporary local registry, unpacks
# them under CARGO_HOME/registry/src, and treats what it unpacked and built there before (same
# name and version) as up to date, so an earlier run's sources would be checked instead of
# today's. The check therefore runs with a cargo home and a target directory of its own
# under target/, whose unpacked sources and our crates' build fingerprints are removed first;
# the crates.io index and downloads are copied from the user's cargo home (read only) when
# there, so nothing is fetched twice. Nothing outside the repository is written.
package_check() {
  local verify=target/package-verify
  local home=$verify/cargo-home
  local user_home=${CARGO_HOME:-$HOME/.cargo}
  mkdir -p "$home/registry"
  for part in index cache; do
    if [ ! -d "$home/registry/$part" ] && [ -d "$user_home/registry/$part" ]; then
      cp -R "$user_home/registry/$part" "$home/registry/$part"
    fi
  done
  rm -rf "$home/registry/src" "$verify"/debug/.fingerprint/jobs-{core,mock,paho}-*
  CARGO_HOME="$home" CARGO_TARGET_DIR="$verify" \
    cargo package --locked --allow-dirty -q -p jobs-core -p jobs-mock -p jobs-paho
}
stage "package" package_check
# The benchmark in smoke mode (small counts, no targets judged), so it cannot rot.
bench_smoke() {
  cargo run --locked -q -p examples --features paho,rumqttc,bench --bin bench -- --smoke \
    --out target/bench-smoke >/dev/null
}
stage "bench (smoke)" bench_smoke
