#!/usr/bin/env bash
# Sluice beside nfdump's nfcapd and pmacct's nfacctd, on the same `sluice-loadgen replay`
# stream, at the loadgen's full rate and at fixed rates. Prints one table: records sent,
# stored, loss %, records per collector CPU-second, peak RSS.
#
# Usage: bash benches/compare.sh [CAPTURE] [DURATION] [RATES...]
#   CAPTURE   default ../shared/captures/generated/pmacctd_nfprobe_v9.pcap (pmacct nfprobe,
#             what EdgeOS and VyOS run)
#   DURATION  default 10s per run
#   RATES     datagrams per second, or max; default: max 100000 50000
#
# On loopback the sender does the kernel's receive work and both share the 2 cores, so the
# figures that count are the collector's own CPU seconds and its loss. Needs root (receive
# buffers, apt). Loopback only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
capture=${1:-$root/../shared/captures/generated/pmacctd_nfprobe_v9.pcap}
duration=${2:-10s}
shift $(( $# > 2 ? 2 : $# )) || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(max 100000 50000)
exporters=${EXPORTERS:-4}
# COLLECTORS="sluice" runs Sluice alone; SLUICE_STORE_ENRICH=false turns off the store's
# enrichment columns (the default keeps them); SLUICE_WORKERS sets its receive threads
# (default 0: one per core).
collectors=(${COLLECTORS:-sluice nfcapd nfacctd})

export DEBIAN_FRONTEND=noninteractive
if ! command -v nfcapd >/dev/null || ! command -v nfacctd >/dev/null || ! command -v nfdump >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nfdump pmacct >/dev/null
fi
# Same receive buffers for everyone: 64 MiB allowed, and asked for by each collector.
sysctl -qw net.core.rmem_max=67108864 net.core.rmem_default=67108864

(cd "$root" && cargo build -q --release -p sluice-ingest -p sluice-loadgen)
# SLUICE_BIN: another sluice binary to run (an older build, say, for a before/after pair).
sluice=${SLUICE_BIN:-$root/target/release/sluice}
loadgen=$root/target/release/sluice-loadgen

work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_tcp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# CPU ticks (utime+stime) and peak RSS (kB) of a process and its children.
tree() { echo "$1" $(pgrep -P "$1" 2>/dev/null || true); }
cpu_ticks() { local t=0; for p in $(tree "$1"); do [ -r /proc/$p/stat ] && t=$(( t + $(awk '{print $14+$15}' /proc/$p/stat) )); done; echo $t; }
peak_kb() { local m=0; for p in $(tree "$1"); do [ -r /proc/$p/status ] && m=$(( m + $(awk '/VmHWM/{print $2}' /proc/$p/status) )); done; echo $m; }
udp_drops() { local port=$1 hex; hex=$(printf '%04X' "$port"); awk -v h=":$hex" '$2 ~ h"$" {d+=$NF} END {print d+0}' /proc/net/udp /proc/net/udp6; }
hz=$(getconf CLK_TCK)

printf '%-8s %-8s %12s %12s %8s %16s %10s\n' collector rate records_sent stored loss_% records/cpu_s peak_MiB
for rate in "${rates[@]}"; do
  for c in "${collectors[@]}"; do
    port=$(free_port); dir=$work/$c-$rate; mkdir -p "$dir"
    case $c in
      sluice)
        mport=$(free_tcp)
        cat > "$dir/sluice.toml" <<TOML
[[listener]]
name = "netflow"
address = "127.0.0.1:$port"
protocol = "netflow"
[receive]
recv_buffer = "64MiB"
workers = ${SLUICE_WORKERS:-0}
[store]
data_dir = "$dir/data"
enrich = ${SLUICE_STORE_ENRICH:-true}
[metrics]
address = "127.0.0.1:$mport"
TOML
        "$sluice" run --config "$dir/sluice.toml" > "$dir/log" 2>&1 & pid=$! ;;
      nfcapd)
        mkdir -p "$dir/flows"
        nfcapd -w "$dir/flows" -p "$port" -b 127.0.0.1 -B 67108864 -t 3600 > "$dir/log" 2>&1 & pid=$! ;;
      nfacctd)
        cat > "$dir/nfacctd.conf" <<CONF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $port
nfacctd_pipe_size: 67108864
plugins: print
aggregate: src_host, dst_host, src_port, dst_port, proto, tos, in_iface, out_iface, timestamp_start, timestamp_end
print_output: csv
print_output_file: $dir/out.csv
print_refresh_time: 3600
CONF
        nfacctd -f "$dir/nfacctd.conf" > "$dir/log" 2>&1 & pid=$! ;;
    esac
    sleep 1.5
    cpu0=$(cpu_ticks $pid)
    metrics=()
    [ $c = sluice ] && metrics=(--metrics "http://127.0.0.1:$mport/metrics")
    "$loadgen" replay "$capture" --to "127.0.0.1:$port" --rate "$rate" --exporters "$exporters" \
        --duration "$duration" --json "${metrics[@]}" > "$dir/report.json" 2> "$dir/loadgen.log"
    sleep 2
    cpu1=$(cpu_ticks $pid); peak=$(peak_kb $pid); drops=$(udp_drops "$port")
    sent=$(python3 -c "import json;print(json.load(open('$dir/report.json'))['records'])")
    packets=$(python3 -c "import json;print(json.load(open('$dir/report.json'))['packets'])")
    case $c in
      sluice)
        stored=$(python3 -c "import json;print(int(json.load(open('$dir/report.json'))['collector']['stored_records']))")
        kill -TERM $pid; wait $pid || true ;;
      nfcapd)
        # nfcapd prints what it stored when it exits: "Ident: 'none' Flows: N, ...".
        kill -TERM $pid; wait $pid || true
        stored=$(sed -n "s/.*Flows: \([0-9]*\),.*/\1/p" "$dir/log" | tail -1)
        stored=${stored:-0} ;;
      nfacctd)
        # nfacctd aggregates in memory (identical flows of every loop merge), so its output
        # line count is not comparable: count what it received, from the kernel's drops.
        # pmacct daemons stop (and flush) on SIGINT.
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
