#!/usr/bin/env bash
# tests/ops/secret_scan_test.sh SOURCE_DIR CASE: the secret scanning of 003 US11, end to end with
# the real gitleaks (SECHEX_GITLEAKS, exported by ops/test from ops/gitleaks/setup) and the real
# git. Each CASE builds a scratch repository under a temporary folder holding this checkout's
# ops/hooks, ops/gitleaks and .gitleaks.toml, installs the hook with ops/hooks/install (what
# ops/setup runs), and commits there; it never touches SOURCE_DIR's repository. The fake
# credentials are made at run time (random AWS-style key ids, a fresh openssl key), so this file
# holds none and passes the scan of this repository itself. The cases, each a ctest test
# secret_scan.CASE (tests/ops/CMakeLists.txt):
#   hook_refuses_aws_key (FR-042, FR-043, FR-044): a staged AWS access key id is refused, the
#     message names the file, the line and the rule, and no commit is made.
#   hook_refuses_private_key (FR-043, FR-044): the same for a PEM private key block.
#   hook_commits_allowlisted_fixture (FR-045): the same kinds of values under tests/**/testdata
#     commit fine, and one next to them but outside testdata is still refused.
#   hook_fails_closed_without_gitleaks (FR-042): with no gitleaks built the commit is refused,
#     saying to run ops/setup.
#   setup_installs_hook (FR-047): ops/setup installed the hook in this checkout; ops/hooks/install
#     sets core.hooksPath, is a quiet no-op the second time, keeps a developer's own hooks folder,
#     and leaves sources that are not their own work tree alone.
#   ci_scan_finds_secret_in_history (FR-046): ops/gitleaks/scan, the gate of .ci/run, fails on a
#     value committed past the hook (--no-verify) and deleted again, naming file, line, rule and
#     commit; it passes on a clean repository.
set -euo pipefail
src="${1:?usage: secret_scan_test.sh SOURCE_DIR CASE}"
case_name="${2:?usage: secret_scan_test.sh SOURCE_DIR CASE}"
fail() { echo "FAIL ($case_name): $*" >&2; exit 1; }
if [ -z "${SECHEX_GITLEAKS:-}" ]; then
  fail "SECHEX_GITLEAKS is not set: run the tests through ops/test, or export" \
    "SECHEX_GITLEAKS=\"\$(ops/gitleaks/setup)\" first"
fi
[ -x "$SECHEX_GITLEAKS" ] || fail "SECHEX_GITLEAKS=$SECHEX_GITLEAKS is not an executable"
gitleaks="$SECHEX_GITLEAKS"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Only the scratch repositories' own settings: no user or system git config (hooksPath, signing).
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=tester@example.com
# The hook finds gitleaks where ops/setup builds it (build/tools/bin), as on a developer's machine.
unset SECHEX_GITLEAKS

# new_repo DIR [with_gitleaks]: a repository with the project's hook and rules, hook installed.
new_repo() {
  local dir="$1"
  git init -q -b main "$dir"
  mkdir -p "$dir/ops"
  cp -R "$src/ops/hooks" "$src/ops/gitleaks" "$dir/ops/"
  cp "$src/.gitleaks.toml" "$dir/"
  printf '/build/\n' >"$dir/.gitignore"
  if [ "${2:-}" = with_gitleaks ]; then
    mkdir -p "$dir/build/tools/bin"
    ln -s "$gitleaks" "$dir/build/tools/bin/gitleaks"
  fi
  "$dir/ops/hooks/install" 2>/dev/null
  [ "$(git -C "$dir" config core.hooksPath)" = ops/hooks ] || fail "ops/hooks/install did not set core.hooksPath"
  git -C "$dir" add -A
  git -C "$dir" commit -q --no-verify -m "the project's hook and rules"
}
commits() { git -C "$1" rev-list --count HEAD; }
# A fresh AWS-style access key id: AKIA + 16 of [A-Z2-7], entropy well above the rule's 3.
aws_key() { printf 'AKIA%s' "$(head -c 400 /dev/urandom | LC_ALL=C tr -dc 'A-Z2-7' | head -c 16)"; }
# try_commit DIR MESSAGE: commits what is staged, through the hook; output in $out, status in $rc.
try_commit() {
  set +e
  out="$(git -C "$1" commit -q -m "$2" 2>&1)"
  rc=$?
  set -e
}
expect_in_output() {
  grep -qF -- "$1" <<<"$out" || fail "the output does not contain '$1'; it was:"$'\n'"$out"
}

