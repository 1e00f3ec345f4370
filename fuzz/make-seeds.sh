#!/usr/bin/env bash
# Writes the seed inputs under fuzz/seeds/<target>/ from the official vectors
# (crates/fpnn/tests/data/fpnn-vectors.txt). The files are tiny and committed; run this again
# only when the vectors change. Beside them, regress-* files are inputs that found a bug once
# (see the git log); they are kept. libFuzzer reads the seeds as an extra, read-only corpus:
#
#     cargo +nightly fuzz run msgpack fuzz/corpus/msgpack fuzz/seeds/msgpack
set -euo pipefail
cd "$(dirname "$0")"
vectors=../crates/fpnn/tests/data/fpnn-vectors.txt

# Writes hex ($2) as bytes to file $1.
put() { printf '%b' "$(sed 's/../\\x&/g' <<<"$2")" >"$1"; }

# Inputs that once failed (regress-*) are kept; everything else is written anew.
mkdir -p seeds/frame_decoder seeds/msgpack seeds/json_payload seeds/value_serde \
    seeds/encrypted_receiver seeds/key_params
find seeds -type f ! -name 'regress-*' -delete

stream=""
packages=""
n=0
while IFS= read -r line; do
    [[ $line == "### "* ]] || continue
    title=${line#\#\#\# }
    IFS= read -r hex
    n=$((n + 1))
    name=$(printf '%02d-%s' "$n" "${title%% *}")
    if [[ $hex == 46504e4e* ]]; then
        # A frame: k = 0 (one chunk), then the frame.
        put "seeds/frame_decoder/$name" "00$hex"
        stream+=$hex
        # The same frame as a package of the encrypted package mode: its u32 LE length first.
        len=$((${#hex} / 2))
        packages+=$(printf '%02x%02x%02x%02x' $((len & 255)) $((len >> 8 & 255)) $((len >> 16 & 255)) $((len >> 24)))$hex
        # The *key quests: their payload (after the header, the seq and "*key").
        if [[ $title == K1* || $title == S1* ]]; then
            put "seeds/key_params/$name" "${hex:40}"
        fi
        # Its payload: after the header, the seq (not for oneway) and the method.
        mtype=$((16#${hex:12:2}))
        ss=$((16#${hex:14:2}))
        if ((mtype == 2)); then skip=16; elif ((mtype == 1)); then skip=$((16 + ss)); else skip=$((12 + ss)); fi
        flag=${hex:10:2}
        if [[ $flag == 80 ]]; then
            put "seeds/msgpack/$name" "${hex:$((2 * skip))}"
        elif [[ $flag == 40 ]]; then
            put "seeds/json_payload/$name" "${hex:$((2 * skip))}"
        fi
    elif [[ $title == "V1 payload only"* || $title == "V7 msgpack"* ]]; then
        put "seeds/msgpack/$name" "$hex"
        put "seeds/value_serde/$name" "$hex"
    fi
done <"$vectors"

# Every frame back to back, fed in chunks of 1, 5 and 12 bytes; and the same with a 128-byte
# frame limit.
put seeds/frame_decoder/all-chunked "0300040b$stream"
put seeds/frame_decoder/all-small-limit "0b00040b$stream"

# The encrypted receivers: every frame as plaintext (the target encrypts it) in package mode
# (k = 0x00) and stream mode (0x40), whole and in chunks of 1, 5 and 12 bytes; the same with
# AES-256 and a 128-byte limit; and the frames as raw wire bytes (garbage under the key).
for mode in package stream; do
    # k: the mode bit (0x40 for stream), chunk sizes, AES-256 (0x10), the small limit (0x08),
    # raw wire bytes (0x20).
    if [[ $mode == package ]]; then plain=$packages; k=(00 03 1a 20); else plain=$stream; k=(40 43 5a 60); fi
    put "seeds/encrypted_receiver/$mode" "${k[0]}$plain"
    put "seeds/encrypted_receiver/$mode-chunked" "${k[1]}00040b$plain"
    put "seeds/encrypted_receiver/$mode-aes256-small-limit" "${k[2]}000b$plain"
    put "seeds/encrypted_receiver/$mode-raw" "${k[3]}$plain"
done

# JSON payloads beyond the one vector.
printf '%s' '{"pid":11000001,"sign":"ABC","salt":123,"ts":1600000000,"uid":42}' >seeds/json_payload/gettoken
printf '%s' '{"a":[1,-2,3.5,1e300,-0,18446744073709551615,null,true,"\u00e9\ud83d\ude00"],"b":{}}' >seeds/json_payload/mixed

# A request with the optional fields too, as msgpack: the V1 payload's five entries, then
# tos: [1, 2], mtype: 30, msg: "hi", kind: {"File": {url: "u", size: 1}}.
v1=$(sed -n '/^### V1 payload only/{n;p}' "$vectors")
put seeds/value_serde/sendmsg "89${v1#85}a3746f73920102a56d74797065""1ea36d7367a26869a46b696e6481a446696c6582a375726ca175a473697a6501"

# Drop duplicates (the version 0 and version 1 vectors share their payloads).
for dir in seeds/*; do
    md5sum "$dir"/* | sort | awk 'seen[$1]++ { print $2 }' | xargs -r rm
done
