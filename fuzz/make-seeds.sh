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
    seeds/encrypted_receiver seeds/key_params \
    seeds/web_detect seeds/http_request seeds/ws_frames seeds/ws_handshake \
    seeds/rtm_params seeds/signature_check seeds/token_verify
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
        if [[ $title == "V1"* ]]; then
            # The official gettoken payload, as parameters and as an envelope to check.
            put "seeds/rtm_params/$name" "$hex"
            put "seeds/signature_check/$name" "00$hex"
        fi
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

# The web layers: first bytes, HTTP requests (k = 0: all at once; k = 3 with sizes 0, 4, 9:
# chunks of 1, 5 and 10 bytes), WebSocket streams (k bit 3: the client end).
printf '\x00FPNN' >seeds/web_detect/fpnn
printf '\x01\x16\x03\x01' >seeds/web_detect/tls
printf '\x00GET ' >seeds/web_detect/get
post='POST /service/gettoken HTTP/1.1\r\nContent-Length: 15\r\n\r\n{"uid":1,"a":2}'
get='GET /service/echo?fpnn=%7B%22t%22%3A%22ab%3D%3D%22%7D HTTP/1.1\r\nOrigin: http://x\r\n\r\n'
chunked='POST /service/e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nT: y\r\n\r\n'
upgrade='GET /service/websocket HTTP/1.1\r\nupgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'
printf '%b' "\x00$post$get$chunked" >seeds/http_request/pipelined
printf '%b' "\x03\x00\x04\x09$post$chunked$get" >seeds/http_request/pipelined-chunks
printf '%b' "\x00$get$upgrade" >seeds/http_request/upgrade
# WebSocket: a masked binary message holding the gettoken vector, split in two fragments
# with a ping between them, then a close (server end); the same frame unmasked, and the
# framework's 126-byte header (client end).
frame=$(sed -n '/^### V1 twoway quest gettoken seq=7 (version byte 1/{n;p}' "$vectors")
half=$(( ${#frame} / 4 * 2 )) # hex digits of the first fragment
server="02$(printf '%02x' $(( 0x80 | half / 2 )))00000000${frame:0:$half}"
server+="898000000000"
server+="80$(printf '%02x' $(( 0x80 | (${#frame} - half) / 2 )))00000000${frame:$half}"
server+="88820000000003e8"
put seeds/ws_frames/server-fragments "00$server"
put seeds/ws_frames/client-plain "0882$(printf '%02x' $(( ${#frame} / 2 )))$frame"
# The framework's header for a 126-byte frame: 82 7e, then the frame at once (a two-way
# quest "m" whose payload is {"x": 104 a's}: 16 + 1 + 109 bytes).
put seeds/ws_frames/client-quirk-126 "08827e46504e4e018001016d000000010000006d81a178d968$(printf '61%.0s' $(seq 104))"

# The server's answer to the RFC's key, with a frame after it; and a refusal.
accepted='HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x82\x00'
printf '%b' "\x00$accepted" >seeds/ws_handshake/accepted
printf '%b' "\x02\x00\x06$accepted" >seeds/ws_handshake/accepted-chunks
printf '%b' '\x00HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n' >seeds/ws_handshake/refused

# rtmd's unauthenticated surface. RTM parameters: adddevice {uid: 9, apptype: "gcm",
# devicetoken: "t"}, kickout {uid: 9, ce: "1.2.3.4:5"} and auth {pid: 1, uid: 9, token: "x"}.
put seeds/rtm_params/adddevice "83a375696409a761707074797065a367636dab646576696365746f6b656ea174"
put seeds/rtm_params/kickout "82a375696409a26365a9312e322e332e343a35"
put seeds/rtm_params/auth "83a370696401a375696409a5746f6b656ea178"
# A signed quest within the window and one outside it (odd first byte: salt, ts offset,
# method and secret, the character to change and its replacement).
put seeds/signature_check/signed-within "01d2040000000000000a0003050b"
put seeds/signature_check/signed-outside "01d204000000000000900112070c"
# A token text of the right length, and claims minted and checked within their lifetime.
printf '\000%s' "$(printf 'A%.0s' $(seq 1 80))" >seeds/token_verify/text-80
put seeds/token_verify/claims "01c1d8a7002a00000000000000030000000000000000105e5f80510100050000000b"

# Drop duplicates (the version 0 and version 1 vectors share their payloads).
for dir in seeds/*; do
    md5sum "$dir"/* | sort | awk 'seen[$1]++ { print $2 }' | xargs -r rm
done
