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

# wait_for_path PATH: device nodes appear asynchronously after the connect.
wait_for_path() {
    tries=0
    while [ ! -e "$1" ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 200 ]; then
            echo "$1 did not appear" >&2
            return 1
        fi
        sleep 0.1
    done
}
