#!/bin/sh
# Debian packages the tests and benchmarks drive: chromium (browser tests through Playwright),
# postfix (only for its smtp-sink/smtp-source tools; its daemon is never started),
# spamassassin (offline scoring), wrk (the tracking benchmark's load generator) and
# opendkim-tools (a second, independent DKIM verifier for the signing tests). Installs what is missing when run as root; otherwise says
# what to install, and the tests that need a missing tool skip with that reason.
set -eu
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || missing="$missing postfix"
command -v spamassassin >/dev/null 2>&1 || missing="$missing spamassassin"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v opendkim-testmsg >/dev/null 2>&1 || missing="$missing opendkim-tools"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing system packages:$missing (install them with apt-get as root)." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; "No configuration" keeps its daemon unconfigured.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
