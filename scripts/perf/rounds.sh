# Sourced by pairs.sh and cpupairs.sh: the interleaved rounds both run.
# Needs: N, B, BASE (optional), the array `variants`, and a function `measure VARIANT FILE`
# that prints one number; after each image of each round, `report ROUND IMG` is called with
# the round's figures in the associative array r[VARIANT].

# Runs the blockscope build a variant names on FILE with pairs.sh's job.fio, JSON on stdout.
run_variant() {
  case $1 in
    new)   $B run --write "$2" job.fio --output=json 2>/dev/null ;;
    base)  $BASE run --write "$2" job.fio --output=json 2>/dev/null ;;
    reg0)  $B run --write "$2" job.fio --output=json --inflight-registry=0 2>/dev/null ;;
    reg33) $B run --write "$2" job.fio --output=json --inflight-registry=33 2>/dev/null ;;
  esac
}

# N rounds over RAW and QCOW2 allocated clusters; the variants' order rotates each round so
# load drifts hit every variant alike.
rounds() {
  local i img f k v
  for i in $(seq 1 "$N"); do
    for img in raw qcow2; do
      f=bench.raw; [ $img = qcow2 ] && f=alloc.qcow2
      k=$(( (i - 1) % ${#variants[@]} ))
      local order=("${variants[@]:$k}" "${variants[@]:0:$k}")
      declare -gA r=()
      for v in "${order[@]}"; do r[$v]=$(measure "$v" "$f"); done
      report "$i" "$img"
    done
  done
}
