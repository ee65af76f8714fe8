#!/usr/bin/env bash
# Interleaved A/B of two tessera binaries on one model: per round, each binary runs
# `tessera bench --profile` once; prints the minimum over rounds of the compiled total and
# of each named kernel's median time (µs). Only ratios between the two columns count.
#
#   scripts/ab_profile.sh OLD_BINARY NEW_BINARY MODEL THREADS ROUNDS [KERNEL...]
#   scripts/ab_profile.sh /tmp/tessera-before target/release/tessera \
#       ../shared/models/mnasnet0_5.onnx 1 5 k0_conv k1_conv
set -euo pipefail
if [ $# -lt 5 ]; then
    sed -n 2,8p "$0" >&2
    exit 2
fi
old=$1 new=$2 model=$3 threads=$4 rounds=$5
shift 5
for _ in $(seq "$rounds"); do
    for b in "$old" "$new"; do
        tag=$([ "$b" = "$old" ] && echo old || echo new)
        "$b" bench "$model" --threads "$threads" --runs 10 --warmup 2 --profile 80 2>&1 |
            awk -v b="$tag" '/compiled  /{print b, "total_us", $2 * 1000} $4 ~ /^k[0-9]+_/{print b, $4, $1}'
    done
done | awk -v ks="total_us $*" '
    BEGIN { n = split(ks, K, " "); for (i = 1; i <= n; i++) want[K[i]] = 1 }
    want[$2] { k = $2 SUBSEP $1; if (!(k in m) || $3 < m[k]) m[k] = $3 }
    END {
        printf "%-16s %10s %10s\n", "kernel", "old", "new"
        for (i = 1; i <= n; i++)
            printf "%-16s %10.1f %10.1f\n", K[i], m[K[i] SUBSEP "old"], m[K[i] SUBSEP "new"]
    }'
