# Shared by setup-nvmet.sh and the nvme-* scenarios (sourced, busybox sh): the
# names of the NVMe target's subsystem and of the two hosts, and helpers around
# nvme-cli.

NVME_SUBNQN=nqn.2026-12.io.pr-rs:nvme-pr
NVME_HOSTID_A=5001405a-0000-4000-8000-000000000a01
NVME_HOSTID_B=5001405a-0000-4000-8000-000000000a02
NVME_HOSTNQN_A=nqn.2014-08.org.nvmexpress:uuid:$NVME_HOSTID_A
NVME_HOSTNQN_B=nqn.2014-08.org.nvmexpress:uuid:$NVME_HOSTID_B
NVME_A=/dev/nvme0n1
NVME_B=/dev/nvme1n1
# Host A's second controller: another path of host A.
NVME_A2=/dev/nvme2n1

# nvme_state DEV: the target's own view, from nvme-cli's Reservation Report
# (extended data structure) on DEV, as one line:
#   gen=<n> rtype=<NVMe type, 0 none> regs=<host>:<key>:<holder|->,...
# <host> is the last three hex digits of the host ID (a01 or a02), keys hex.
nvme_state() {
    nvme resv-report --eds -o json "$1" 2>&1 | tr -d ' ,"' | awk -F: '
        $1 == "gen" { gen = $2 }
        $1 == "rtype" { rtype = $2 }
        $1 == "rcsts" { holder = ($2 == 1) ? "holder" : "-" }
        $1 == "rkey" { key = sprintf("0x%x", $2) }
        $1 == "hostid" {
            regs = regs (regs == "" ? "" : ",") substr($2, length($2) - 2) ":" key ":" holder
        }
        END { printf "gen=%s rtype=%s regs=%s\n", gen, rtype, regs }'
}

# nvme_write DEV: writes one 4 KiB block with O_DIRECT; prints dd's exit
# status. A write the reservation forbids fails with EBADE ("Invalid
# exchange"), the block layer's reservation-conflict status.
nvme_write() {
    if [ ! -b "$1" ]; then
        echo "no-block-device"
        return
    fi
    dd if=/dev/zero of="$1" bs=4096 count=1 oflag=direct >"$WORK/dd.out" 2>&1
    local status=$?
    if [ "$status" != 0 ] && grep -q 'Invalid exchange' "$WORK/dd.out"; then
        echo conflict
    else
        echo "$status"
    fi
}

# nvme_view DEV: nvme_state without the generation.
nvme_view() {
    nvme_state "$1" | sed 's/^gen=[0-9]* //'
}

# nvme_reset: removes every registration on the namespace: host A registers
# 0x5eed (or replaces its key with it, ignoring the existing one), then clears.
nvme_reset() {
    nvme resv-register -n 1 --nrkey=0x5eed --rrega=0 "$NVME_A" >/dev/null 2>&1 ||
        nvme resv-register -n 1 --nrkey=0x5eed --rrega=2 --iekey "$NVME_A" >/dev/null 2>&1
    nvme resv-release -n 1 --crkey=0x5eed --rrela=1 "$NVME_A" >/dev/null 2>&1
}
