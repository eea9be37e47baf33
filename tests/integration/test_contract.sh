#!/usr/bin/env bash
# tests/integration/test_contract.sh - data contracts through the real binary.
#
#   1. `sluice contract check OLD NEW`: exact output lines and exit codes for a backward
#      break, a compatible widening (and the same widening under --mode forward/full),
#      --json, usage errors and a contract that does not load (exit 2, file and place).
#   2. `sluice contract show`: name, version and fields.
#   3. A pipeline file -> validate -> file sink run with --once, once per on_invalid:
#        dlq   the valid records come out exactly; the invalid ones are in the DLQ with
#              error class "contract", rule, path, expected, actual and every violation;
#        drop  the same output, nothing in the DLQ, the invalid records counted filtered;
#        fail  exit 1 and a message naming the input line and its violations.
#
# Needs $SLUICE (the binary), $SLUICE_SRC and jq.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'; build it (make debug) or set SLUICE"
command -v jq >/dev/null || fail "jq is needed; run scripts/deps.sh"

COMPAT=$SLUICE_SRC/tests/data/contracts/compat
tmpdir T
cd "$T" || fail "cannot enter $T"

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

# ---- 1. contract check -------------------------------------------------------------------

note "contract check"
run_sluice contract check "$COMPAT/add_required/old.json" "$COMPAT/add_required/new.json"
assert_rc 1
assert_eq "check add_required" \
    'click_event@1 -> click_event@2: 2 changes
  $.b: property added; OLD rejects data carrying it (breaks forward)
  $.b: property became required (breaks backward)
NOT compatible in mode backward: 1 of the changes breaks it' "$(cat "$RUN_STDOUT")"

run_sluice contract check "$COMPAT/widen_type/old.json" "$COMPAT/widen_type/new.json"
assert_rc 0
assert_eq "check widen_type" \
    'click_event@1 -> click_event@2: 1 change
  $.amount: type widened from number to [number, null] (breaks forward)
compatible in mode backward' "$(cat "$RUN_STDOUT")"

run_sluice contract check "$COMPAT/widen_type/old.json" "$COMPAT/widen_type/new.json" --mode forward
assert_rc 1
assert_eq "check widen_type forward" 'NOT compatible in mode forward: 1 of the changes breaks it' \
    "$(tail -n 1 "$RUN_STDOUT")"
run_sluice contract check --mode=full "$COMPAT/identical/old.json" "$COMPAT/identical/new.json"
assert_rc 0
assert_eq "check identical full" 'click_event@1 -> click_event@2: 0 changes
compatible in mode full' "$(cat "$RUN_STDOUT")"

run_sluice contract check "$COMPAT/enum_change/old.json" "$COMPAT/enum_change/new.json" --json
assert_rc 1
assert_eq "check --json" \
    '{"changes":[{"breaks":["backward"],"path":"$.e","reason":"allowed value \"c\" removed"},{"breaks":["forward"],"path":"$.e","reason":"allowed value \"d\" added"}],"compatible":false,"mode":"backward","new":"click_event@2","old":"click_event@1"}' \
    "$(jq -S -c . "$RUN_STDOUT")"

run_sluice contract check --help
assert_rc 0
assert_file_contains "$RUN_STDOUT" "check OLD.json NEW.json [--mode backward|forward|full] [--json]"
run_sluice contract check "$COMPAT/identical/old.json"
assert_rc 2
assert_file_contains "$RUN_STDERR" "sluice contract check: expected two contract files (OLD NEW), got 1 file"
run_sluice contract check a.json b.json --mode sideways
assert_rc 2
assert_file_contains "$RUN_STDERR" 'sluice contract check: --mode must be backward, forward or full, not "sideways"'
run_sluice contract check a.json b.json --frobnicate
assert_rc 2
assert_file_contains "$RUN_STDERR" "sluice contract check: unknown option --frobnicate"
run_sluice contract fix a.json
assert_rc 2
assert_file_contains "$RUN_STDERR" 'sluice contract: unknown command "fix"; the commands are check and show'

cat >bad.json <<'EOF'
{"$id": "bad", "version": 1,
 "properties": {"user": {"oneOf": [{"type": "string"}]}}}
EOF
run_sluice contract check bad.json "$COMPAT/identical/new.json"
assert_rc 2
assert_file_contains "$RUN_STDERR" 'sluice contract check: bad.json: #/properties/user/oneOf: keyword "oneOf" is not supported by sluice contracts'
run_sluice contract check missing.json "$COMPAT/identical/new.json"
assert_rc 2
assert_file_contains "$RUN_STDERR" "sluice contract check: cannot open contract missing.json: No such file or directory"

# ---- 2. contract show --------------------------------------------------------------------

note "contract show"
cat >click.json <<'EOF'
{
  "$id": "click_event",
  "version": "3",
  "type": "object",
  "required": ["event_id", "amount"],
  "properties": {
    "event_id": {"type": "string", "pattern": "^e-[0-9]{8}$"},
    "user_id": {"type": "integer", "minimum": 1},
    "amount": {"type": ["number", "null"], "minimum": 0},
    "device": {
      "type": "object",
      "properties": {"os": {"enum": ["ios", "android", "linux"]}},
      "additionalProperties": false
    }
  },
  "additionalProperties": false
}
EOF
run_sluice contract show click.json
assert_rc 0
assert_eq "show" 'contract click_event, version 3 (click.json)
  event_id  string    required
  user_id   integer
  amount    number    required  nullable
  device    object' "$(cat "$RUN_STDOUT")"
