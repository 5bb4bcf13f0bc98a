#!/usr/bin/env bash
# Debian packages the tests and benchmarks use, and the local PostgreSQL server they talk to.
# Safe to run again: installs only what is missing.
set -euo pipefail
# oathtool: judges OATH codes. freeradius-utils (radclient), pamtester + libpam-radius-auth:
# judge the RADIUS server. slapd + ldap-utils, freeradius: real first-factor backends, and
# FreeRADIUS is the RADIUS benchmark's reference. haproxy: the load balancer of the farm upgrade tests.
# chromium (driven by Playwright, never a downloaded browser), zbar-tools (zbarimg reads QR codes)
# and npm (installs axe-core from scripts/web-tools' lock file): the portal's browser tests.
# lemonldap-ng (with the Perl modules its tool and portal load though Debian only recommends
# them) and plackup: the identity provider the adapter tests register OpenMFA with. nginx:
# the reverse proxy of the forward-auth tests. samba + samba-ad-dc: a real Active Directory domain
# controller (in a network namespace the directory tests make) for directory synchronisation;
# winbind (ntlm_auth) checks MS-CHAPv2 against it. eapoltest (eapol_test): the Wi-Fi supplicant
# that judges the EAP relay (PEAP, EAP-TTLS).
# mmdebstrap, podman, buildah and runc: the container image (scripts/build-image.sh) is built
# from Debian's packages and run by the tests; runc because crun refuses this kind of machine's
# cgroups (docs/container.md).
# valgrind (callgrind): counts the instructions per RADIUS request (./dev bench-radius --callgrind).
# apache2 + libapache2-mod-auth-openidc: a real OpenID Connect relying party that signs people in
# through the portal's provider (tests/e2e/apache_oidc.py runs a private Apache; the Debian
# service itself is never started or configured).
packages=(oathtool wrk freeradius freeradius-utils slapd ldap-utils pamtester libpam-radius-auth haproxy
  chromium zbar-tools fonts-dejavu-core lemonldap-ng libemail-sender-perl libimage-magick-perl
  libplack-perl nginx samba samba-ad-dc winbind eapoltest iproute2 mmdebstrap podman buildah runc
  valgrind apache2 libapache2-mod-auth-openidc exim4-daemon-light)
# npm comes with a Node.js of its own on some machines (then Debian's npm conflicts with it).
command -v npm >/dev/null || packages+=(npm)
need=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-deps: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "system-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
  }
fi
# axe-core, exactly as scripts/web-tools/package-lock.json pins it.
if [ ! -f scripts/web-tools/node_modules/axe-core/axe.min.js ] \
  || [ scripts/web-tools/package-lock.json -nt scripts/web-tools/node_modules/axe-core/axe.min.js ]; then
  echo "system-deps: installing axe-core (npm ci)" >&2
  (cd scripts/web-tools && npm ci --no-audit --no-fund --silent)
  touch scripts/web-tools/node_modules/axe-core/axe.min.js
fi
# PostgreSQL on 127.0.0.1:5432 for the store tests: start the machine's cluster if it is down.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "system-deps: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
