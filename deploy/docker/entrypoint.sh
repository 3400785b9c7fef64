#!/bin/sh
# The image's entrypoint: before `airlock start`, publish the CA's certificate (never its key)
# in $AIRLOCK_PUBLISH_CA, for agent containers to mount read-only:
#   airlock-ca.pem  the airlock CA alone (NODE_EXTRA_CA_CERTS, update-ca-certificates)
#   bundle.pem      the system roots plus the airlock CA (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, …)
# The data directory itself stays private (mode 0700, the CA key 0600). `airlock ca --pem`
# generates the CA on the first run and reuses it after. Any other command runs as given.
set -eu
if [ "${1:-}" = start ] && [ -n "${AIRLOCK_PUBLISH_CA:-}" ]; then
    out="$AIRLOCK_PUBLISH_CA"
    airlock ca --pem >"$out/.airlock-ca.pem.tmp"
    cat /etc/ssl/certs/ca-certificates.crt "$out/.airlock-ca.pem.tmp" >"$out/.bundle.pem.tmp"
    chmod 0644 "$out/.airlock-ca.pem.tmp" "$out/.bundle.pem.tmp"
    mv -f "$out/.airlock-ca.pem.tmp" "$out/airlock-ca.pem"
    mv -f "$out/.bundle.pem.tmp" "$out/bundle.pem"
fi
exec airlock "$@"
