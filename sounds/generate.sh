#!/usr/bin/env bash
# sounds/generate.sh: renders every prompt, number word, the beep and the
# music on hold under sounds/ from the text tables next to this script.
#
#   sounds/prompts.tsv       name, then the text in en, ar, fr, ur
#   sounds/number-words.tsv  lang, name, text (SayNumber words that are not numerals,
#                            and digits/star, digits/pound)
#   sounds/letters.tsv       name (a..z), then the letter's name in en, ar, fr, ur
#
# Output (all WAV, 8 kHz, 16-bit signed PCM, mono):
#   sounds/<lang>/<name>.wav           every row of prompts.tsv, in every language
#   sounds/<lang>/lang-menu.wav        the language menu: the ar, en and fr parts in turn
#   sounds/<lang>/beep.wav             0.25 s of 1000 Hz
#   sounds/<lang>/digits/<n>.wav       numerals (rule below), the number words, star, pound
#   sounds/<lang>/letters/<x>.wav      the letters a..z (SayAlpha)
#   sounds/moh/default/*.wav           music on hold, composed here with sox
#
# Numerals per language (what SayNumber needs, as in Asterisk's layout):
#   en, fr  digits/0..19 and 20, 30, ..., 90 (French 70 and 90 too, although
#           SayNumber may compose them as 60 + 10..19 and 80 + 10..19)
#   ar, ur  digits/0..99, each its own file: the numbers below 100 are
#           irregular in both languages (Arabic says the unit before the ten,
#           Urdu has a distinct word for each)
#
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox). Idempotent:
# each run rebuilds the generated directories from scratch, and the same tool
# versions produce the same bytes (sox runs in repeatable mode, -R).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

for tool in espeak-ng sox awk; do
    command -v "$tool" >/dev/null || {
        echo "generate.sh: $tool not found (apt-get install espeak-ng sox)" >&2
        exit 1
    }
done

# espeak-ng voice per language directory.
declare -A VOICE=([en]=en-gb [ar]=ar [fr]=fr-fr [ur]=ur)
LANGS=(en ar fr ur)
# The order of the parts in the combined language menu (0777 menu: 1 ar, 2 en, 3 fr).
MENU_ORDER=(ar en fr)
SPEED=150 # words per minute; espeak-ng's 175 is hurried on a phone line

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out="$tmp/out"
mkdir -p "$out"

# render LANG TEXT OUT.wav: speak TEXT with LANG's voice, then trim the silence
# at both ends, resample to 8 kHz mono 16-bit, normalise the peak to -3 dBFS
# and leave 0.1 s of silence before and 0.2 s after.
render() {
    local lang=$1 text=$2 dest=$3
    printf '%s\n' "$text" | espeak-ng --stdin -b 1 -v "${VOICE[$lang]}" -s "$SPEED" -w "$tmp/raw.wav"
    sox -R -G "$tmp/raw.wav" -b 16 -e signed-integer -c 1 "$tmp/cooked.wav" \
        highpass 120 \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
        rate -h 8000 gain -n -3 pad 0.1 0.2
    if [ "$(soxi -s "$tmp/cooked.wav")" -lt 2000 ]; then
        echo "generate.sh: $lang: '$text' rendered to almost nothing" >&2
        exit 1
    fi
    mv "$tmp/cooked.wav" "$dest"
}

# --- prompts ---------------------------------------------------------------
header=$(awk '!/^#/ { print; exit }' prompts.tsv)
IFS=$'\t' read -r -a cols <<<"$header"
[ "${cols[0]}" = name ] || { echo "generate.sh: prompts.tsv: header must start with 'name'" >&2; exit 1; }
for lang in "${LANGS[@]}"; do mkdir -p "$out/$lang/digits"; done

