#!/usr/bin/env bash
# run-tests.sh: the project's whole test run, as CI runs it (.ci/run calls exactly this).
#
#   bash scripts/run-tests.sh                 # setup + every configuration below
#   bash scripts/run-tests.sh release tsan    # setup + only these configurations
#
# Configurations (each in its own build directory under $PAGEKEEPER_BUILD_ROOT):
#   release  Release build of everything (tests, benchmarks, tools); ctest, all tests.
#   tidy     clang-tidy (.clang-tidy) over every source file, with the release build's
#            compile database (needs `release`); any finding fails. Also commit subjects of
#            at most 72 characters (scripts/check-commit-subjects.sh).
#   install  the release build installed into a scratch prefix (CMake package, pkg-config,
#            headers), then tests/install/consumer, an outside project, configured with
#            find_package(pagekeeper CONFIG), built and run against it, and the same program
#            built with pkg-config's flags (needs `release`).
#   package  cpack -G DEB from the release build; the .deb unpacked (dpkg-deb -x) into a
#            scratch root must hold pagekeeperd and its systemd unit, and the daemon started
#            from there with the packaged configuration must answer /healthz (needs
#            `release`).
#   threadsafety  clang with -Wthread-safety -Werror=thread-safety: builds the library
#            components and the two programs (no tests, no benchmarks), so an access to a
#            PAGEKEEPER_GUARDED_BY member without its Mutex fails the run.
#   asan     ASan+UBSan (-DPAGEKEEPER_SANITIZE=address), RelWithDebInfo; builds only the
#            tests (target pagekeeper_tests, with the executables they declare); ctest, all.
#   tsan     TSan (-DPAGEKEEPER_SANITIZE=thread), RelWithDebInfo; builds only the tests
#            labelled `concurrent` (target pagekeeper_tests_concurrent); ctest -L concurrent.
#   fuzz     clang + libFuzzer + ASan/UBSan: builds fuzz/ and runs every fuzzer for
#            $PAGEKEEPER_FUZZ_SECONDS on a scratch copy of its seed corpus.
#   demo     the README's main-job command against the release build (needs `release`).
#
# Every configuration runs even when an earlier one failed; the script prints a summary with
# each configuration's time and exits non-zero if any failed. A failing setup stops at once.
#
# Environment:
#   PAGEKEEPER_BUILD_ROOT    build directories' parent (default: <repo>/build-ci)
#   PAGEKEEPER_JOBS          compile jobs (default 2)
#   PAGEKEEPER_CTEST_JOBS    tests run in parallel (default 2)
#   PAGEKEEPER_TEST_TIMEOUT  per-test timeout in seconds (default 300)
#   PAGEKEEPER_FUZZ_SECONDS  time per fuzzer (default 60)
#   PAGEKEEPER_TRACE_DIR     the large ARC traces (P2, P3, P6, P12); tests that need one skip
#                            without it (the OLTP trace is in tests/data)
#   PAGEKEEPER_REQUIRE_TRACES=1  a missing large trace fails its tests instead (.ci/run sets
#                            both)
#   PAGEKEEPER_SKIP_SETUP=1  do not run scripts/setup-debian.sh
set -euo pipefail

readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly script="${repo_root}/scripts/run-tests.sh"
readonly build_root="${PAGEKEEPER_BUILD_ROOT:-${repo_root}/build-ci}"
readonly jobs="${PAGEKEEPER_JOBS:-2}"
readonly ctest_jobs="${PAGEKEEPER_CTEST_JOBS:-2}"
readonly test_timeout="${PAGEKEEPER_TEST_TIMEOUT:-300}"
readonly fuzz_seconds="${PAGEKEEPER_FUZZ_SECONDS:-60}"
readonly all_configs=(release tidy install package threadsafety asan tsan fuzz demo)

# setup-debian.sh installs chromium: the dashboard test must run, not skip.
export PAGEKEEPER_REQUIRE_CHROMIUM=1
export CCACHE_BASEDIR="${repo_root}"
# Sanitizer reports fail the test that triggers them, with a stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=${repo_root}/tests/tsan.supp}"

log() { printf '\n=== run-tests: %s\n' "$*"; }

configure() {  # configure DIR CMAKE_ARGS...
  local dir="$1"
  shift
  cmake -S "${repo_root}" -B "${dir}" -G Ninja "$@"
}

# Builds with ninja's keep-going, so one broken target does not hide the results of the
# others: its tests then fail in ctest as <name>_NOT_BUILT.
build() {  # build DIR [CMAKE_BUILD_ARGS...]
  local dir="$1"
  shift
  cmake --build "${dir}" -j "${jobs}" "$@" -- -k 0
}

