//! The quick look at a document's bytes that decides whether the parser's own check must run.
//!
//! A [`RawValue`](serde_json::value::RawValue) is valid JSON text, but valid JSON text can
//! still fail to parse into a `serde_json::Value`: nested deeper than the parser's limit of
//! 128, holding a number beyond `f64`, or holding a `\u` escape of a UTF-16 surrogate that is
//! not half of a proper pair. [`needs_full_check`] finds every text that *might* do one of
//! these, so that only those go through the parser's check ([`Parses`]); the verdict and the
//! error message are then always the parser's. It may call a fine text suspect (that only
//! costs time), never the reverse.
//!
//! The scan works on 64-byte blocks, as simdjson's first stage does: one comparison per byte
//! class gives a 64-bit mask (quotes, backslashes, brackets, `e`/`E`, digits); a prefix XOR of
//! the unescaped quotes gives the bytes inside strings; what lies outside strings is then
//! counted and tested with word operations. `fearless_simd` runs the same code with the
//! widest vectors the CPU has (chosen at run time: AVX-512, AVX2, SSE4.2 or SSE2 on x86,
//! NEON on aarch64, plain scalar code elsewhere), with no `unsafe` in this crate.
//!
//! Everything here relies on the text being valid JSON, which a `RawValue` is.

use fearless_simd::prelude::*;
use fearless_simd::{Level, dispatch, u8x64};

use super::Parses;

/// Nesting from which [`needs_full_check`] defers to the parser, below serde_json's limit of
/// 128 so that the boundary is the parser's own.
const SUSPECT_DEPTH: u32 = 100;

/// Bytes per block.
const BLOCK: usize = 64;

/// The even bit positions of a block mask.
const EVEN: u64 = 0x5555_5555_5555_5555;

/// Whether JSON text, already known to be valid (a `RawValue`), might fail to parse into a
/// `serde_json::Value`: nested more than [`SUSPECT_DEPTH`] levels, holding a number that may
/// not fit `f64`, or a `\u` escape of a UTF-16 surrogate that is not part of a proper pair.
pub(super) fn needs_full_check(json: &str) -> bool {
    needs_full_check_at(Level::new(), json)
}

/// [`needs_full_check`] with the vectors of `level` (tests run every level the CPU has).
fn needs_full_check_at(level: Level, json: &str) -> bool {
    let bytes = json.as_bytes();
    if memchr::memchr(b'\\', bytes).is_none() {
        return dispatch!(level, simd => scan::<_, false>(simd, bytes));
    }
    lone_surrogate_escape(bytes) || dispatch!(level, simd => scan::<_, true>(simd, bytes))
}

/// Scans the blocks of `bytes`; `ESCAPES` says whether the text holds a backslash at all
/// (without one, no quote is escaped and the escape bookkeeping is left out).
#[inline(always)]
fn scan<S: Simd, const ESCAPES: bool>(simd: S, bytes: &[u8]) -> bool {
    let mut scanner = Scanner::default();
    let (blocks, tail) = bytes.as_chunks::<BLOCK>();
    let mut at = 0;
    for block in blocks {
        if scanner.block::<S, ESCAPES>(simd, block, at, bytes) {
            return true;
        }
        at += BLOCK;
    }
    // The last, partial block, padded with spaces (whitespace changes nothing).
    let mut last = [b' '; BLOCK];
    for (to, from) in last.iter_mut().zip(tail) {
        *to = *from;
    }
    scanner.block::<S, ESCAPES>(simd, &last, at, bytes)
}

/// What one block hands to the next.
#[derive(Debug, Default)]
struct Scanner {
    /// All ones when the previous block ended inside a string, else zero.
    in_string: u64,
    /// Nesting at the start of the block (brackets outside strings).
    depth: u32,
    /// 1 when the first byte of the block is escaped (the previous block ended with a
    /// backslash that starts an escape), else 0.
    escaped: u64,
    /// 1 when the last byte of the previous block was a digit, else 0.
    digit: u64,
}

/// The masks of one block: bit `i` is byte `i`.
#[derive(Debug)]
struct Classes {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
    exponent: u64,
    digit: u64,
}

