#!/bin/sh
# The NVMe target (nvmet) with reservations, for the nvme-* scenarios: one
# subsystem over the loop transport whose namespace 1 (a 16 MiB file) has
# reservations enabled, connected twice with two host IDs, i.e. two hosts:
#
#   host A: hostid 5001405a-0000-4000-8000-000000000a01  ->  /dev/nvme0n1 (/dev/ng0n1)
#   host B: hostid 5001405a-0000-4000-8000-000000000a02  ->  /dev/nvme1n1 (/dev/ng1n1)
#   host A's second controller (same host ID)             ->  /dev/nvme2n1
#
# nvmet identifies registrants by host ID, so the two connections are two
# registrants. The guest loads nvme-core with multipath=N (see init): with
# native multipath both controllers would join one namespace head, one block
# device for both hosts.
#
# Exit status: 0 ready; 2 the kernel has no NVMe target reservations (no
# nvmet or nvme-loop, or no resv_enable: before 6.13); 1 anything else failed.
set -e
. /vm/lib.sh
. /vm/nvme-lib.sh

# fabrics_connect HOSTNQN HOSTID: one loop connection through the kernel's
# fabrics interface, as nvme-cli writes it.
fabrics_connect() {
    exec 3<>/dev/nvme-fabrics
    printf 'transport=loop,nqn=%s,hostnqn=%s,hostid=%s,duplicate_connect' \
        "$NVME_SUBNQN" "$1" "$2" >&3
    read -r created <&3
    exec 3>&-
    echo "setup-nvmet: $1 connected through /dev/nvme-fabrics: $created" >&2
}

nvmet=/sys/kernel/config/nvmet
if [ ! -d "$nvmet" ] || [ ! -d /sys/module/nvme_loop ]; then
    echo "setup-nvmet: no nvmet or nvme-loop in this kernel" >&2
    exit 2
fi
subsystem=$nvmet/subsystems/$NVME_SUBNQN
mkdir "$subsystem"
echo 1 >"$subsystem/attr_allow_any_host"
mkdir "$subsystem/namespaces/1"
namespace=$subsystem/namespaces/1
if [ ! -e "$namespace/resv_enable" ]; then
    echo "setup-nvmet: namespaces have no resv_enable (nvmet reservations came with 6.13)" >&2
    exit 2
fi
truncate -s 16M /tmp/nvme0.img
echo -n /tmp/nvme0.img >"$namespace/device_path"
# resv_enable can only be written while the namespace is disabled.
echo 1 >"$namespace/resv_enable"
echo 1 >"$namespace/enable"
mkdir "$nvmet/ports/1"
echo loop >"$nvmet/ports/1/addr_trtype"
ln -s "$subsystem" "$nvmet/ports/1/subsystems/$NVME_SUBNQN"

nvme connect -t loop -n "$NVME_SUBNQN" --hostnqn="$NVME_HOSTNQN_A" --hostid="$NVME_HOSTID_A" >&2
wait_for_path "$NVME_A"
# Debian 12's nvme-cli (2.3) finds host A's loop controller and answers
# "already connected" even with --duplicate-connect (a loop controller has no
# address to tell the two apart). Then the same options go to the kernel's
# fabrics interface directly, as nvme-cli would write them.
if ! nvme connect -t loop -n "$NVME_SUBNQN" --hostnqn="$NVME_HOSTNQN_B" --hostid="$NVME_HOSTID_B" \
    --duplicate-connect >&2; then
    fabrics_connect "$NVME_HOSTNQN_B" "$NVME_HOSTID_B"
fi
wait_for_path "$NVME_B"
# Host A's second controller (the same host ID): two paths of one host, each its
# own namespace node here (multipath=N). nvme-cli refuses it as above.
fabrics_connect "$NVME_HOSTNQN_A" "$NVME_HOSTID_A"
wait_for_path "$NVME_A2"
