#!/usr/bin/env bash
# setup-debian.sh: installs everything pagekeeper needs on a fresh Debian 12 (bookworm)
# machine, then fetches the third-party runtimes that are not Debian packages.
#
# Idempotent: packages already installed are not reinstalled (apt-get is not even called when
# nothing is missing), and scripts/fetch-llama.sh skips what it already fetched.
# Runs apt-get through sudo when not root. Set PAGEKEEPER_SKIP_APT=1 to skip the apt step
# (e.g. on a non-Debian machine that already has the dependencies).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The one list of Debian packages the project needs: build, tests, fuzzing, benchmarks, the
# server's dependencies, and the tools the tests and demos drive. Keep it sorted by purpose
# and extend it here.
packages=(
  # toolchain and build
  build-essential cmake ninja-build ccache pkg-config git
  # clang: libFuzzer targets (fuzz/) need clang and its runtime libraries
  clang libclang-rt-14-dev
  # test and benchmark frameworks
  libgtest-dev libgmock-dev libbenchmark-dev
  # libraries
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libspdlog-dev libxxhash-dev
  libzstd-dev libssl-dev libtomlplusplus-dev liblmdb-dev libhiredis-dev libboost-dev
  # tools used by scripts, tests and benchmarks
  zstd curl ca-certificates python3 nodejs npm wrk redis-server redis-tools lmdb-utils chromium
)

# Packages that other distributions of the same tool satisfy: present when the command is on
# PATH (e.g. NodeSource's nodejs bundles npm and conflicts with Debian's npm package).
declare -A satisfied_by_command=([nodejs]=node [npm]=npm)

installed() {
  local package="$1"
  local command="${satisfied_by_command[${package}]:-}"
  if [[ -n "${command}" ]] && command -v "${command}" >/dev/null; then
    return 0
  fi
  dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for package in "${packages[@]}"; do
  installed "${package}" || missing+=("${package}")
done

if [[ "${PAGEKEEPER_SKIP_APT:-0}" == "1" ]]; then
  echo "setup-debian: skipping apt (PAGEKEEPER_SKIP_APT=1); missing: ${missing[*]:-none}"
elif [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup-debian: all ${#packages[@]} packages already installed"
else
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup-debian: not root and no sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "setup-debian: installing ${missing[*]}"
  # env, not export: sudo resets the environment.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

# Third-party runtimes that Debian does not package (fetched into git-ignored third_party/).
if [[ -f "${repo_root}/scripts/fetch-llama.sh" ]]; then
  bash "${repo_root}/scripts/fetch-llama.sh"
fi
if [[ -f "${repo_root}/scripts/fetch-node-deps.sh" ]]; then
  bash "${repo_root}/scripts/fetch-node-deps.sh"
fi
