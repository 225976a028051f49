#!/usr/bin/env bash
# Installs Carillon as a systemd service on Debian:
#   /usr/local/bin/carillon                  the binary (profile dist)
#   /etc/carillon/                           the configuration (from config/;
#                                            an existing one is never overwritten;
#                                            on the first install its [sounds]
#                                            dir points at the prompts below)
#   /usr/local/share/carillon/sounds/        the prompts and music on hold (the
#                                            WAV files of sounds/ and its README;
#                                            replaced by every install)
#   /var/lib/carillon/                       state: SQLite database, CDR spool
#   /etc/systemd/system/carillon.service     the unit (deploy/carillon.service)
#   /usr/local/share/doc/carillon/           README.md and deploy/README.md
# and the `carillon` system user that runs it.
#
# Usage (from the repository):
#   sudo deploy/install.sh                   build (cargo build --profile dist) and install
#   sudo CARILLON_BIN=path deploy/install.sh install that binary, do not build
#   DESTDIR=/tmp/stage deploy/install.sh     stage into a directory instead
#                                            (no user, no systemctl; any user)
# Then: systemctl enable --now carillon
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DESTDIR="${DESTDIR:-}"
# Where the prompts go; the installed carillon.toml names this path.
SOUNDS=/usr/local/share/carillon/sounds

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or set DESTDIR to stage the files)" >&2
    exit 2
fi
if [ -z "${CARILLON_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --profile dist -p carillon) >&2
    CARILLON_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/dist/carillon"
fi
[ -x "$CARILLON_BIN" ] || { echo "install.sh: no binary at $CARILLON_BIN" >&2; exit 2; }

# The configuration must be valid before anything is installed.
"$CARILLON_BIN" check-config "$ROOT/config" >&2

if [ -z "$DESTDIR" ] && ! id carillon >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/carillon --no-create-home \
        --shell /usr/sbin/nologin carillon
fi
owner() { if [ -z "$DESTDIR" ]; then chown "$@"; fi; }

install -D -m 0755 "$CARILLON_BIN" "$DESTDIR/usr/local/bin/carillon"
install -D -m 0644 "$ROOT/deploy/carillon.service" "$DESTDIR/etc/systemd/system/carillon.service"
install -D -m 0644 "$ROOT/README.md" "$DESTDIR/usr/local/share/doc/carillon/README.md"
install -D -m 0644 "$ROOT/deploy/README.md" "$DESTDIR/usr/local/share/doc/carillon/deploy.md"

# The prompts: a fresh copy of sounds/ (its WAV files, by language and
# music-on-hold class, and README.md with their sources and licences), so a
# prompt removed from the repository does not linger. Readable by all.
[ -f "$ROOT/sounds/en/goodbye.wav" ] || { echo "install.sh: no prompts in $ROOT/sounds" >&2; exit 2; }
rm -rf "$DESTDIR$SOUNDS.new"
install -d -m 0755 "$DESTDIR$SOUNDS.new"
(cd "$ROOT/sounds" && find . -type d ! -name . -printf '%P\0') |
    while IFS= read -r -d '' d; do install -d -m 0755 "$DESTDIR$SOUNDS.new/$d"; done
(cd "$ROOT/sounds" && find . -type f \( -name '*.wav' -o -name README.md \) -printf '%P\0') |
    while IFS= read -r -d '' f; do install -m 0644 "$ROOT/sounds/$f" "$DESTDIR$SOUNDS.new/$f"; done
rm -rf "$DESTDIR$SOUNDS"
mv "$DESTDIR$SOUNDS.new" "$DESTDIR$SOUNDS"

# users.toml (passwords) and carillon.toml ([ami] secrets): readable by root
# and the service only.
if [ -e "$DESTDIR/etc/carillon/carillon.toml" ]; then
    echo "install.sh: keeping the existing $DESTDIR/etc/carillon" >&2
else
    install -d -m 0750 "$DESTDIR/etc/carillon"
    for f in "$ROOT"/config/*.toml; do
        install -m 0640 "$f" "$DESTDIR/etc/carillon/"
    done
    # The example's paths into the repository's sounds/ (`dir = "sounds"`,
    # `dir = "sounds/moh/default"`) are relative to config/'s parent, which
    # for /etc/carillon is /etc: point them at the installed prompts.
    main="$DESTDIR/etc/carillon/carillon.toml"
    sed -i -E 's#^([[:space:]]*dir[[:space:]]*=[[:space:]]*")sounds(/[^"]*)?"#\1'"$SOUNDS"'\2"#' "$main"
    if ! grep -q '^\[sounds\]' "$main"; then
        printf '\n[sounds]\ndir = "%s"\n' "$SOUNDS" >>"$main"
    fi
    owner -R root:carillon "$DESTDIR/etc/carillon"
fi
install -d -m 0750 "$DESTDIR/var/lib/carillon"
owner carillon:carillon "$DESTDIR/var/lib/carillon"
# Prompts and music on hold, where the example's relative paths
# ("sounds/moh/default") find them: the unit's working directory.
cp -R "$ROOT/sounds" "$DESTDIR/var/lib/carillon/"
owner -R carillon:carillon "$DESTDIR/var/lib/carillon/sounds"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "installed; start it with: systemctl enable --now carillon" >&2
else
    echo "installed under ${DESTDIR:-/}" >&2
fi