# Runs ctest (under the optional runner given as RUNNER... --); on failure, keeps the failed
# tests' names where the summary prints them, since a long log's tail may not show them.
run_ctest() {  # run_ctest DIR [RUNNER... --] CTEST_ARGS...
  local dir="$1"
  shift
  local runner=()
  if [[ " $* " == *" -- "* ]]; then
    while [[ "$1" != "--" ]]; do
      runner+=("$1")
      shift
    done
    shift
  fi
  local status=0
  "${runner[@]}" ctest --test-dir "${dir}" --output-on-failure --no-tests=error \
    --timeout "${test_timeout}" -j "${ctest_jobs}" "$@" || status=$?
  if [[ ${status} -ne 0 && -f "${dir}/Testing/Temporary/LastTestsFailed.log" ]]; then
    cp "${dir}/Testing/Temporary/LastTestsFailed.log" "${build_root}/$(basename "${dir}").failed"
  fi
  return "${status}"
}

config_release() {
  local dir="${build_root}/release"
  configure "${dir}" -DCMAKE_BUILD_TYPE=Release -DPAGEKEEPER_LLAMA=ON
  local status=0
  build "${dir}" || status=$?
  run_ctest "${dir}" || status=$?
  return "${status}"
}

config_threadsafety() {
  local dir="${build_root}/threadsafety"
  configure "${dir}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-Wthread-safety -Werror=thread-safety" \
    -DPAGEKEEPER_BUILD_TESTS=OFF -DPAGEKEEPER_BUILD_BENCH=OFF -DPAGEKEEPER_LLAMA=ON
  build "${dir}" --target pagekeeperd pagekeeper_cli
}

config_asan() {
  local dir="${build_root}/asan"
  configure "${dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEKEEPER_SANITIZE=address \
    -DPAGEKEEPER_BUILD_BENCH=OFF -DPAGEKEEPER_LLAMA=ON
  local status=0
  build "${dir}" --target pagekeeper_tests || status=$?
  run_ctest "${dir}" || status=$?
  return "${status}"
}

config_tsan() {
  local dir="${build_root}/tsan"
  configure "${dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEKEEPER_SANITIZE=thread \
    -DPAGEKEEPER_BUILD_BENCH=OFF -DPAGEKEEPER_LLAMA=ON
  local status=0
  build "${dir}" --target pagekeeper_tests_concurrent || status=$?
  # TSan needs a fixed memory layout; some kernels randomize mmap too much for it.
  local runner=()
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    runner=(setarch "$(uname -m)" -R)
  fi
  run_ctest "${dir}" "${runner[@]}" -- -L concurrent || status=$?
  return "${status}"
}

