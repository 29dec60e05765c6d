. /vm/lib.sh
expect_eq keys-empty "gen=0x0 keys=" "$(sg_keys /dev/sda)"
sg_persist -n --in --read-full-status /dev/sda
