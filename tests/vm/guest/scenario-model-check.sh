# Differential test of pr-target (the model behind pr-helper's emulated backend)
# against LIO: for each seed, pr-model-check plays a random sequence of PR
# commands from the two initiators (/dev/sda and /dev/sdb, one LUN) against the
# device with SG_IO and against an in-process pr-target, and compares status,
# sense and payloads command by command. Deliberate differences (LIO's own
# answers where SPC-4 says otherwise, unit attentions, capability bits) are
# listed, each with its reason, in pr-model-check's check.rs. 300 commands per
# seed take a few seconds under TCG.
. /vm/lib.sh

if ! have_binary pr-model-check; then
    fail binaries "pr-model-check is missing from the initramfs (cargo build --release -p vm-tests)"
    exit 0
fi

count=${MODEL_CHECK_COUNT:-300}
for seed in ${MODEL_CHECK_SEEDS:-1 2 3 4 5 6 7 8 9 10}; do
    reset_reservations
    out=$WORK/model-check-$seed.out
    # The limit only guards against a wedged LUN.
    timeout 60 pr-model-check --seed "$seed" --count "$count" /dev/sda /dev/sdb >"$out" 2>&1
    status=$?
    summary=$(grep '^SUMMARY' "$out" | tail -n 1)
    if [ "$status" = 0 ]; then
        pass "seed-$seed" "$summary"
    else
        fail "seed-$seed" "exit=$status $summary $(grep -v '^SUMMARY' "$out" | head -n 3 | tr '\n' ' ' | cut -c1-600)"
    fi
    # Every mismatch, for the record (at most 20 per seed).
    grep '^MISMATCH' "$out" | head -n 20 | while read -r line; do
        info "mismatch" "$line"
    done
done
reset_reservations
