#!/usr/bin/env bash
# Checks what packaging/build.sh built, and the unit file:
# - the systemd unit verifies, and its exposure (systemd-analyze security) is 1.5 or lower;
# - lintian reports no errors on the .deb;
# - the .deb and the .rpm hold exactly the files operators rely on, with the right modes,
#   config files marked as such, and maintainer scripts that enable nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "packaging check FAILED: $*" >&2; exit 1; }

echo "-- systemd-analyze verify"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin="$PWD/target/release/sectigo-connector"
[ -x "$bin" ] || bin="$PWD/target/debug/sectigo-connector"
sed "s|/usr/bin/sectigo-connector|$bin|" systemd/sectigo-connector.service > "$tmp/sectigo-connector.service"
for u in sectigo-connector-hooks.service sectigo-connector-hooks.path sectigo-connector-backup.service sectigo-connector-backup.timer; do
  sed "s|/usr/bin/sectigo-connector|$bin|" "systemd/$u" > "$tmp/$u"
done
systemd-analyze verify --man=no "$tmp/sectigo-connector.service" "$tmp/sectigo-connector-hooks.service" "$tmp/sectigo-connector-hooks.path" "$tmp/sectigo-connector-backup.service" "$tmp/sectigo-connector-backup.timer"

echo "-- systemd-analyze security"
score=$(systemd-analyze security --offline=true systemd/sectigo-connector.service 2>&1 | sed -n 's/.*Overall exposure level for sectigo-connector.service: \([0-9.]*\).*/\1/p')
echo "exposure: $score"
[ -n "$score" ] || fail "no exposure score"
awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }' || fail "exposure $score is above 1.5"

echo "-- the packaged binary holds no simulator"
tree=$(cargo tree --locked --offline -e normal --no-default-features -p sectigo-connector --prefix none 2>/dev/null || cargo tree --locked -e normal --no-default-features -p sectigo-connector --prefix none)
# (rcgen is in: key_rotation = "new" makes keys and CSRs with it.)
for crate in sectigo-sim tempfile; do
  if grep -q "^$crate v" <<<"$tree"; then fail "the packaged build depends on $crate"; fi
done
if grep -qa "crates/sim/src" "$bin"; then fail "$bin holds simulator code"; fi
out=$("$bin" demo 2>&1) && fail "the packaged binary runs the demo"
grep -q "this build has no demo" <<<"$out" || fail "demo in the packaged binary says: $out"

deb=$(ls target/packages/*.deb | head -1)
rpm=$(ls target/packages/*.rpm | head -1)

echo "-- lintian $deb"
lintian --fail-on error --suppress-tags statically-linked-binary "$deb" | tee "$tmp/lintian.txt" || fail "lintian reports errors"

echo "-- contents of $deb"
dpkg-deb -c "$deb" | awk '{print $1, $6}' | sed 's|^\(.\{10\}\) \./|\1 /|' > "$tmp/deb.txt"
cat "$tmp/deb.txt"
for want in \
  "-rwxr-xr-x /usr/bin/sectigo-connector" \
  "-rw-r----- /etc/sectigo-connector/connector.toml" \
  "-rw-r----- /etc/sectigo-connector/profiles.d/example.toml" \
  "-rw-r----- /etc/sectigo-connector/profiles.d/example.secret" \
  "-rw-r----- /etc/sectigo-connector/certificates.d/example.toml.example" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector.service" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector-hooks.path" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector-hooks.service" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector-backup.service" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector-backup.timer" \
  "-rw-r--r-- /usr/lib/sysusers.d/sectigo-connector.conf" \
  "-rw-r--r-- /usr/lib/tmpfiles.d/sectigo-connector.conf" \
  "-rw-r--r-- /usr/share/man/man8/sectigo-connector.8.gz" \
  "-rw-r--r-- /usr/share/man/man5/sectigo-connector.toml.5.gz" \
  "-rw-r--r-- /usr/share/bash-completion/completions/sectigo-connector" \
  "-rw-r--r-- /usr/share/zsh/vendor-completions/_sectigo-connector" \
  "-rw-r--r-- /usr/share/fish/vendor_completions.d/sectigo-connector.fish"; do
  grep -qxF -- "$want" "$tmp/deb.txt" || fail "the .deb lacks: $want"
done
dpkg-deb -e "$deb" "$tmp/control"
for f in /etc/sectigo-connector/connector.toml /etc/sectigo-connector/profiles.d/example.toml; do
  grep -qxF "$f" "$tmp/control/conffiles" || fail "$f is not a conffile"
done
grep -q "systemd-sysusers" "$tmp/control/postinst" || fail "postinst does not create the user"
# Nothing is enabled or started on a first install: an enable only re-creates the links of a
# service that was enabled before (upgrade), a restart only happens on upgrade ("$2" set).
awk '/was-enabled/ { guard = 1 } /deb-systemd-helper enable/ && !guard { bad = 1 } /^\t\tfi$|^\tfi$/ { guard = 0 }
     END { exit bad }' "$tmp/control/postinst" || fail "postinst enables the service on install"
if grep -qE "systemctl (enable|start)|deb-systemd-invoke (start|restart) " "$tmp/control/postinst"; then
  fail "postinst starts the service"
fi
grep -q 'if \[ -n "\$2" \]; then' "$tmp/control/postinst" || fail "postinst restarts outside upgrades"

echo "-- contents of $rpm"
rpm -qlpv "$rpm" | awk '{print $1, $NF}' | tee "$tmp/rpm.txt"
for want in \
  "-rwxr-xr-x /usr/bin/sectigo-connector" \
  "-rw-r----- /etc/sectigo-connector/connector.toml" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector.service" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector-hooks.path" \
  "-rw-r--r-- /usr/lib/systemd/system/sectigo-connector-backup.timer" \
  "-rw-r--r-- /usr/share/bash-completion/completions/sectigo-connector" \
  "-rw-r--r-- /usr/lib/sysusers.d/sectigo-connector.conf"; do
  grep -qxF -- "$want" "$tmp/rpm.txt" || fail "the .rpm lacks: $want"
done
# (Not `rpm | grep -q`: with pipefail, grep's early exit can fail the pipeline.)
rpm_conf=$(rpm -qcp "$rpm")
grep -qx /etc/sectigo-connector/connector.toml <<<"$rpm_conf" || fail "connector.toml is not an rpm config file"
echo "packaging checks passed"
