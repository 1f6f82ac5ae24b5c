# Sourced by the fuzz scripts: the committed corpus of a target, Fuzz/corpus/TARGET/, is
# either the inputs themselves or, when they would pass the cap (FUZZ_CORPUS_MAX_KB, 2 MB),
# one `corpus.tar.xz` of them (QCOW2 inputs are whole image files, mostly zeroes: 10 MB of
# them pack into a few hundred KB).

# Prints the folder holding TARGET's committed inputs (unpacked into .build-fuzz/committed/
# when they are packed), or nothing when there is no committed corpus.
corpus_dir() {
    local t=$1 c="Fuzz/corpus/$1"
    if [ -f "$c/corpus.tar.xz" ]; then
        # The stamp sits beside the folder: libFuzzer would read a file inside it as an input.
        local out=".build-fuzz/committed/$t" stamp=".build-fuzz/committed/$t.stamp"
        if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(cksum < "$c/corpus.tar.xz")" ]; then
            rm -rf "$out"; mkdir -p "$out"
            tar -xJf "$c/corpus.tar.xz" -C "$out" || return 1
            cksum < "$c/corpus.tar.xz" > "$stamp"
        fi
        echo "$out"
    elif [ -d "$c" ] && [ -n "$(ls -A "$c")" ]; then
        echo "$c"
    fi
}

# Replaces TARGET's committed corpus with the inputs in DIR (which it empties): as files when
# they fit in the cap, else packed; when even the pack is past the cap, the largest inputs go
# first until it fits. Prints how many inputs were dropped.
store_corpus() {
    local t=$1 dir=$2 c="Fuzz/corpus/$1" max=${FUZZ_CORPUS_MAX_KB:-2048} dropped=0
    mkdir -p "$c"
    rm -f "$c"/* "$c"/.[!.]* 2>/dev/null
    if [ "$(du -sk --apparent-size "$dir" | cut -f1)" -le "$max" ]; then
        mv "$dir"/* "$c/"
    else
        while :; do
            (cd "$dir" && ls | LC_ALL=C sort | tar -cf - -T - | xz -9 > "$OLDPWD/$c/corpus.tar.xz")
            [ "$(du -k --apparent-size "$c/corpus.tar.xz" | cut -f1)" -le "$max" ] && break
            rm -f "$dir/$(ls -S "$dir" | head -1)"; dropped=$((dropped + 1))
        done
        rm -f "$dir"/*
    fi
    echo "$dropped"
}
