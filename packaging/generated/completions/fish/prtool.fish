# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_prtool_global_optspecs
    string join \n k/socket= direct direct-path= json connect-attempts= retry-interval-ms= timeout= h/help V/version
end

function __fish_prtool_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_prtool_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_prtool_using_subcommand
    set -l cmd (__fish_prtool_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c prtool -n "__fish_prtool_needs_command" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_needs_command" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_needs_command" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_needs_command" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_needs_command" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_needs_command" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_needs_command" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_needs_command" -s V -l version -d 'Print version'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "read-keys" -d 'List the registered reservation keys (PR IN READ KEYS)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "read-reservation" -d 'Show the reservation, if any (PR IN READ RESERVATION)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "report-capabilities" -d 'Show what the device supports (PR IN REPORT CAPABILITIES)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "read-full-status" -d 'List every registrant with its port (PR IN READ FULL STATUS)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "register" -d 'Register a key, replace it, or unregister with --sa-key 0 (PR OUT REGISTER)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "register-ignore" -d 'Register a key whatever is registered (PR OUT REGISTER AND IGNORE EXISTING KEY)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "reserve" -d 'Take a reservation (PR OUT RESERVE)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "release" -d 'Give up a reservation (PR OUT RELEASE)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "clear" -d 'Remove every registration and the reservation (PR OUT CLEAR)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "preempt" -d 'Remove another registrant, taking its reservation (PR OUT PREEMPT)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "preempt-abort" -d 'Preempt and abort the victim\'s tasks (PR OUT PREEMPT AND ABORT)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "register-move" -d 'Move the reservation to another initiator port (PR OUT REGISTER AND MOVE)'
complete -c prtool -n "__fish_prtool_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -l alloc-length -d 'ALLOCATION LENGTH to ask for (above 8192 is clamped to 8192 on the way)' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand read-keys" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -l alloc-length -d 'ALLOCATION LENGTH to ask for (above 8192 is clamped to 8192 on the way)' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand read-reservation" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -l alloc-length -d 'ALLOCATION LENGTH to ask for (above 8192 is clamped to 8192 on the way)' -r
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand report-capabilities" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -l alloc-length -d 'ALLOCATION LENGTH to ask for (above 8192 is clamped to 8192 on the way)' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand read-full-status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand register" -l key -d 'The key registered now (0 when not registered)' -r
complete -c prtool -n "__fish_prtool_using_subcommand register" -l sa-key -d 'The new key (0 unregisters)' -r
complete -c prtool -n "__fish_prtool_using_subcommand register" -l transport-id -d 'Also register this initiator port (sets SPEC_I_PT); repeatable. Forms: fc:HEX16, sas:HEX16, iscsi:NAME, iscsi:NAME,i,0xISID' -r
complete -c prtool -n "__fish_prtool_using_subcommand register" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand register" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand register" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand register" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand register" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand register" -l aptpl -d 'Activate persist through power loss (APTPL)'
complete -c prtool -n "__fish_prtool_using_subcommand register" -l all-tg-pt -d 'Register through all target ports (ALL_TG_PT)'
complete -c prtool -n "__fish_prtool_using_subcommand register" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand register" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand register" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l sa-key -d 'The new key (0 unregisters)' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l transport-id -d 'Also register this initiator port (sets SPEC_I_PT); repeatable. Forms: fc:HEX16, sas:HEX16, iscsi:NAME, iscsi:NAME,i,0xISID' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l aptpl -d 'Activate persist through power loss (APTPL)'
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l all-tg-pt -d 'Register through all target ports (ALL_TG_PT)'
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand register-ignore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l key -d 'This initiator\'s registered key' -r
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l type -d 'Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code' -r
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand reserve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand release" -l key -d 'This initiator\'s registered key' -r
complete -c prtool -n "__fish_prtool_using_subcommand release" -l type -d 'Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code' -r
complete -c prtool -n "__fish_prtool_using_subcommand release" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand release" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand release" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand release" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand release" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand release" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand release" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand release" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand clear" -l key -d 'This initiator\'s registered key' -r
complete -c prtool -n "__fish_prtool_using_subcommand clear" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand clear" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand clear" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand clear" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand clear" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand clear" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand clear" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand clear" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l key -d 'This initiator\'s registered key' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l sa-key -d 'The victim\'s key' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l type -d 'Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand preempt" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l key -d 'This initiator\'s registered key' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l sa-key -d 'The victim\'s key' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l type -d 'Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand preempt-abort" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l key -d 'This initiator\'s registered key (the reservation holder\'s)' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l sa-key -d 'The key to register for the destination port' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l type -d 'Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l transport-id -d 'The destination initiator port: fc:HEX16, sas:HEX16, iscsi:NAME or iscsi:NAME,i,0xISID' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l relative-target-port -d 'The destination\'s relative target port identifier' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -s k -l socket -d 'Helper socket to send the command through' -r -F
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l direct-path -d 'With --direct: which way to the device (auto picks by device)' -r -f -a "auto\t'NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR ioctls where the device has no SG_IO'
sg-io\t'SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths)'
pr-ioctls\t'The kernel\'s block-layer PR ioctls (IOC_PR_*), on any block device with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN through the Reservation Report where the kernel has no read ioctls'"
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l connect-attempts -d 'Connection attempts before giving up on the helper' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l retry-interval-ms -d 'Pause between connection attempts, in milliseconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l timeout -d 'SG_IO timeout with --direct, in seconds' -r
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l unreg -d 'Unregister this initiator after the move (UNREG)'
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l aptpl -d 'Activate persist through power loss (APTPL)'
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l direct -d 'Send the command to the device directly (needs privileges): SG_IO on SCSI devices; NVMe reservations on NVMe namespaces and the kernel\'s PR ioctls on block devices without SG_IO, answered as a SCSI device would'
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -l json -d 'Print one JSON object (schema in the README) instead of text'
complete -c prtool -n "__fish_prtool_using_subcommand register-move" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "read-keys" -d 'List the registered reservation keys (PR IN READ KEYS)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "read-reservation" -d 'Show the reservation, if any (PR IN READ RESERVATION)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "report-capabilities" -d 'Show what the device supports (PR IN REPORT CAPABILITIES)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "read-full-status" -d 'List every registrant with its port (PR IN READ FULL STATUS)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "register" -d 'Register a key, replace it, or unregister with --sa-key 0 (PR OUT REGISTER)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "register-ignore" -d 'Register a key whatever is registered (PR OUT REGISTER AND IGNORE EXISTING KEY)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "reserve" -d 'Take a reservation (PR OUT RESERVE)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "release" -d 'Give up a reservation (PR OUT RELEASE)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "clear" -d 'Remove every registration and the reservation (PR OUT CLEAR)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "preempt" -d 'Remove another registrant, taking its reservation (PR OUT PREEMPT)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "preempt-abort" -d 'Preempt and abort the victim\'s tasks (PR OUT PREEMPT AND ABORT)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "register-move" -d 'Move the reservation to another initiator port (PR OUT REGISTER AND MOVE)'
complete -c prtool -n "__fish_prtool_using_subcommand help; and not __fish_seen_subcommand_from read-keys read-reservation report-capabilities read-full-status register register-ignore reserve release clear preempt preempt-abort register-move help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