config_fuzz() {
  local dir="${build_root}/fuzz"
  configure "${dir}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEKEEPER_SANITIZE=address \
    -DPAGEKEEPER_BUILD_FUZZ=ON -DPAGEKEEPER_BUILD_TESTS=OFF -DPAGEKEEPER_BUILD_BENCH=OFF
  build "${dir}" --target pagekeeper_fuzzers
  local fuzzer name corpus count=0
  for fuzzer in "${dir}"/fuzz/*_fuzz; do
    [[ -x "${fuzzer}" ]] || continue
    name="$(basename "${fuzzer}" _fuzz)"
    # Fuzz on a scratch copy: new corpus entries stay out of the source tree.
    corpus="${dir}/corpus/${name}"
    mkdir -p "${corpus}"
    if [[ -d "${repo_root}/fuzz/corpus/${name}" ]]; then
      cp -r "${repo_root}/fuzz/corpus/${name}/." "${corpus}/"
    fi
    log "fuzzing ${name} for ${fuzz_seconds} s"
    (cd "${dir}" && "${fuzzer}" -max_total_time="${fuzz_seconds}" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 "${corpus}")
    count=$((count + 1))
  done
  if [[ ${count} -eq 0 ]]; then
    echo "no fuzzers were built in ${dir}/fuzz" >&2
    return 1
  fi
}

config_tidy() {
  local status=0
  bash "${repo_root}/scripts/clang-tidy.sh" "${build_root}/release" || status=$?
  bash "${repo_root}/scripts/check-commit-subjects.sh" || status=$?
  return "${status}"
}

config_install() {
  local dir="${build_root}/release"
  local prefix="${build_root}/install-prefix"
  local consumer="${build_root}/install-consumer"
  rm -rf "${prefix}" "${consumer}"
  cmake --install "${dir}" --prefix "${prefix}" --component development
  cmake -S "${repo_root}/tests/install/consumer" -B "${consumer}" -G Ninja -DCMAKE_PREFIX_PATH="${prefix}"
  cmake --build "${consumer}"
  "${consumer}/consumer"
  local pc_dir
  pc_dir="$(dirname "$(find "${prefix}" -name pagekeeper.pc -print -quit)")"
  local version
  version="$(PKG_CONFIG_PATH="${pc_dir}" pkg-config --modversion pagekeeper)"
  echo "pkg-config --modversion pagekeeper: ${version}"
  # shellcheck disable=SC2046
  c++ -o "${consumer}/consumer-pkg-config" "${repo_root}/tests/install/consumer/main.cpp" \
    $(PKG_CONFIG_PATH="${pc_dir}" pkg-config --cflags --libs pagekeeper)
  "${consumer}/consumer-pkg-config"
}

config_package() {
  local dir="${build_root}/release"
  local root="${build_root}/package-root"
  rm -rf "${root}" "${dir}"/pagekeeper_*.deb
  (cd "${dir}" && cpack -G DEB)
  local deb
  deb="$(ls "${dir}"/pagekeeper_*.deb)"
  dpkg-deb -x "${deb}" "${root}"
  test -x "${root}/usr/bin/pagekeeperd"
  test -f "${root}/usr/lib/systemd/system/pagekeeperd.service"
  test -f "${root}/etc/pagekeeper/pagekeeperd.toml"
  local port="${PAGEKEEPER_PACKAGE_PORT:-18078}"
  "${root}/usr/bin/pagekeeperd" --config "${root}/etc/pagekeeper/pagekeeperd.toml" \
    --port "${port}" >"${build_root}/package-daemon.log" 2>&1 &
  local pid=$!
  local healthy=1
  for _ in $(seq 150); do
    if curl -fsS "http://127.0.0.1:${port}/healthz"; then
      healthy=0
      break
    fi
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.2
  done
  echo
  kill -TERM "${pid}" 2>/dev/null || true
  wait "${pid}" || true
  if [[ ${healthy} -ne 0 ]]; then
    cat "${build_root}/package-daemon.log" >&2
    echo "package: the unpacked pagekeeperd did not answer /healthz" >&2
  fi
  return "${healthy}"
}

config_demo() {
  local dir="${build_root}/release"
  local output
  output="$(PAGEKEEPER_SKIP_SETUP=1 PAGEKEEPER_DEMO_STOP=1 PAGEKEEPER_PORT="${PAGEKEEPER_DEMO_PORT:-18077}" \
    PAGEKEEPER_BUILD_DIR="${dir}" bash "${repo_root}/scripts/demo.sh")"
  printf '%s\n' "${output}"
  # The demo must index the repository twice through pagekeeperd (the second run all hits)
  # and print the simulator's JSON with the reference OLTP hit ratio.
  python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); assert r["sim"]["hit_ratio"]==32.83, r; assert r["index"]["second"]["hitRatePercent"]==100.0 and r["index"]["second"]["misses"]==0, r' \
    <<<"${output}"
}

# Internal: run one configuration in this (fresh) process, so that `set -e` applies inside it.
if [[ "${1:-}" == "--config" ]]; then
  "config_$2"
  exit 0
fi

configs=("$@")
if [[ ${#configs[@]} -eq 0 ]]; then
  configs=("${all_configs[@]}")
fi
for config in "${configs[@]}"; do
  if ! declare -F "config_${config}" >/dev/null; then
    echo "run-tests: unknown configuration '${config}' (known: ${all_configs[*]})" >&2
    exit 2
  fi
done

started=${SECONDS}
if [[ "${PAGEKEEPER_SKIP_SETUP:-0}" != "1" ]]; then
  log "setup"
  bash "${repo_root}/scripts/setup-debian.sh"
fi
setup_seconds=$((SECONDS - started))

summary=()
failed=0
for config in "${configs[@]}"; do
  log "configuration ${config}"
  begin=${SECONDS}
  status=0
  rm -f "${build_root}/${config}.failed"
  bash "${script}" --config "${config}" || status=$?
  took=$((SECONDS - begin))
  if [[ ${status} -eq 0 ]]; then
    summary+=("$(printf '%-8s PASS  %4d s' "${config}" "${took}")")
  else
    summary+=("$(printf '%-8s FAIL  %4d s  (exit %d)' "${config}" "${took}" "${status}")")
    if [[ -f "${build_root}/${config}.failed" ]]; then
      while IFS= read -r failed_test || [[ -n "${failed_test}" ]]; do
        summary+=("         failed: ${failed_test}")
      done <"${build_root}/${config}.failed"
    fi
    failed=1
  fi
done

printf '\n=== run-tests summary (setup %d s, total %d s)\n' "${setup_seconds}" "$((SECONDS - started))"
printf '%s\n' "${summary[@]}"
exit "${failed}"
