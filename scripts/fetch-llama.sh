#!/usr/bin/env bash
# fetch-llama.sh: provisions the llama.cpp runtime the `llama.cpp` embedder and the GGUF LoRA
# adapter loader build against, into the git-ignored folder third_party/llama/.
#
# What it fetches (pinned; headers and libraries must come from the same release):
#   - @node-llama-cpp/linux-x64@3.21.1: prebuilt CPU shared libraries (libllama, libggml,
#     libggml-base and the run-time-selected libggml-cpu-* variants) -> third_party/llama/lib/
#   - node-llama-cpp@3.21.1: a git bundle of the matching llama.cpp release, from which we take
#     the public headers -> third_party/llama/include/ and the WordPiece test vocabulary with
#     its reference tokenizations -> third_party/llama/models/
# Packages are fetched with `npm pack` only: `npm install` would pull ~730 MB of GPU builds.
# Nothing is compiled. Requires: bash, npm (nodejs), git, tar.
#
# Idempotent: when the stamp of this exact version is present with every expected file, it
# exits at once. Usage: scripts/fetch-llama.sh [--force] [DEST] (DEST defaults to
# <repo>/third_party/llama).
set -euo pipefail

readonly VERSION=3.21.1
readonly LIB_PACKAGE="@node-llama-cpp/linux-x64@${VERSION}"
readonly SRC_PACKAGE="node-llama-cpp@${VERSION}"

force=0
if [[ "${1:-}" == "--force" ]]; then
  force=1
  shift
fi
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-${repo_root}/third_party/llama}"
stamp="${dest}/.fetched-node-llama-cpp-${VERSION}"

expected=(
  lib/libllama.v0.4.0.so lib/libggml.v0.4.0.so lib/libggml-base.so lib/libggml-cpu-x64.so
  include/llama.h include/ggml.h include/ggml-backend.h include/ggml-cpu.h include/gguf.h
  models/ggml-vocab-bert-bge.gguf models/ggml-vocab-bert-bge.gguf.inp
  models/ggml-vocab-bert-bge.gguf.out
)

complete() {
  [[ -f "${stamp}" ]] || return 1
  local f
  for f in "${expected[@]}"; do
    [[ -s "${dest}/${f}" ]] || return 1
  done
}

if [[ ${force} -eq 0 ]] && complete; then
  echo "fetch-llama: node-llama-cpp ${VERSION} already in ${dest}"
  exit 0
fi

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "fetch-llama: the pinned prebuilt libraries are for Linux x86-64 only;" \
       "point -DLLAMA_ROOT at your own llama.cpp build instead" >&2
  exit 1
fi
for tool in npm git tar; do
  command -v "${tool}" >/dev/null || { echo "fetch-llama: '${tool}' is required" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

echo "fetch-llama: npm pack ${LIB_PACKAGE} ${SRC_PACKAGE}"
(cd "${work}" && npm pack --silent "${LIB_PACKAGE}" "${SRC_PACKAGE}" >/dev/null)
lib_tgz="${work}/node-llama-cpp-linux-x64-${VERSION}.tgz"
src_tgz="${work}/node-llama-cpp-${VERSION}.tgz"
for f in "${lib_tgz}" "${src_tgz}"; do
  [[ -s "${f}" ]] || { echo "fetch-llama: npm pack did not produce ${f}" >&2; exit 1; }
done

mkdir -p "${work}/lib" "${work}/src"
tar -xzf "${lib_tgz}" -C "${work}/lib" --wildcards 'package/bins/linux-x64/*.so'
tar -xzf "${src_tgz}" -C "${work}/src" package/llama/gitRelease.bundle \
  package/llama/llama.cpp.info.json
git -c advice.detachedHead=false clone --quiet "${work}/src/package/llama/gitRelease.bundle" \
  "${work}/llama.cpp"

# Assemble in a staging folder, then swap it in, so an interrupted run never leaves a
# half-filled destination that looks complete.
stage="${dest}.staging"
rm -rf "${stage}"
mkdir -p "${stage}/lib" "${stage}/include" "${stage}/models"
cp "${work}"/lib/package/bins/linux-x64/*.so "${stage}/lib/"
cp "${work}"/llama.cpp/include/*.h "${stage}/include/"
cp "${work}"/llama.cpp/ggml/include/*.h "${stage}/include/"
cp "${work}"/llama.cpp/models/ggml-vocab-bert-bge.gguf* "${stage}/models/"
cp "${work}/src/package/llama/llama.cpp.info.json" "${stage}/llama.cpp.info.json"
git -C "${work}/llama.cpp" rev-parse HEAD > "${stage}/llama.cpp.commit"
# Unversioned link names, so `-lllama -lggml` and find_library() work as with any install.
ln -s libllama.v0.4.0.so "${stage}/lib/libllama.so"
ln -s libggml.v0.4.0.so "${stage}/lib/libggml.so"
touch "${stage}/.fetched-node-llama-cpp-${VERSION}"

rm -rf "${dest}"
mkdir -p "$(dirname "${dest}")"
mv "${stage}" "${dest}"

if ! complete; then
  echo "fetch-llama: ${dest} is missing expected files after the fetch" >&2
  exit 1
fi
echo "fetch-llama: node-llama-cpp ${VERSION} (llama.cpp $(cat "${dest}/llama.cpp.commit" | cut -c1-12)) in ${dest}"
