# The lifecycle of one registration and reservation through
# prtool -> pr-helper -> DEVICE, every step cross-checked with sg_persist
# run directly on the device and on SAME_LU (another path of the same
# nexus). Sourced by scenario-lifecycle.sh and scenario-sg-device.sh.

# lifecycle_steps DEVICE SAME_LU INITIATOR_SAS_ADDRESS
lifecycle_steps() {
    local dev=$1 other=$2 sas=$3 key=0xa1

    expect_status read-keys-none 0 prt read-keys "$dev"
    out_lacks read-keys-none-lists-nothing "$key"
    expect_eq sg-keys-none "keys=" "$(sg_keys_only "$dev")"
    local generation_before
    generation_before=$(sg_generation "$dev")

    expect_status register 0 prt register --sa-key "$key" "$dev"
    expect_eq sg-keys-registered "keys=$key" "$(sg_keys_only "$dev")"
    expect_eq sg-keys-registered-other-path "keys=$key" "$(sg_keys_only "$other")"

    expect_status read-keys-one 0 prt read-keys "$dev"
    out_has read-keys-lists-key "$key"
    local generation_after
    generation_after=$(sg_generation "$dev")
    if [ "$generation_after" -gt "$generation_before" ]; then
        pass generation-advanced "$generation_before -> $generation_after"
    else
        fail generation-advanced "$generation_before -> $generation_after"
    fi
    out_has read-keys-shows-generation "generation=0x$(printf '%x' "$generation_after")([^0-9a-f]|$)"
    expect_same_as_sg read-keys-matches-sg_persist read-keys --read-keys "$dev"

    expect_status reserve-we-ro 0 prt reserve --key "$key" --type we-ro "$dev"
    expect_eq sg-reservation-we-ro "key=$key type=Write_Exclusive,_registrants_only" \
        "$(sg_reservation "$dev")"

    expect_status read-reservation 0 prt read-reservation "$dev"
    out_has read-reservation-key "$key"
    out_has read-reservation-type "registrants only.*we-ro"
    expect_same_as_sg read-reservation-matches-sg_persist read-reservation --read-reservation "$dev"

    expect_status report-capabilities 0 prt report-capabilities "$dev"
    expect_same_as_sg report-capabilities-matches-sg_persist report-capabilities \
        --report-capabilities "$dev"

    expect_status read-full-status 0 prt read-full-status "$dev"
    out_has read-full-status-key "$key"
    out_has read-full-status-initiator "SAS address: 0x$sas"
    expect_same_as_sg read-full-status-matches-sg_persist read-full-status \
        --read-full-status "$dev"

    expect_status release 0 prt release --key "$key" --type we-ro "$dev"
    expect_eq sg-reservation-released "none" "$(sg_reservation "$dev")"
    expect_eq sg-still-registered "keys=$key" "$(sg_keys_only "$dev")"

    expect_status clear 0 prt clear --key "$key" "$dev"
    expect_eq sg-keys-cleared "keys=" "$(sg_keys_only "$dev")"
    expect_eq sg-keys-cleared-other-path "keys=" "$(sg_keys_only "$other")"
}
