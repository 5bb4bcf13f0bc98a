#!/usr/bin/env bash
# Build the OpenMFA container image from a release's signed offline bundle (docs/container.md).
#   scripts/build-image.sh BUNDLE RELEASE_KEY [TAG]
#   scripts/build-image.sh --base     only step 1; prints the base image's name
# BUNDLE       what `openmfa bundle create --sign-key KEY OUT.tar.gz` made (.tar.gz or folder)
# RELEASE_KEY  the release key's public half (openmfa-release-key-v1:…), or a file holding it
# TAG          the image's name; default localhost/openmfa:VERSION (the bundle's version)
#
# 1. The base: a root filesystem of Debian 12's packages (mmdebstrap, from the Debian mirror of
#    this host's apt sources), kept in $OPENMFA_IMAGE_CACHE under a name made from everything
#    that goes into it, and imported as localhost/openmfa-debian-base:KEY. Nothing comes from a
#    container registry.
# 2. `podman build` with container/Containerfile; the context is a scratch folder holding the
#    bundle, the key and container/'s files.
#
# Environment:
#   PODMAN                 the podman command with its global options (default: podman), e.g.
#                          "podman --storage-driver vfs --runtime runc"
#   PODMAN_BUILD_OPTS      more options for `podman build` (default: --network none: the
#                          install is offline)
#   OPENMFA_IMAGE_CACHE    where base root filesystems are kept
#                          (default: ${XDG_CACHE_HOME:-~/.cache}/openmfa-image)
#   OPENMFA_DEBIAN_SOURCES apt sources for the base (a deb822 .sources or sources.list file, or
#                          a mirror URL); default: /etc/apt/sources.list.d/debian.sources if
#                          there is one, else http://deb.debian.org/debian (with its security)
#   OPENMFA_BASE_MAX_DAYS  make the base again when it is older than this (default 14: it gets
#                          Debian's security updates)
set -euo pipefail
cd "$(dirname "$0")/.."

base_only=no
if [ "${1:-}" = --base ] && [ $# -eq 1 ]; then
  base_only=yes
elif [ $# -lt 2 ] || [ $# -gt 3 ]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
read -r -a podman <<<"${PODMAN:-podman}"
read -r -a build_opts <<<"${PODMAN_BUILD_OPTS:---network none}"
cache="${OPENMFA_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/openmfa-image}"
max_days="${OPENMFA_BASE_MAX_DAYS:-14}"
suite=bookworm
packages=(python3 python3-venv ca-certificates tini)

if [ "$base_only" = no ]; then
  bundle="$1" key="$2" tag="${3:-}"
  [ -e "$bundle" ] || { echo "build-image: no bundle $bundle" >&2; exit 1; }
  if [ -f "$key" ]; then key="$(grep -m1 '^openmfa-release-key-v1:' "$key" || true)"; fi
  case "$key" in
    openmfa-release-key-v1:*) ;;
    *) echo "build-image: give the release key's public half (openmfa-release-key-v1:…)" >&2
       exit 1 ;;
  esac
fi

# --- 1. the base root filesystem, made once for what goes into it -------------------------
if [ -n "${OPENMFA_DEBIAN_SOURCES:-}" ]; then
  sources="$OPENMFA_DEBIAN_SOURCES"
elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sources=/etc/apt/sources.list.d/debian.sources
else
  sources=http://deb.debian.org/debian
fi
mirrors=("$sources")
if [[ "$sources" == *://* ]]; then
  mirrors=("deb $sources $suite main" "deb $sources $suite-updates main"
    "deb ${sources%/debian}/debian-security $suite-security main")
fi
# Documentation, manual pages and translations are left out (each package's copyright stays).
dpkg_opts=(path-exclude=/usr/share/doc/* path-include=/usr/share/doc/*/copyright
  path-exclude=/usr/share/man/* path-exclude=/usr/share/info/* path-exclude=/usr/share/locale/*)
inputs="$suite|minbase|$(dpkg --print-architecture)|${packages[*]}|${dpkg_opts[*]}|"
for m in "${mirrors[@]}"; do
  if [ -f "$m" ]; then inputs+="$(cat "$m")|"; else inputs+="$m|"; fi
done
base_key="$(printf '%s' "$inputs" | sha256sum | cut -c1-16)"
rootfs="$cache/debian-$suite-$base_key.tar.gz"
mkdir -p "$cache"
if [ -f "$rootfs" ] && [ -n "$(find "$rootfs" -mtime "+$max_days")" ]; then
  echo "build-image: the base is older than $max_days days; making it again" >&2
  rm -f "$rootfs"
fi
if [ ! -f "$rootfs" ]; then
  echo "build-image: making the base root filesystem (mmdebstrap $suite: ${packages[*]})" >&2
  made="$(mktemp "$cache/.making-XXXXXX.tar.gz")"
  trap 'rm -f "$made"' EXIT
  include="$(IFS=,; echo "${packages[*]}")"
  mmdebstrap --quiet --variant=minbase --include="$include" \
    "${dpkg_opts[@]/#/--dpkgopt=}" --aptopt='Acquire::Retries "3"' \
    "$suite" "$made" "${mirrors[@]}"
  chmod 0644 "$made"
  mv "$made" "$rootfs"  # whole or not at all: a concurrent build finds one or the other
  trap - EXIT
fi
base="localhost/openmfa-debian-base:$base_key"
if ! "${podman[@]}" image exists "$base"; then
  echo "build-image: importing $rootfs as $base" >&2
  "${podman[@]}" import --quiet \
    --message "Debian $suite (mmdebstrap minbase: ${packages[*]})" "$rootfs" "$base" >/dev/null
fi
if [ "$base_only" = yes ]; then
  echo "$base"
  exit 0
fi

# --- 2. the image ---------------------------------------------------------------------------
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
if [ -d "$bundle" ]; then
  tar -czf "$context/bundle.tar.gz" -C "$(dirname "$bundle")" "$(basename "$bundle")"
else
  cp "$bundle" "$context/bundle.tar.gz"
fi
version="$(tar -xzOf "$context/bundle.tar.gz" --wildcards '*/bundle.json' \
  | sed -n 's/^ *"version": "\([^"]*\)".*/\1/p' | head -n1)"
[ -n "$version" ] || { echo "build-image: $bundle holds no bundle.json" >&2; exit 1; }
printf '%s\n' "$key" >"$context/release-key.pub"
bundle_sha256="$(sha256sum "$context/bundle.tar.gz" | cut -d' ' -f1)"
cp container/Containerfile container/entrypoint.sh container/install-bundle.py "$context/"
tag="${tag:-localhost/openmfa:$version}"
echo "build-image: building $tag from $bundle (OpenMFA $version)" >&2
# --layers=false: no layer cache. A cached RUN step is matched by its text, not by what the
# context mounted into it holds, so another bundle would get the last one's release.
"${podman[@]}" build --layers=false "${build_opts[@]}" --build-arg BASE="$base" \
  --build-arg VERSION="$version" --build-arg BUNDLE_SHA256="$bundle_sha256" \
  --tag "$tag" --file "$context/Containerfile" "$context"
echo "build-image: built $tag" >&2
