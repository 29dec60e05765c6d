#!/bin/sh
# Creates one LUN in the kernel's SCSI target (LIO) and exposes it twice
# through the loopback fabric (tcm_loop): /dev/sda and /dev/sdb (and
# /dev/sg0, /dev/sg1) are the same logical unit seen by two initiators,
# i.e. two I_T nexuses, as two paths of a multipath device would be.
#
#   initiator A: naa.5001405000000a01  ->  target naa.5001405000000f01  ->  /dev/sda
#   initiator B: naa.5001405000000a02  ->  target naa.5001405000000f02  ->  /dev/sdb
#
# Two more nexuses, the second path of each host for the multipath scenarios
# (host A's map is sda + sdc, host B's map sdb + sdd):
#
#   initiator A2: naa.5001405000000a03  ->  target naa.5001405000000f03  ->  /dev/sdc
#   initiator B2: naa.5001405000000a04  ->  target naa.5001405000000f04  ->  /dev/sdd
set -e
# wait_for_path
. /vm/lib.sh

config=/sys/kernel/config/target
backstore=$config/core/fileio_0/disk0

# LIO persists APTPL registrations here; without it REGISTER with APTPL
# fails with NOT READY.
mkdir -p /var/target/pr

# A 16 MiB file-backed backstore.
mkdir -p "$backstore"
echo "fd_dev_name=/tmp/disk0.img,fd_dev_size=16777216" >"$backstore/control"
echo 1 >"$backstore/enable"

# add_path TARGET_WWN INITIATOR_WWN DISK RTPI: one loopback target with LUN 0
# on the backstore and an I_T nexus from the given initiator port.
# RTPI: the target port's RELATIVE TARGET PORT IDENTIFIER. Up to 6.1 LIO
# numbers the ports of a device itself (1, 2, ... in creation order); newer
# kernels make it an attribute of the target portal group (tpgt_1/rtpi) that
# stays 0 on tcm_loop unless written, which gives all four ports the same
# identifier (REGISTER AND MOVE then finds the wrong port). Where the
# attribute exists it is set to the number 6.1 would give.
add_path() {
    tpg=$config/loopback/naa.$1/tpgt_1
    mkdir -p "$tpg/lun/lun_0"
    if [ -e "$tpg/rtpi" ]; then
        echo "$4" >"$tpg/rtpi"
    fi
    echo "naa.$2" >"$tpg/nexus"
    ln -s "$backstore" "$tpg/lun/lun_0/disk0"
    wait_for_path "$3"
}

# One at a time, so that the first path is sda and the second sdb.
add_path 5001405000000f01 5001405000000a01 /dev/sda 1
add_path 5001405000000f02 5001405000000a02 /dev/sdb 2
add_path 5001405000000f03 5001405000000a03 /dev/sdc 3
add_path 5001405000000f04 5001405000000a04 /dev/sdd 4
wait_for_path /dev/sg0
wait_for_path /dev/sg1
wait_for_path /dev/sg2
wait_for_path /dev/sg3

# The first command on a new nexus may report a unit attention (power on
# or reset); consume it now so that no scenario sees it.
for dev in /dev/sda /dev/sdb /dev/sdc /dev/sdd; do
    sg_persist -n --in --read-keys "$dev" >/dev/null 2>&1 || true
    sg_persist -n --in --read-keys "$dev" >/dev/null 2>&1 || true
done
