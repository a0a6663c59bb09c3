#!/usr/bin/env bash
# Rebuilds docs/replay-report.png and docs/replay-compare.png: the quick start on the simulated
# h100 and b200 profiles, `replay report` and `replay compare` as HTML, captured by headless
# Chromium (Debian: apt-get install chromium). About 5 minutes on 2 cores.
#   bash docs/screenshots.sh            # run both quick starts, then render
#   bash docs/screenshots.sh DIR        # reuse DIR/h100.json and DIR/b200.json
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$(mktemp -d)}
for profile in h100 b200; do
  [ -f "$dir/$profile.json" ] || uv run replay corpus/reference/example.zst --profile "$profile" \
    --no-progress --json "$dir/$profile.json"
done
uv run replay report "$dir/h100.json" --html "$dir/report.html" --force >/dev/null
uv run replay compare "$dir/h100.json" "$dir/b200.json" --name h100 --name b200 \
  --html "$dir/compare.html" --force >/dev/null
shot() {  # shot PAGE PNG HEIGHT
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$dir/profile" --force-device-scale-factor=1 --window-size=1360,"$3" \
    --screenshot="$2" "file://$1" 2>/dev/null
}
shot "$dir/report.html" docs/replay-report.png 2000
shot "$dir/compare.html" docs/replay-compare.png 1150
echo "wrote docs/replay-report.png docs/replay-compare.png (from $dir)"