impl Classes {
    #[inline(always)]
    fn of<S: Simd, const ESCAPES: bool>(simd: S, block: &[u8; BLOCK]) -> Self {
        let bytes = u8x64::simd_from(simd, *block);
        let splat = |byte| u8x64::splat(simd, byte);
        // ASCII letters and the brackets `[`/`{`, `]`/`}` differ only in bit 0x20.
        let folded = bytes | splat(0x20);
        Self {
            quote: bytes.simd_eq(splat(b'"')).to_bitmask(),
            backslash: if ESCAPES {
                bytes.simd_eq(splat(b'\\')).to_bitmask()
            } else {
                0
            },
            open: folded.simd_eq(splat(b'{')).to_bitmask(),
            close: folded.simd_eq(splat(b'}')).to_bitmask(),
            exponent: folded.simd_eq(splat(b'e')).to_bitmask(),
            digit: (bytes - splat(b'0')).simd_le(splat(9)).to_bitmask(),
        }
    }
}

impl Scanner {
    /// Scans the block starting at byte `at` of `bytes`; true when the text is suspect.
    #[inline(always)]
    fn block<S: Simd, const ESCAPES: bool>(
        &mut self,
        simd: S,
        block: &[u8; BLOCK],
        at: usize,
        bytes: &[u8],
    ) -> bool {
        let classes = Classes::of::<S, ESCAPES>(simd, block);
        let quotes = if ESCAPES {
            classes.quote & !self.escaped_bytes(classes.backslash)
        } else {
            classes.quote
        };
        // Bit i: inside a string (an opening quote counts as inside, a closing one not).
        let inside = prefix_xor(quotes) ^ self.in_string;
        self.in_string = 0u64.wrapping_sub(inside >> 63);
        let outside = !inside;

        let open = classes.open & outside;
        let opens = open.count_ones();
        let too_deep = self.depth + opens > SUSPECT_DEPTH;
        self.depth = (self.depth + opens).saturating_sub((classes.close & outside).count_ones());

        // Outside strings, `e`/`E` is an exponent exactly when a digit precedes it (the
        // others are in `true` and `false`).
        let exponents = classes.exponent & outside & ((classes.digit << 1) | self.digit);
        self.digit = classes.digit >> 63;
        // A number that overflows `f64` without an exponent has at least 309 integer digits,
        // so some whole block of it is digits.
        let long_number = classes.digit & outside == u64::MAX;

        if too_deep | long_number | (exponents != 0) {
            return too_deep || long_number || suspect_exponent(bytes, at, exponents);
        }
        false
    }

    /// The escaped bytes of a block with backslash mask `backslash` (the byte after each
    /// backslash that starts an escape), carrying a run of backslashes into the next block:
    /// simdjson's odd-backslash-sequence computation.
    #[inline(always)]
    fn escaped_bytes(&mut self, backslash: u64) -> u64 {
        if backslash | self.escaped == 0 {
            return 0;
        }
        // In valid JSON every backslash is in a string and a run of them starts with one that
        // starts an escape, so a byte is escaped when the run before it is odd.
        let starts = backslash & !(backslash << 1);
        let even_start_mask = EVEN ^ self.escaped;
        let even_starts = starts & even_start_mask;
        let odd_starts = starts & !even_start_mask;
        let even_carries = backslash.wrapping_add(even_starts);
        let (odd_carries, overflow) = backslash.overflowing_add(odd_starts);
        let odd_carries = odd_carries | self.escaped;
        self.escaped = u64::from(overflow);
        let even_carry_ends = even_carries & !backslash;
        let odd_carry_ends = odd_carries & !backslash;
        (even_carry_ends & !EVEN) | (odd_carry_ends & EVEN)
    }
}

/// Bit i of the result: the XOR of bits 0..=i of `bits`.
#[inline(always)]
fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

