#!/usr/bin/env bash
# Render a report.html to a PNG with headless Chromium (offline: no network, no GPU, a throw-away profile).
#   bash scripts/screenshot_report.sh runs/compare/report.html runs/compare/report.png [WIDTH] [HEIGHT]
# Chromium: Debian's `apt-get install chromium` (/usr/bin/chromium); CHROMIUM=/path/to/chrome to use another.
set -euo pipefail
html=${1:?usage: screenshot_report.sh REPORT.html OUT.png [WIDTH] [HEIGHT]}
png=${2:?usage: screenshot_report.sh REPORT.html OUT.png [WIDTH] [HEIGHT]}
width=${3:-1280}
height=${4:-2400}
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [[ -z "$chromium" ]]; then
  echo "screenshot_report.sh: no chromium found (apt-get install chromium, or set CHROMIUM=...)" >&2
  exit 3
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$png")"
"$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$(realpath -m "$png")" --window-size="$width,$height" "file://$(realpath "$html")" \
  >"$profile/chromium.log" 2>&1 || { cat "$profile/chromium.log" >&2; exit 1; }
[[ -s "$png" ]] || { echo "screenshot_report.sh: chromium wrote no $png" >&2; cat "$profile/chromium.log" >&2; exit 1; }
echo "$png"
