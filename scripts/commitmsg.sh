#!/usr/bin/env bash
# Checks commit messages against the conventions in CONTRIBUTING.md: an imperative subject of
# at most 72 characters with no figures or times in it, a blank line before the body, no bulk
# "snapshot" commits.
#
#   scripts/commitmsg.sh FILE        check one message (the commit-msg hook: .githooks/)
#   scripts/commitmsg.sh --since REV check the subjects of the commits after REV on HEAD
#
# It prints one line per problem and exits 1 when there is one.
set -uo pipefail

problems=0
# check SUBJECT SECOND-LINE WHERE
check() {
  local s=$1 second=$2 where=$3
  if [ ${#s} -gt 72 ]; then
    echo "$where: subject is ${#s} characters, at most 72: \"$s\""; problems=1
  fi
  case "$s" in Merge\ *|Revert\ *|fixup!*|squash!*) return ;; esac
  # Imperative mood is for reviewers; the usual slips are caught here. An optional "pkg: "
  # prefix comes before the verb.
  local w=${s#*: }
  w=${w%% *}
  w=${w^}
  if [[ $w =~ ^(Add|Fix|Updat|Remov|Chang|Mov|Mak|Us|Improv|Refactor|Renam|Replac|Test|Document)(ed|es|s|ing)$ ]]; then
    echo "$where: subject should start with an imperative verb (\"Add\", not \"$w\")"; problems=1
  fi
  if [[ $s =~ [0-9]+(\.[0-9]+)?[[:space:]]?(%|×|(µs|us|ms|ns|s|MiB|KiB|GiB|MB|KB)([^[:alpha:]]|$))|[0-9]{1,2}:[0-9]{2}[[:space:]]?UTC ]]; then
    echo "$where: figures and times go in the body, not the subject: \"$s\""; problems=1
  fi
  if [[ ${s,,} == *snapshot* ]]; then
    echo "$where: no bulk snapshot commits; one logical step per commit"; problems=1
  fi
  if [ -n "$second" ]; then
    echo "$where: leave a blank line between the subject and the body"; problems=1
  fi
}

case "${1:-}" in
--since)
  rev=${2:?usage: commitmsg.sh --since REV}
  git cat-file -e "$rev^{commit}" 2>/dev/null || { echo "commitmsg.sh: $rev is not in this clone; nothing checked"; exit 0; }
  while IFS= read -r c; do
    check "$(git log -1 --format=%s "$c")" "$(git log -1 --format=%B "$c" | sed -n 2p)" "commit ${c:0:7}"
  done < <(git rev-list --no-merges "$rev..HEAD")
  ;;
""|-h|--help)
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
*)
  # A message file as git gives the hook: comment lines are not part of the message.
  msg=$(grep -v '^#' "$1")
  check "$(printf '%s\n' "$msg" | sed -n 1p)" "$(printf '%s\n' "$msg" | sed -n 2p)" "commit message"
  ;;
esac
exit $problems