/// Whether one of the numbers whose exponent marker is at a set bit of `exponents` (in the
/// block starting at `at`) does not parse: the parser decides, on that number alone.
#[cold]
#[inline(never)]
fn suspect_exponent(bytes: &[u8], at: usize, mut exponents: u64) -> bool {
    let is_number = |b: &u8| matches!(b, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E');
    while exponents != 0 {
        let marker = at + usize::try_from(exponents.trailing_zeros()).unwrap_or(0);
        exponents &= exponents - 1;
        let before = bytes.get(..marker).unwrap_or_default();
        let start = before
            .iter()
            .rposition(|b| !is_number(b))
            .map_or(0, |i| i + 1);
        let after = bytes.get(marker..).unwrap_or_default();
        let end = after
            .iter()
            .position(|b| !is_number(b))
            .map_or(bytes.len(), |i| marker + i);
        let parses = bytes
            .get(start..end)
            .and_then(|token| std::str::from_utf8(token).ok())
            .is_some_and(|token| serde_json::from_str::<Parses>(token).is_ok());
        if !parses {
            return true;
        }
    }
    false
}

/// Whether the text holds a `\u` escape of a UTF-16 surrogate that is not half of a proper
/// pair (a high surrogate escape directly followed by a low one). Only escapes of the form
/// `\uD…` can be surrogates, so only those are looked at.
fn lone_surrogate_escape(bytes: &[u8]) -> bool {
    [b"\\ud", b"\\uD"].iter().any(|needle| {
        memchr::memmem::find_iter(bytes, needle).any(|at| {
            if !starts_escape(bytes, at) {
                return false;
            }
            match surrogate(bytes, at) {
                Surrogate::None => false,
                Surrogate::High => surrogate(bytes, at + 6) != Surrogate::Low,
                Surrogate::Low => {
                    at < 6
                        || surrogate(bytes, at - 6) != Surrogate::High
                        || !starts_escape(bytes, at - 6)
                }
            }
        })
    })
}

/// Whether the backslash at `at` starts an escape: in valid JSON a run of backslashes starts
/// with one that does, so it does when the run up to it is odd.
fn starts_escape(bytes: &[u8], at: usize) -> bool {
    let before = bytes.get(..=at).unwrap_or_default();
    let run = before.iter().rev().take_while(|&&b| b == b'\\').count();
    run % 2 == 1
}

#[derive(Debug, PartialEq, Eq)]
enum Surrogate {
    None,
    High,
    Low,
}

/// What the `\uXXXX` escape at `at` encodes (anything but an escape of a surrogate is `None`).
fn surrogate(bytes: &[u8], at: usize) -> Surrogate {
    let escape = bytes.get(at..at + 6).unwrap_or_default();
    let [b'\\', b'u', a, b, _, _] = escape else {
        return Surrogate::None;
    };
    // U+D800–U+DBFF are high surrogates, U+DC00–U+DFFF low ones: `d` then `8`–`b` or `c`–`f`.
    if !matches!(a, b'd' | b'D') {
        return Surrogate::None;
    }
    match b {
        b'8' | b'9' | b'a' | b'b' | b'A' | b'B' => Surrogate::High,
        b'c'..=b'f' | b'C'..=b'F' => Surrogate::Low,
        _ => Surrogate::None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use serde_json::value::RawValue;

    use super::*;
    use crate::document::tests::Lcg;

    /// Every level this CPU runs, the scalar fallback included.
    fn levels() -> Vec<Level> {
        let best = Level::new();
        #[allow(unused_mut, reason = "only x86 adds the lower levels")]
        let mut levels = vec![best, Level::fallback()];
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            levels.extend(best.as_avx2().map(Level::Avx2));
            levels.extend(best.as_sse4_2().map(Level::Sse4_2));
            levels.extend(best.as_sse2().map(Level::Sse2));
        }
        levels
    }

    /// The promise, at every level: valid JSON text the scan calls fine parses into a
    /// `Value`. Returns the verdicts (`None` for text that is not JSON at all).
    fn never_falsely_fine(text: &str) -> Option<Vec<bool>> {
        let raw = RawValue::from_string(text.to_owned()).ok()?;
        let parses = serde_json::from_str::<serde_json::Value>(text).is_ok();
        let verdicts: Vec<bool> = levels()
            .into_iter()
            .map(|level| needs_full_check_at(level, raw.get()))
            .collect();
        for (level, suspect) in levels().into_iter().zip(&verdicts) {
            assert!(*suspect || parses, "{level:?} calls this fine: {text}");
        }
        // The same bytes, the same verdict, whatever the vectors.
        assert!(
            verdicts.windows(2).all(|w| w[0] == w[1]),
            "{verdicts:?}: {text}"
        );
        Some(verdicts)
    }

    /// String contents that look like structure, escapes of every kind, and runs of
    /// backslashes long enough to cross blocks.
    const STRING_PIECES: &[&str] = &[
        "plain",
        "[[[[",
        "]]}}",
        "{\\\"k\\\":[1e400]}",
        "\\\"",
        "\\\\",
        "\\\\\\\"",
        "\\n\\t\\/",
        "\\u00e9",
        // Not tame from here.
        "\\ud83d\\ude00",
        "\\ud800",
        "\\udc00",
        "\\\\ud800",
        "3e5f",
        "1e999",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
        "é",
        " ",
    ];

    const NUMBERS: &[&str] = &[
        "0",
        "-7",
        "12.5",
        "1e5",
        "-2.5E-3",
        "1e308",
        "1e309",
        "-1e400",
        "1e-400",
        "1.8e308",
        "123456789012345678901234567890",
    ];

    /// The pieces of strings and the numbers that always parse.
    const TAME: usize = 9;

    /// Appends a string; `wild` allows pieces that do not parse.
    fn string(rng: &mut Lcg, wild: bool, out: &mut String) {
        out.push('"');
        for _ in 0..rng.below(6) {
            let pieces = if wild {
                STRING_PIECES
            } else {
                &STRING_PIECES[..TAME]
            };
            out.push_str(rng.pick(pieces));
        }
        if rng.below(8) == 0 {
            out.push_str(&"\\\\".repeat(rng.below(70)));
        }
        out.push('"');
    }

    /// Appends a value nested `depth` deep; `wild` allows what does not parse.
    fn value(rng: &mut Lcg, wild: bool, depth: usize, out: &mut String) {
        out.push_str(&" ".repeat(rng.below(3) * rng.below(40)));
        match rng.below(if depth > 6 { 4 } else { 9 }) {
            0 => string(rng, wild, out),
            1 if wild => out.push_str(rng.pick(NUMBERS)),
            1 => out.push_str(rng.pick(&NUMBERS[..5])),
            2 => out.push_str(rng.pick(&["true", "false", "null"])),
            3 if wild && rng.below(20) == 0 => {
                // A long integer: 308 digits fit `f64`, 309 or more may not.
                out.push('9');
                out.push_str(&"9".repeat(250 + rng.below(80)));
            }
            3 => out.push_str(&"1".repeat(1 + rng.below(80))),
            4 if wild && rng.below(4) == 0 => {
                // A chain of arrays and objects around the parser's limit.
                let levels = 90 + rng.below(50);
                let opens: Vec<bool> = (0..levels).map(|_| rng.below(2) == 0).collect();
                for &object in &opens {
                    out.push_str(if object { "{\"k\":" } else { "[" });
                }
                out.push('0');
                for &object in opens.iter().rev() {
                    out.push(if object { '}' } else { ']' });
                }
            }
            4..=6 => {
                out.push('[');
                for i in 0..rng.below(6) {
                    if i > 0 {
                        out.push(',');
                    }
                    value(rng, wild, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.below(6) {
                    if i > 0 {
                        out.push(',');
                    }
                    string(rng, wild, out);
                    out.push(':');
                    value(rng, wild, depth + 1, out);
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn generated_documents_are_never_called_fine_when_they_do_not_parse() {
        let mut rng = Lcg(11);
        let (mut checked, mut refused, mut suspect) = (0, 0, 0);
        for _ in 0..3_000 {
            let mut text = String::new();
            value(&mut rng, true, 0, &mut text);
            let verdicts = never_falsely_fine(&text).unwrap();
            checked += 1;
            refused += usize::from(serde_json::from_str::<serde_json::Value>(&text).is_err());
            suspect += usize::from(verdicts[0]);
        }
        // Both outcomes occur, and much of what parses is let through by the scan alone.
        assert!(
            refused > 300 && suspect < checked - 300,
            "{checked} / {refused} / {suspect}"
        );
    }

    #[test]
    fn mutated_long_documents_are_never_called_fine_when_they_do_not_parse() {
        let mut rng = Lcg(5);
        let pieces = [
            "\"", "\\", "\\\\", "\\\"", "[", "]", "{", "}", "e", "E5", "1e400", "999", ",", ":",
            "\\ud800", "\\udc00",
        ];
        let (mut valid, mut fine) = (0, 0);
        for _ in 0..4_000 {
            let mut text = String::new();
            while text.len() < 200 {
                text.clear();
                value(&mut rng, false, 0, &mut text);
            }
            for _ in 0..1 + rng.below(3) {
                let piece = rng.pick(&pieces);
                let mut at = rng.below(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, piece);
            }
            if let Some(verdicts) = never_falsely_fine(&text) {
                valid += 1;
                fine += usize::from(!verdicts[0]);
            }
        }
        assert!(
            valid > 300 && fine > 150 && fine < valid - 50,
            "{valid} / {fine}"
        );
    }

    /// The scan sees the same structure wherever it falls in the 64-byte blocks.
    #[test]
    fn every_alignment_gives_the_same_verdict() {
        let deep = |levels: usize| format!("{}0{}", "[".repeat(levels), "]".repeat(levels));
        let cases = [
            (deep(100), false),
            (deep(101), true),
            (format!("[\"{}\",{}]", "[".repeat(150), deep(60)), false),
            (format!("[\"a\\\"{}\",1e400]", "[".repeat(150)), true),
            (
                format!("[\"{}\", 2.5e-3, true, false]", "\\\\".repeat(40)),
                false,
            ),
            (
                format!("[\"{}\\\"]\", {}]", "\\\\".repeat(40), deep(101)),
                true,
            ),
            (format!("[\"x\", {}]", "9".repeat(310)), true),
            (format!("[\"{}\", 1]", "9".repeat(310)), false),
            ("[\"\\ud83d\\ude00\", \"\\\\ud800\"]".to_owned(), false),
            ("[\"\\\\\\ud800\"]".to_owned(), true),
            ("[\"\\ud800\\\\udc00\"]".to_owned(), true),
        ];
        for (text, suspect) in cases {
            for pad in 0..130 {
                let shifted = format!("{}{text}", " ".repeat(pad));
                let verdicts = never_falsely_fine(&shifted).unwrap();
                assert_eq!(verdicts[0], suspect, "pad {pad}: {text}");
            }
        }
    }

    /// The documents devices get, firmware manifests with hashes, escapes and exponents, take
    /// the fast path: a suspect verdict would cost a second parse.
    #[test]
    fn ordinary_documents_are_not_suspect() {
        let steps: Vec<serde_json::Value> = (0..200u64)
            .map(|i| {
                serde_json::json!({
                    "id": i,
                    "name": format!("step-{i:04}"),
                    "url": format!("https://updates.example.com/2.4.0/part-{i:04}.bin?sig=a%2Fb"),
                    "sha256": format!("{:064x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                    "retries": {"max": 3, "backoffMs": [100, 200, 400], "jitter": 2.5e-3},
                    "script": "echo \"done\" > C:\\logs\\out.txt\n",
                    "note": "caf\u{e9} \u{1F600} [x] {y}",
                    "critical": i % 5 == 0,
                })
            })
            .collect();
        let manifest = serde_json::json!({"operation": "install", "steps": steps}).to_string();
        let escaped = manifest
            .replace('\u{e9}', "\\u00e9")
            .replace('\u{1F600}', "\\ud83d\\ude00");
        for text in [manifest, escaped] {
            assert!(text.len() > 32 * 1024);
            assert!(!never_falsely_fine(&text).unwrap()[0]);
        }
    }

    /// simdjson's carry arithmetic against the definition: a byte is escaped when the
    /// backslash before it starts an escape, and a backslash starts one unless it is escaped.
    #[test]
    fn escaped_bytes_match_the_definition_across_blocks() {
        let mut rng = Lcg(3);
        for round in 0..2_000 {
            let blocks = 1 + rng.below(4);
            let density = [2, 4, 16, 64][round % 4];
            let backslash: Vec<bool> = (0..blocks * BLOCK)
                .map(|i| {
                    // Long runs too: whole blocks of backslashes.
                    (round % 7 == 0 && i / BLOCK == 1) || rng.below(density) == 0
                })
                .collect();
            let mut expected = vec![false; backslash.len() + 1];
            for i in 0..backslash.len() {
                expected[i + 1] = backslash[i] && !expected[i];
            }
            let mut scanner = Scanner::default();
            for (b, chunk) in backslash.chunks(BLOCK).enumerate() {
                let mask = chunk
                    .iter()
                    .enumerate()
                    .fold(0u64, |m, (i, &set)| m | (u64::from(set) << i));
                let escaped = scanner.escaped_bytes(mask);
                for (i, &is_backslash) in chunk.iter().enumerate() {
                    if !is_backslash {
                        let at = b * BLOCK + i;
                        assert_eq!(
                            escaped >> i & 1 == 1,
                            expected[at],
                            "round {round} byte {at}"
                        );
                    }
                }
            }
        }
    }
}
