# Shared by the ops/oidc scripts (sourced, not run). See ops/oidc/README.md.
# shellcheck shell=bash

oidc_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Where `npm ci` installs oidc-provider: outside the tracked tree, shared by every clone. The
# stamp holds the SHA-256 of the package-lock.json the modules were installed from.
oidc_cache="${SECHEX_OIDC_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/sechex/oidc}"
oidc_pkg="$oidc_cache/pkg"
oidc_stamp="$oidc_pkg/.lock-sha256"

olog() { echo "ops/oidc/${oidc_script:-?}: $*" >&2; }
odie() {
  olog "error: $*"
  exit 1
}

# Installs the npm packages of package-lock.json into $oidc_pkg/node_modules unless the stamp
# says they are there (then it runs no npm at all). Concurrent installs wait for each other.
oidc_install() {
  local lock="$oidc_here/package-lock.json" want new major
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  oidc_installed() { [ -f "$oidc_stamp" ] && [ "$(cat "$oidc_stamp")" = "$want" ]; }
  oidc_installed && return 0
  command -v node >/dev/null || odie "node not found (Node.js >= 20 is needed)"
  command -v npm >/dev/null || odie "npm not found (Node.js >= 20 is needed)"
  major="$(node -p 'process.versions.node.split(".")[0]')"
  ((major >= 20)) || odie "Node.js $(node --version) is too old for oidc-provider 9 (>= 20 needed)"
  mkdir -p "$oidc_cache"
  exec 8>"$oidc_cache/.lock"
  flock 8
  if oidc_installed; then # another install finished while we waited
    exec 8>&-
    return 0
  fi
  olog "installing oidc-provider into $oidc_pkg (npm ci)"
  new="$oidc_cache/pkg.new.$$"
  rm -rf "$new"
  mkdir -p "$new"
  cp "$oidc_here/package.json" "$lock" "$new/"
  if ! (cd "$new" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline \
    >"$oidc_cache/install.log" 2>&1); then
    tail -n 40 "$oidc_cache/install.log" >&2
    rm -rf "$new"
    odie "npm ci failed; full log: $oidc_cache/install.log"
  fi
  [ -f "$new/node_modules/oidc-provider/package.json" ] || {
    rm -rf "$new"
    odie "npm ci ran but $new/node_modules/oidc-provider is missing"
  }
  echo "$want" >"$new/.lock-sha256"
  rm -rf "$oidc_pkg"
  mv "$new" "$oidc_pkg"
  exec 8>&-
  olog "oidc-provider $(node -p "require('$oidc_pkg/node_modules/oidc-provider/package.json').version") installed"
}

# Sets oidc_dir (as given) and oidc_args (the other arguments) from "$@".
oidc_parse_dir() {
  oidc_dir=""
  oidc_args=()
  while (($#)); do
    case "$1" in
      --dir) oidc_dir="${2:?--dir needs a directory}"; shift 2 ;;
      --dir=*) oidc_dir="${1#--dir=}"; shift ;;
      *) oidc_args+=("$1"); shift ;;
    esac
  done
  [ -n "$oidc_dir" ] || odie "--dir DIR is required"
}

# Is $1 the pid of a provider.mjs of run dir $2 (guards against a reused pid)?
oidc_pid_is_ours() {
  local pid="$1" dir="$2" cmd
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"/provider.mjs --dir $dir "* ]]
}

oidc_running_pid() {
  local pid=""
  [ -f "$oidc_dir/pid" ] && pid="$(cat "$oidc_dir/pid")"
  if oidc_pid_is_ours "$pid" "$oidc_dir" && oidc_alive "$pid"; then echo "$pid"; fi
}

# Is pid $1 still running (a zombie waiting for its parent to reap it has stopped serving)?
oidc_alive() {
  local state
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Writes a test CA and a server certificate for 127.0.0.1 and localhost into $1, once:
# ca.pem (the CA a relying party must trust), cert.pem + key.pem (the server's). The CA's private
# key is thrown away after signing. EC P-256 keys, SHA-256 signatures; SKI/AKI are set so that
# strict X.509 checkers (Python 3.13's VERIFY_X509_STRICT, for one) accept the chain.
oidc_make_certs() {
  local dir="$1" tmp
  [ -s "$dir/ca.pem" ] && [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] && return 0
  command -v openssl >/dev/null || odie "openssl not found (ops/setup installs it)"
  tmp="$(mktemp -d "$dir/.tls.XXXXXX")"
  cat >"$tmp/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = Sechex test OIDC CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  if ! {
    openssl req -x509 -new -config "$tmp/ca.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -nodes -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" -days 3650 -sha256 &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tmp/key.pem" -out "$tmp/server.csr" -subj "/CN=127.0.0.1" &&
      openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
        -extfile "$tmp/server.ext" -out "$tmp/cert.pem"
  } >"$tmp/openssl.log" 2>&1; then
    cat "$tmp/openssl.log" >&2
    rm -rf "$tmp"
    odie "openssl failed to make the test certificates"
  fi
  chmod 600 "$tmp/key.pem"
  mv "$tmp/key.pem" "$dir/key.pem"
  mv "$tmp/cert.pem" "$dir/cert.pem"
  mv "$tmp/ca.pem" "$dir/ca.pem"
  rm -rf "$tmp"
}
