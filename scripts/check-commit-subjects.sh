#!/usr/bin/env bash
# check-commit-subjects.sh: every commit after the project's last long-subject commit has a
# subject of at most 72 characters (git's one-line displays, `git log --oneline`, patch mails
# and shortlogs cut or wrap past that). The detail belongs in the body.
#
#   bash scripts/check-commit-subjects.sh            # commits after the baseline up to HEAD
#   bash scripts/check-commit-subjects.sh --message FILE   # one message (the commit-msg hook)
#
# The history before the baseline is not rewritten; a clone without it (shallow) is not
# checked and says so. `git config core.hooksPath .githooks` runs the same rule on every commit.
set -euo pipefail

readonly max_subject=72
# The last commit whose subject is longer than max_subject; every later one is checked.
readonly baseline=3cf9c8747bb149f6070007cf5d6240788a4c1ede

subject_too_long() {  # subject_too_long SUBJECT
  [ "${#1}" -gt "${max_subject}" ]
}

if [ "${1:-}" = "--message" ]; then
  subject="$(grep -v '^#' "$2" | head -n 1)"
  if subject_too_long "${subject}"; then
    echo "commit subject is ${#subject} characters; at most ${max_subject} (detail in the body):" >&2
    echo "  ${subject}" >&2
    exit 1
  fi
  exit 0
fi

readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! git -C "${repo_root}" cat-file -e "${baseline}^{commit}" 2>/dev/null; then
  echo "check-commit-subjects: baseline ${baseline:0:12} not in this clone (shallow?): not checked"
  exit 0
fi
status=0
checked=0
while IFS= read -r line; do
  checked=$((checked + 1))
  subject="${line#* }"
  if subject_too_long "${subject}"; then
    echo "commit ${line%% *}: subject is ${#subject} characters (at most ${max_subject}): ${subject}" >&2
    status=1
  fi
done < <(git -C "${repo_root}" log --format='%h %s' "${baseline}..HEAD")
echo "check-commit-subjects: ${checked} commits after ${baseline:0:12} checked"
exit "${status}"
