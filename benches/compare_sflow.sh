#!/usr/bin/env bash
# Sluice beside pmacct's sfacctd and nfdump's sfcapd on the same sFlow v5 stream
# (`sluice-loadgen synth --proto sflow`: flow samples with sampled headers plus counter
# samples, as an Open vSwitch or switch agent sends), at fixed rates. Prints one table:
# samples sent, stored, loss %, samples per collector CPU-second, peak RSS.
#
# Usage: bash benches/compare_sflow.sh [DURATION] [RATES...]
#   DURATION  default 10s per run
#   RATES     datagrams per second, or max; default: max 50000
#
# Same method as benches/compare.sh (collector CPU = user + system time of its process
# tree; loopback only; needs root for receive buffers and apt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
duration=${1:-10s}
shift $(( $# > 1 ? 1 : $# )) || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(max 50000)
exporters=${EXPORTERS:-4}

export DEBIAN_FRONTEND=noninteractive
if ! command -v sfcapd >/dev/null || ! command -v sfacctd >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nfdump-sflow pmacct >/dev/null
fi
sysctl -qw net.core.rmem_max=67108864 net.core.rmem_default=67108864

(cd "$root" && cargo build -q --release -p sluice-ingest -p sluice-loadgen)
sluice=$root/target/release/sluice
loadgen=$root/target/release/sluice-loadgen

work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_tcp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tree() { echo "$1" $(pgrep -P "$1" 2>/dev/null || true); }
cpu_ticks() { local t=0; for p in $(tree "$1"); do [ -r /proc/$p/stat ] && t=$(( t + $(awk '{print $14+$15}' /proc/$p/stat) )); done; echo $t; }
peak_kb() { local m=0; for p in $(tree "$1"); do [ -r /proc/$p/status ] && m=$(( m + $(awk '/VmHWM/{print $2}' /proc/$p/status) )); done; echo $m; }
udp_drops() { local port=$1 hex; hex=$(printf '%04X' "$port"); awk -v h=":$hex" '$2 ~ h"$" {d+=$NF} END {print d+0}' /proc/net/udp /proc/net/udp6; }
hz=$(getconf CLK_TCK)

printf '%-8s %-8s %12s %12s %8s %16s %10s\n' collector rate samples_sent stored loss_% samples/cpu_s peak_MiB
for rate in "${rates[@]}"; do
  for c in sluice sfcapd sfacctd; do
    port=$(free_port); dir=$work/$c-$rate; mkdir -p "$dir"
    case $c in
      sluice)
        mport=$(free_tcp)
        cat > "$dir/sluice.toml" <<TOML
[[listener]]
name = "sflow"
address = "127.0.0.1:$port"
protocol = "sflow"
[receive]
recv_buffer = "64MiB"
[store]
data_dir = "$dir/data"
[metrics]
address = "127.0.0.1:$mport"
TOML
        "$sluice" run --config "$dir/sluice.toml" > "$dir/log" 2>&1 & pid=$! ;;
      sfcapd)
        mkdir -p "$dir/flows"
        sfcapd -w "$dir/flows" -p "$port" -b 127.0.0.1 -B 67108864 -t 3600 > "$dir/log" 2>&1 & pid=$! ;;
      sfacctd)
        cat > "$dir/sfacctd.conf" <<CONF
daemonize: false
sfacctd_ip: 127.0.0.1
sfacctd_port: $port
plugins: print
aggregate: src_host, dst_host, src_port, dst_port, proto, tos, in_iface, out_iface
print_output: csv
print_output_file: $dir/out.csv
print_refresh_time: 3600
CONF
        sfacctd -f "$dir/sfacctd.conf" > "$dir/log" 2>&1 & pid=$! ;;
    esac
    sleep 1.5
    cpu0=$(cpu_ticks $pid)
    metrics=()
    [ $c = sluice ] && metrics=(--metrics "http://127.0.0.1:$mport/metrics")
    "$loadgen" synth --proto sflow --to "127.0.0.1:$port" --rate "$rate" --exporters "$exporters" \
        --sampling 1 --seed 7 --duration "$duration" --json "${metrics[@]}" \
        > "$dir/report.json" 2> "$dir/loadgen.log"
    sleep 2
    cpu1=$(cpu_ticks $pid); peak=$(peak_kb $pid); drops=$(udp_drops "$port")
    sent=$(python3 -c "import json;print(json.load(open('$dir/report.json'))['records'])")
    packets=$(python3 -c "import json;print(json.load(open('$dir/report.json'))['packets'])")
    case $c in
      sluice)
        # Flow samples stored: what the store counted minus the counter samples it also keeps.
        stored=$(python3 -c "import json;c=json.load(open('$dir/report.json'))['collector'];print(int(c['stored_records']-c['decoded_options_records']))")
        kill -TERM $pid; wait $pid || true ;;
      sfcapd)
        kill -TERM $pid; wait $pid || true
        stored=$(sed -n "s/.*Flows: \([0-9]*\),.*/\1/p" "$dir/log" | tail -1)
        stored=${stored:-0} ;;
      sfacctd)
        # sfacctd aggregates in memory: count what it received, from the kernel's drops.
        kill -INT $pid; wait $pid || true
        stored=$(python3 -c "print(round($sent * (1 - $drops / $packets)))") ;;
    esac
    secs=$(python3 -c "print(max(($cpu1-$cpu0)/$hz, 1e-9))")
    python3 - "$c" "$rate" "$sent" "$stored" "$secs" "$peak" <<'PY'
import sys
c, rate, sent, stored, secs, peak = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
loss = 100.0 * (1 - stored / sent) if sent else 0.0
print(f"{c:<8} {rate:<8} {sent:>12} {stored:>12} {loss:>8.2f} {stored/secs:>16.0f} {peak/1024:>10.1f}")
PY
  done
done
