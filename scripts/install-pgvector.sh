#!/usr/bin/env bash
# Builds pgvector from Debian's source package for the machine's PostgreSQL and installs it.
# Debian 12 ships no pgvector binary package; the newer release's source (0.8.x) builds
# against postgresql-server-dev-<major> in seconds. Idempotent: exits early when installed.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-$(pg_config --version 2>/dev/null | sed -E 's/[^0-9]*([0-9]+).*/\1/' || true)}"
if [ -z "${PG_MAJOR}" ]; then
  PG_MAJOR=$(ls /usr/lib/postgresql | sort -n | tail -1)
fi
SHAREDIR="/usr/share/postgresql/${PG_MAJOR}/extension"
if [ -f "${SHAREDIR}/vector.control" ] && [ -f "/usr/lib/postgresql/${PG_MAJOR}/lib/vector.so" ]; then
  echo "pgvector already installed for PostgreSQL ${PG_MAJOR}"
  exit 0
fi

SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"

# A deb-src entry for the newer release, pointing at the same archive the machine already uses.
ARCHIVE=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "${ARCHIVE}" ] || ARCHIVE=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
SRC_SUITE="${PGVECTOR_SOURCE_SUITE:-trixie}"
LIST=/etc/apt/sources.list.d/autoembed-pgvector-src.list
echo "deb-src [trusted=yes] ${ARCHIVE} ${SRC_SUITE} main" | ${SUDO} tee "${LIST}" >/dev/null

export DEBIAN_FRONTEND=noninteractive
${SUDO} apt-get update -qq -o Dir::Etc::sourcelist="${LIST}" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >/dev/null
${SUDO} apt-get update -qq >/dev/null || true
${SUDO} apt-get install -y -qq "postgresql-server-dev-${PG_MAJOR}" dpkg-dev make gcc >/dev/null

WORK=$(mktemp -d)
trap 'rm -rf "${WORK}"' EXIT
cd "${WORK}"
apt-get source -qq --download-only pgvector >/dev/null
dpkg-source -x --no-check ./pgvector_*.dsc src >/dev/null
cd src
make -s PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" OPTFLAGS="" >/dev/null
${SUDO} make -s PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" install >/dev/null
echo "pgvector $(grep default_version vector.control | sed -E "s/.*'(.*)'.*/\1/") installed for PostgreSQL ${PG_MAJOR}"