count=0
while IFS=$'\t' read -r -a f; do
    [ "${#f[@]}" -eq "${#cols[@]}" ] || {
        echo "generate.sh: prompts.tsv: '${f[0]}' has ${#f[@]} fields, the header ${#cols[@]}" >&2
        exit 1
    }
    for i in $(seq 1 $((${#cols[@]} - 1))); do
        render "${cols[$i]}" "${f[$i]}" "$out/${cols[$i]}/${f[0]}.wav"
    done
    count=$((count + 1))
done < <(awk '!/^#/ && NF' prompts.tsv | tail -n +2)
echo "generate.sh: $count prompts in ${#LANGS[@]} languages"

# The combined language menu: each language's part in its own voice, in turn,
# with half a second between them; the same file in every language directory,
# as it plays before the caller has chosen one.
parts=()
for lang in "${MENU_ORDER[@]}"; do
    sox -R -n -r 8000 -b 16 -c 1 "$tmp/gap.wav" trim 0 0.5
    parts+=("$out/$lang/lang-menu-part.wav" "$tmp/gap.wav")
done
unset 'parts[${#parts[@]}-1]'
sox -R "${parts[@]}" -b 16 -c 1 "$tmp/menu.wav" gain -n -3
for lang in "${LANGS[@]}"; do cp "$tmp/menu.wav" "$out/$lang/lang-menu.wav"; done

# --- numbers ---------------------------------------------------------------
for lang in "${LANGS[@]}"; do
    case "$lang" in
        ar | ur) nums=$(seq 0 99) ;;
        *) nums="$(seq 0 19) $(seq 20 10 90)" ;;
    esac
    for n in $nums; do
        text=$n
        if [ "$lang" = ar ]; then
            # espeak-ng 1.51 turns Arabic numerals containing ع (4, 7, 9: 14, 44,
            # 97, ...) into phonemes with a stray q (qaf) on some runs but not
            # others. No Arabic number word below 100 has a qaf, so speak the
            # phonemes with the q removed: the same sound, every run.
            text="[[$(espeak-ng -q -x -v "${VOICE[ar]}" "$n" | tr -d 'q\n')]]"
        fi
        render "$lang" "$text" "$out/$lang/digits/$n.wav"
    done
done
# Number words; a row named by a numeral replaces the numeral's rendering above.
while IFS=$'\t' read -r lang name text; do
    [ -n "${VOICE[$lang]:-}" ] || { echo "generate.sh: number-words.tsv: unknown language '$lang'" >&2; exit 1; }
    render "$lang" "$text" "$out/$lang/digits/$name.wav"
done < <(awk '!/^#/ && NF' number-words.tsv | tail -n +2)

# --- letters -------------------------------------------------------------------
# letters.tsv has the columns of prompts.tsv's header (name, then the languages).
lheader=$(awk '!/^#/ { print; exit }' letters.tsv)
[ "$lheader" = "$header" ] || { echo "generate.sh: letters.tsv: header must be prompts.tsv's" >&2; exit 1; }
for lang in "${LANGS[@]}"; do mkdir -p "$out/$lang/letters"; done
while IFS=$'\t' read -r -a f; do
    [ "${#f[@]}" -eq "${#cols[@]}" ] || {
        echo "generate.sh: letters.tsv: '${f[0]}' has ${#f[@]} fields, the header ${#cols[@]}" >&2
        exit 1
    }
    for i in $(seq 1 $((${#cols[@]} - 1))); do
        render "${cols[$i]}" "${f[$i]}" "$out/${cols[$i]}/letters/${f[0]}.wav"
    done
done < <(awk '!/^#/ && NF' letters.tsv | tail -n +2)

# --- beep --------------------------------------------------------------------
sox -R -n -r 8000 -b 16 -c 1 "$tmp/beep.wav" synth 0.25 sine 1000 fade 0.005 0.25 0.005 gain -n -6
for lang in "${LANGS[@]}"; do cp "$tmp/beep.wav" "$out/$lang/beep.wav"; done

# --- music on hold -------------------------------------------------------------
# Three short pieces of our own: a soft sustained chord under a plucked
# arpeggio, bar by bar through a chord progression. Notes are MIDI numbers.
mkdir -p "$out/moh/default"

hz() { awk -v m="$1" 'BEGIN { printf "%.3f", 440 * 2 ^ ((m - 69) / 12) }'; }

# bar OUT SECONDS PATTERN NOTE...: one bar of SECONDS; the pad holds the first
# three notes an octave down, the arpeggio plays the notes by PATTERN (indices
# into NOTE..., e.g. "0 1 2 3 2 1"), evenly spaced over the bar.
bar() {
    local dest=$1 secs=$2 pattern=$3
    shift 3
    local notes=("$@") steps step i=0 f
    read -r -a steps <<<"$pattern"
    step=$(awk -v s="$secs" -v n="${#steps[@]}" 'BEGIN { printf "%.4f", s / n }')
    local files=()
    for idx in "${steps[@]}"; do
        f=$(hz "${notes[$idx]}")
        sox -R -n -r 8000 -b 16 -c 1 "$tmp/n$i.wav" synth "$step" pluck "$f" \
            fade 0.005 "$step" "$(awk -v s="$step" 'BEGIN { printf "%.4f", s * 0.3 }')"
        files+=("$tmp/n$i.wav")
        i=$((i + 1))
    done
    sox -R "${files[@]}" "$tmp/arp.wav"
    sox -R -r 8000 -c 3 -n -r 8000 -b 16 -c 1 "$tmp/pad.wav" \
        synth "$secs" sine "$(hz $((notes[0] - 12)))" sine "$(hz $((notes[1] - 12)))" sine "$(hz $((notes[2] - 12)))" \
        remix - fade q 0.4 "$secs" 0.6 gain -n -14
    sox -R -m "$tmp/arp.wav" "$tmp/pad.wav" "$dest"
}

# piece NAME SECONDS_PER_BAR REPEATS PATTERN CHORD...: CHORD is "n n n n".
piece() {
    local name=$1 secs=$2 repeats=$3 pattern=$4
    shift 4
    local bars=() k=0 chord r
    for chord in "$@"; do
        # shellcheck disable=SC2086 # the chord's notes are separate arguments
        bar "$tmp/bar$k.wav" "$secs" "$pattern" $chord
        bars+=("$tmp/bar$k.wav")
        k=$((k + 1))
    done
    local all=()
    for r in $(seq 1 "$repeats"); do all+=("${bars[@]}"); done
    # Concatenate first, and fade before the reverb: otherwise sox misjudges the length.
    sox -R "${all[@]}" "$tmp/joined.wav"
    sox -R "$tmp/joined.wav" -b 16 -c 1 "$tmp/piece.wav" fade q 1 -0 2 reverb 40 50 60 \
        gain -n -6
    mv "$tmp/piece.wav" "$out/moh/default/$name.wav"
}

# 1. C major, I-vi-IV-V, rising and falling eighths (4 chords x 2 s x 3).
piece "01-morning-arpeggio" 2.0 3 "0 1 2 3 2 1 0 2" \
    "60 64 67 72" "57 60 64 69" "53 57 60 65" "55 59 62 67"
# 2. D major, a slow waltz: I-iii-IV-I-vi-ii-V-V (8 chords x 3 s).
piece "02-slow-waltz" 3.0 1 "0 2 3 2 1 2" \
    "62 66 69 74" "66 69 73 78" "67 71 74 79" "62 66 69 74" \
    "59 62 66 71" "64 67 71 76" "57 61 64 69" "57 61 64 67"
# 3. F major, calm broken chords: I-V-vi-iii-IV-I-IV-V (8 chords x 3.2 s).
piece "03-evening-chords" 3.2 1 "0 2 1 3 2 1 0 3" \
    "65 69 72 77" "60 64 67 72" "62 65 69 74" "57 60 64 69" \
    "58 62 65 70" "65 69 72 77" "58 62 65 70" "60 64 67 70"

# --- install -----------------------------------------------------------------
for d in "${LANGS[@]}" moh; do
    rm -rf "${here:?}/$d"
    mv "$out/$d" "$here/$d"
done
echo "generate.sh: done; $(find "${LANGS[@]}" moh -name '*.wav' | wc -l) files, $(du -sh . | cut -f1) in sounds/"