run_sluice contract show click.json --json
assert_rc 0
assert_eq "show --json" \
    '{"fields":[{"name":"event_id","nullable":false,"required":true,"type":"string"},{"name":"user_id","nullable":false,"required":false,"type":"integer"},{"name":"amount","nullable":true,"required":true,"type":"number"},{"name":"device","nullable":false,"required":false,"type":"object"}],"name":"click_event","version":"3"}' \
    "$(jq -S -c . "$RUN_STDOUT")"

# ---- 3. a pipeline with the validate transform -------------------------------------------

mkdir -p data
cat >data/in.ndjson <<'EOF'
{"event_id":"e-00000001","user_id":7,"amount":19.99,"device":{"os":"ios"}}
{"event_id":"e-00000002","user_id":8,"amount":"12a"}
{"event_id":"e-00000003","amount":null}
{"event_id":"x","user_id":0,"amount":-1,"device":{"os":"beos","model":"be"},"extra":true}
{"event_id":"e-00000005","user_id":9,"amount":5,"device":{"os":"linux"}}
{"user_id":10}
EOF
cat >expected.ndjson <<'EOF'
{"event_id":"e-00000001","user_id":7,"amount":19.99,"device":{"os":"ios"}}
{"event_id":"e-00000003","amount":null}
{"event_id":"e-00000005","user_id":9,"amount":5,"device":{"os":"linux"}}
EOF

pipeline() { # pipeline ON_INVALID
    cat >p.yaml <<EOF
pipeline: contract_test
state_dir: state
sources:
  clicks: {type: file, path: data/in.ndjson, format: ndjson}
transforms:
  valid: {type: validate, inputs: [clicks], contract: click.json, on_invalid: $1}
sinks:
  out: {type: file, inputs: [valid], path: out/out.ndjson, id_field: ""}
EOF
    rm -rf state out
}

note "pipeline, on_invalid: dlq"
pipeline dlq
run_sluice run p.yaml --once
assert_rc 0
assert_same_records expected.ndjson out/out.ndjson
run_sluice dlq list p.yaml --json
assert_rc 0
jq -c '{line, error, rule, path, expected, actual, contract, message}' "$RUN_STDOUT" >dlq.got
cat >dlq.want <<'EOF'
{"line":2,"error":"contract","rule":"type","path":"$.amount","expected":"number or null","actual":"string \"12a\"","contract":"click_event@3","message":"contract click_event@3: $.amount: expected number or null, got string \"12a\" (type)"}
{"line":4,"error":"contract","rule":"pattern","path":"$.event_id","expected":"match /^e-[0-9]{8}$/","actual":"string \"x\"","contract":"click_event@3","message":"contract click_event@3: $.event_id: expected match /^e-[0-9]{8}$/, got string \"x\" (pattern); and 5 more"}
{"line":6,"error":"contract","rule":"required","path":"$.event_id","expected":"present","actual":"missing","contract":"click_event@3","message":"contract click_event@3: $.event_id: expected present, got missing (required); and 1 more"}
EOF
assert_eq "dlq entries" "$(cat dlq.want)" "$(cat dlq.got)"
assert_eq "details of line 4" \
    '[{"path":"$.event_id","rule":"pattern"},{"path":"$.user_id","rule":"minimum"},{"path":"$.amount","rule":"minimum"},{"path":"$.device.os","rule":"enum"},{"path":"$.device.model","rule":"additionalProperties"},{"path":"$.extra","rule":"additionalProperties"}]' \
    "$(jq -c 'select(.line == 4) | [.details[] | {path, rule}]' "$RUN_STDOUT")"
run_sluice run p.yaml --once # nothing new: the output stays exactly the same
assert_rc 0
assert_same_records expected.ndjson out/out.ndjson

note "pipeline, on_invalid: drop"
pipeline drop
run_sluice run p.yaml --once
assert_rc 0
assert_same_records expected.ndjson out/out.ndjson
assert_file_contains "$RUN_STDERR" "filtered   3"
run_sluice dlq list p.yaml --json
assert_rc 0
assert_eq "dlq after drop" "" "$(cat "$RUN_STDOUT")"

note "pipeline, on_invalid: fail"
pipeline fail
run_sluice run p.yaml --once
assert_rc 1
assert_file_contains "$RUN_STDERR" "validate valid: record $T/data/in.ndjson:2 violates contract click_event@3: \$.amount: expected number or null, got string \"12a\" (type); stopping because on_invalid is fail"

note "pipeline with a contract that does not load"
pipeline dlq
sed -i 's/click.json/bad.json/' p.yaml
run_sluice run p.yaml --once
assert_rc 1
assert_file_contains "$RUN_STDERR" "transform valid: p.yaml:6:55: contract: $T/bad.json: #/properties/user/oneOf: keyword \"oneOf\" is not supported"
note "ok"
