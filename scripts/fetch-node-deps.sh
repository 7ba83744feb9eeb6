#!/usr/bin/env bash
# fetch-node-deps.sh: installs the npm packages the dashboard and the API tests use into the
# git-ignored third_party/node (nothing of them is committed):
#   uplot   the dashboard's charts, embedded into pagekeeperd at build time (web/ + vendor/)
#   openai  the official OpenAI client, whose models.list() a test runs against /v1/models
#   ajv     JSON Schema validation of docs/API.md's examples against web/openapi.json
# Versions are pinned. Idempotent: does nothing when the pinned set is already installed, so
# builds and tests work offline once it has run (scripts/setup-debian.sh runs it).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${repo_root}/third_party/node"
packages=(uplot@1.6.32 openai@4.104.0 ajv@8.17.1)

stamp="${dir}/.installed"
if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${packages[*]}" ]]; then
  echo "fetch-node-deps: ${packages[*]} already installed in ${dir}"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-node-deps: npm not found (scripts/setup-debian.sh installs it)" >&2; exit 1; }
mkdir -p "${dir}"
cd "${dir}"
[[ -f package.json ]] || echo '{"name": "pagekeeper-node-deps", "private": true}' >package.json
npm install --no-audit --no-fund --save-exact "${packages[@]}"
echo "${packages[*]}" >"${stamp}"
echo "fetch-node-deps: installed ${packages[*]} in ${dir}"
