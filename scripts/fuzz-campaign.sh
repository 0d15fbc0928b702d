#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (or the ones named) with cargo-fuzz under AddressSanitizer for a
# fixed number of executions each, and writes a table of executions and coverage per target.
#
# cargo-fuzz needs unstable compiler flags (`-Zsanitizer=address`, the coverage instrumentation);
# `RUSTC_BOOTSTRAP=1` lets the stable toolchain take them, so no nightly toolchain is needed. The
# fuzzers run under `nice -n 19`: on a shared machine they only take idle CPU.
#
# Usage: scripts/fuzz-campaign.sh [--runs N] [--max-time SECONDS] [--out DIR]
#                                 [--sanitizer address|none] [TARGET]...
#   (no target names: every target `cargo fuzz list` names)
#
#   --runs N          executions per target (default 10000000)
#   --max-time S      stop a target after S seconds even before N executions (default 0: no limit)
#   --out DIR         where corpora, findings, logs and the table go (default target/fuzz-campaign)
#   --sanitizer S     `address` (default) or `none`: without AddressSanitizer the targets run
#                     several times faster (docs/fuzzing.md has the figures). The code under test
#                     forbids `unsafe`, so ASan can only catch a memory error inside a
#                     dependency; `none` keeps the coverage guidance, the panics, the timeouts and
#                     the memory limit. Each sanitizer builds into its own target directory.
#
# For each target, libFuzzer starts from the committed seeds (fuzz/corpus/<target>, never written
# to) and the campaign's own corpus (DIR/corpus/<target>, which keeps the inputs it finds, so a
# second campaign goes on where the first stopped). A failing input is saved as
# DIR/artifacts/<target>/crash-... (or leak-, timeout-, oom-); replay it with
# `cargo fuzz run <target> <file>` in fuzz/, and keep it as a regression input in
# fuzz/corpus/<target>/ and as a unit test beside the parser (fuzz/README.md).
#
# Writes DIR/summary.md (also printed): per target the executions, the speed, libFuzzer's `cov`
# (coverage points: edges of the instrumented code reached) and `ft` (features: edges with hit
# counts and comparisons), the corpus size, the time taken and the outcome. Exits 1 when any
# target found something, 2 on a usage error.
#
# Installs nothing: needs `cargo fuzz` (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=10000000
max_time=0
out=target/fuzz-campaign
sanitizer=address
targets=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --runs)
      runs=${2:?--runs needs a number}
      shift 2
      ;;
    --max-time)
      max_time=${2:?--max-time needs a number of seconds}
      shift 2
      ;;
    --out)
      out=${2:?--out needs a directory}
      shift 2
      ;;
    --sanitizer)
      sanitizer=${2:?--sanitizer needs address or none}
      case "$sanitizer" in
        address | none) ;;
        *)
          echo "error: unknown sanitizer \`$sanitizer\` (expected address or none)" >&2
          exit 2
          ;;
      esac
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "error: unknown option \`$1\` (expected --runs, --max-time, --out or --sanitizer)" >&2
      exit 2
      ;;
    *)
      targets+=("$1")
      shift
      ;;
  esac
done
for number in "$runs" "$max_time"; do
  case "$number" in
    '' | *[!0-9]*)
      echo "error: \`$number\` is not a whole number" >&2
      exit 2
      ;;
  esac
done
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz is not installed" >&2
  echo >&2
  echo "hint: cargo install cargo-fuzz" >&2
  exit 2
fi

export RUSTC_BOOTSTRAP=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
fuzz_dir=$(pwd)/fuzz

cd "$fuzz_dir"
mapfile -t known < <(cargo fuzz list)
[ "${#targets[@]}" -gt 0 ] || targets=("${known[@]}")
for target in "${targets[@]}"; do
  if ! printf '%s\n' "${known[@]}" | grep -qx -- "$target"; then
    echo "error: no fuzz target \`$target\` (see \`cargo fuzz list\` in fuzz/)" >&2
    exit 2
  fi
done

# cargo-fuzz builds into fuzz/target whatever the flags; a second sanitizer there would rebuild
# everything on every switch, so `none` gets a directory of its own.
target_dir=()
[ "$sanitizer" = address ] || target_dir=(--target-dir "$fuzz_dir/target-$sanitizer")
echo "building with sanitizer $sanitizer (log: $out/build.log)" >&2
# `cargo fuzz build` takes one target or builds them all.
build_only=()
[ "${#targets[@]}" -ne 1 ] || build_only=("${targets[0]}")
if ! nice -n 19 cargo fuzz build --sanitizer "$sanitizer" "${target_dir[@]}" "${build_only[@]}" >"$out/build.log" 2>&1; then
  tail -20 "$out/build.log" >&2
  exit 1
fi

summary=$out/summary.md
{
  echo "| target | executions | exec/s | cov | ft | corpus | seconds | outcome |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
} >"$summary"
found=0
for target in "${targets[@]}"; do
  corpus=$out/corpus/$target
  artifacts=$out/artifacts/$target
  log=$out/logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$out/logs"
  echo "fuzzing $target ($runs executions)" >&2
  started=$(date +%s)
  status=0
  nice -n 19 cargo fuzz run --sanitizer "$sanitizer" "${target_dir[@]}" "$target" "$corpus" "corpus/$target" -- \
    -runs="$runs" -max_total_time="$max_time" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  seconds=$(($(date +%s) - started))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  progress=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: [0-9]+' | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$progress")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$progress")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$progress")
  if [ "$status" -eq 0 ]; then
    outcome="no finding"
  else
    found=1
    artifact=$(find "$artifacts" -type f -newermt "@$started" -printf '%f\n' | head -1)
    outcome="**finding** (exit $status${artifact:+, \`$artifact\`})"
  fi
  echo "| \`$target\` | ${executions:-?} | ${speed:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $seconds | $outcome |" >>"$summary"
done
cat "$summary"
exit "$found"