case "$case_name" in
  hook_refuses_aws_key)
    repo="$scratch/repo"
    new_repo "$repo" with_gitleaks
    mkdir -p "$repo/api/app"
    key="$(aws_key)"
    printf '// deploy settings\nconst char* region = "eu-west-1";\nconst char* access_key_id = "%s";\n' \
      "$key" >"$repo/api/app/settings.cc"
    git -C "$repo" add api/app/settings.cc
    try_commit "$repo" "settings"
    [ "$rc" -ne 0 ] || fail "the commit of an AWS access key id was accepted"
    [ "$(commits "$repo")" = 1 ] || fail "a commit was made although the hook refused"
    expect_in_output "the commit is refused"
    expect_in_output "api/app/settings.cc:3:" # the file and the line (FR-044)
    expect_in_output "aws-access-token"       # the secret type, with its description
    expect_in_output "AWS credentials"
    expect_in_output ".gitleaks.toml"         # how to allowlist a false positive (FR-045)
    if grep -qF -- "$key" <<<"$out"; then fail "the message repeats the secret itself"; fi
    ;;
  hook_refuses_private_key)
    repo="$scratch/repo"
    new_repo "$repo" with_gitleaks
    mkdir -p "$repo/deploy"
    { echo "# the service's signing key"; echo; openssl genpkey -algorithm EC \
        -pkeyopt ec_paramgen_curve:P-256 2>/dev/null; } >"$repo/deploy/signing.pem"
    grep -q "BEGIN PRIVATE KEY" "$repo/deploy/signing.pem" || fail "openssl made no key"
    git -C "$repo" add deploy/signing.pem
    try_commit "$repo" "signing key"
    [ "$rc" -ne 0 ] || fail "the commit of a private key was accepted"
    [ "$(commits "$repo")" = 1 ] || fail "a commit was made although the hook refused"
    expect_in_output "deploy/signing.pem:3:" # the BEGIN line
    expect_in_output "private-key"
    ;;
  hook_commits_allowlisted_fixture)
    repo="$scratch/repo"
    new_repo "$repo" with_gitleaks
    mkdir -p "$repo/tests/crypto/testdata"
    printf 'access_key_id = "%s"\n' "$(aws_key)" >"$repo/tests/crypto/testdata/aws_vector.txt"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null \
      >"$repo/tests/crypto/testdata/test_key.pem"
    git -C "$repo" add tests
    try_commit "$repo" "test vectors"
    [ "$rc" -eq 0 ] || fail "the allowlisted fixtures were refused:"$'\n'"$out"
    [ "$(commits "$repo")" = 2 ] || fail "the fixture commit is missing"
    # The allowlist is no blanket: the same key next to the fixtures, outside testdata, is refused.
    printf 'access_key_id = "%s"\n' "$(aws_key)" >"$repo/tests/crypto/aws_vector.txt"
    git -C "$repo" add tests
    try_commit "$repo" "not a fixture"
    [ "$rc" -ne 0 ] || fail "a key outside the allowlisted folder was accepted"
    expect_in_output "tests/crypto/aws_vector.txt:1:"
    ;;
  hook_fails_closed_without_gitleaks)
    repo="$scratch/repo"
    new_repo "$repo" # no build/tools/bin/gitleaks
    echo "harmless" >"$repo/notes.txt"
    git -C "$repo" add notes.txt
    try_commit "$repo" "notes"
    [ "$rc" -ne 0 ] || fail "a commit was accepted although no scan could run"
    [ "$(commits "$repo")" = 1 ] || fail "a commit was made although the hook refused"
    expect_in_output "gitleaks is not built"
    expect_in_output "ops/setup"
    ;;
  setup_installs_hook)
    # ops/test ran ops/setup in this checkout, which must have installed the hook.
    if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1; then
      have="$(git -C "$src" config --local --get core.hooksPath || true)"
      [ "$have" = ops/hooks ] || fail "core.hooksPath of $src is '$have', not ops/hooks: ops/setup" \
        "did not install the hook (run ops/setup; see its message)"
    fi
    repo="$scratch/repo"
    new_repo "$repo" with_gitleaks
    second="$("$repo/ops/hooks/install" 2>&1)"
    [ -z "$second" ] || fail "a second install was not a quiet no-op: $second"
    # A developer's own hooks folder is left alone, with a message saying how to chain ours.
    git -C "$repo" config core.hooksPath .githooks
    msg="$("$repo/ops/hooks/install" 2>&1)"
    [ "$(git -C "$repo" config core.hooksPath)" = .githooks ] || fail "a custom core.hooksPath was overwritten"
    grep -qF "NOT installed" <<<"$msg" || fail "no message about the custom core.hooksPath: $msg"
    # Sources without a .git of their own (a tarball; here one inside the scratch repository):
    # installing changes nothing, neither there nor in the enclosing repository.
    git -C "$repo" config core.hooksPath ops/hooks
    mkdir -p "$repo/vendor/copy/ops" "$scratch/tarball/ops"
    cp -R "$src/ops/hooks" "$repo/vendor/copy/ops/"
    cp -R "$src/ops/hooks" "$scratch/tarball/ops/"
    git -C "$repo" config --unset core.hooksPath
    "$repo/vendor/copy/ops/hooks/install" || fail "install failed inside another repository"
    [ -z "$(git -C "$repo" config core.hooksPath || true)" ] || fail "install configured the enclosing repository"
    (cd "$scratch" && GIT_CEILING_DIRECTORIES="$scratch" "$scratch/tarball/ops/hooks/install") ||
      fail "install failed outside any git work tree"
    ;;
  ci_scan_finds_secret_in_history)
    repo="$scratch/repo"
    new_repo "$repo" with_gitleaks
    export SECHEX_GITLEAKS="$gitleaks"
    "$repo/ops/gitleaks/scan" "$repo" 2>"$scratch/clean.log" ||
      fail "the scan of a clean repository failed: $(cat "$scratch/clean.log")"
    printf 'token\n%s\n' "$(aws_key)" >"$repo/leak.txt"
    git -C "$repo" add leak.txt
    git -C "$repo" commit -q --no-verify -m "leak past the hook"
    leaked="$(git -C "$repo" rev-parse --short=12 HEAD)"
    git -C "$repo" rm -q leak.txt
    git -C "$repo" commit -q --no-verify -m "remove it again (still in the history)"
    set +e
    out="$("$repo/ops/gitleaks/scan" "$repo" 2>&1)"
    rc=$?
    set -e
    [ "$rc" -ne 0 ] || fail "the scan passed a history holding a secret:"$'\n'"$out"
    expect_in_output "leak.txt:2:"
    expect_in_output "aws-access-token"
    expect_in_output "commit $leaked"
    ;;
  *)
    fail "unknown case"
    ;;
esac
echo "PASS ($case_name)"
