//! Text any local user chooses (process names, file and cgroup paths, command lines), kept as
//! the exact bytes and shown safely.
//!
//! `comm` is whatever a process set with prctl(PR_SET_NAME); a file or cgroup name is whatever
//! its creator chose. Printed as they are, terminal escape sequences in them would rewrite what
//! an operator sees, and a newline would forge report or log lines. [`UserText`] keeps the
//! bytes (invalid UTF-8 included) and escapes on the way out:
//!
//! - for people ([`Display`](fmt::Display)): C0 controls, DEL, C1 controls (U+0080–U+009F),
//!   Unicode bidi controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), the line and
//!   paragraph separators (U+2028, U+2029) and the backslash are escaped (`\e`, `\n`, `\r`,
//!   `\t`, `\\`, `\xNN`, `\u{202e}`); a byte that is not UTF-8 shows as `\xNN` (80–ff).
//!   Everything else prints as it is, so ordinary names are unchanged.
//! - for JSON ([`Serialize`]): a string, lossless. Valid UTF-8 is written as it is (the JSON
//!   writer escapes control characters as JSON requires). Invalid UTF-8 is written with each
//!   backslash doubled and each byte that is not UTF-8 as `\xNN` (lowercase, 80–ff); so is the
//!   rare valid text that already contains such a sequence (a backslash, `x`, two hex digits
//!   from 80 to ff), so that [`decode_json`] tells the two forms apart.

use std::{
    ffi::{OsStr, OsString},
    fmt::{self, Write as _},
    os::unix::ffi::{OsStrExt as _, OsStringExt as _},
    path::{Path, PathBuf},
};

use serde::{Serialize, Serializer};
use smallvec::SmallVec;

/// Bytes a user chose, shown escaped. See the module docs for both encodings.
///
/// Up to 16 bytes live inline: every event carries its task's `comm` (at most 15 bytes), and
/// decoding a record must not allocate for it.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserText(SmallVec<[u8; 16]>);

impl UserText {
    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as a path, to open or stat what they name.
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }

    /// A command line as `ps` shows one: the arguments joined by spaces.
    pub fn command_line(args: &[OsString]) -> Self {
        let words: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        Self(SmallVec::from_vec(words.join(&b' ')))
    }

    /// The escaped form for people (what [`Display`](fmt::Display) prints).
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                escape_char(c, &mut out);
            }
            for byte in chunk.invalid() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
        out
    }

    /// The JSON string's content: the text itself, or its escaped form (module docs).
    fn json_form(&self) -> std::borrow::Cow<'_, str> {
        match std::str::from_utf8(&self.0) {
            Ok(text) if !looks_escaped(text) => text.into(),
            _ => {
                let mut out = String::with_capacity(self.0.len() + 8);
                for chunk in self.0.utf8_chunks() {
                    out.push_str(&chunk.valid().replace('\\', "\\\\"));
                    for byte in chunk.invalid() {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
                out.into()
            }
        }
    }
}

/// One character for people: controls, bidi controls, separators and `\` escaped.
fn escape_char(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x1b' => out.push_str("\\e"),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        '\u{80}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Whether `text` holds a backslash, `x` and two hex digits from 80 to ff: what only the
/// escaped JSON form contains unescaped.
fn looks_escaped(text: &str) -> bool {
    text.as_bytes().windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'x'
            && matches!(w[2], b'8' | b'9' | b'a'..=b'f' | b'A'..=b'F')
            && w[3].is_ascii_hexdigit()
    })
}

/// The bytes a JSON string written by [`UserText`]'s `Serialize` stands for: the inverse of its
/// encoding, for consumers of the JSON (and the tests).
pub fn decode_json(text: &str) -> Vec<u8> {
    if !looks_escaped(text) {
        return text.as_bytes().to_vec();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = match bytes.get(i..i + 2) {
            Some(b"\\\\") => Some((b'\\', 2)),
            Some(b"\\x") => bytes
                .get(i + 2..i + 4)
                .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
                .map(|b| (b, 4)),
            _ => None,
        };
        let (b, len) = byte.unwrap_or((bytes[i], 1));
        out.push(b);
        i += len;
    }
    out
}

impl fmt::Display for UserText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.escaped())
    }
}

impl fmt::Debug for UserText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.escaped())
    }
}

impl Serialize for UserText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.json_form())
    }
}

impl From<Vec<u8>> for UserText {
    fn from(bytes: Vec<u8>) -> Self {
        Self(SmallVec::from_vec(bytes))
    }
}

impl From<&[u8]> for UserText {
    fn from(bytes: &[u8]) -> Self {
        Self(SmallVec::from_slice(bytes))
    }
}

impl From<&str> for UserText {
    fn from(text: &str) -> Self {
        Self(SmallVec::from_slice(text.as_bytes()))
    }
}

impl From<String> for UserText {
    fn from(text: String) -> Self {
        Self(SmallVec::from_vec(text.into_bytes()))
    }
}

impl From<OsString> for UserText {
    fn from(text: OsString) -> Self {
        Self(SmallVec::from_vec(text.into_vec()))
    }
}

impl From<PathBuf> for UserText {
    fn from(path: PathBuf) -> Self {
        path.into_os_string().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (bytes, shown to people, JSON string content).
    const CASES: &[(&[u8], &str, &str)] = &[
        (b"qemu-system-x86", "qemu-system-x86", "qemu-system-x86"),
        (b"/mnt/ext4/vm.img", "/mnt/ext4/vm.img", "/mnt/ext4/vm.img"),
        (b"kworker/0:1 x", "kworker/0:1 x", "kworker/0:1 x"),
        (
            b"\x1b[31mEVIL\nFAKE-",
            r"\e[31mEVIL\nFAKE-",
            "\x1b[31mEVIL\nFAKE-",
        ),
        (b"\x1b]0;title\x07", r"\e]0;title\x07", "\x1b]0;title\x07"),
        (
            b"a\r\x08\x08b\tc\x7f",
            r"a\r\x08\x08b\tc\x7f",
            "a\r\x08\x08b\tc\x7f",
        ),
        (b"\0nul", r"\x00nul", "\0nul"),
        (
            "safe\u{202e}txt.exe".as_bytes(),
            r"safe\u{202e}txt.exe",
            "safe\u{202e}txt.exe",
        ),
        (
            "\u{2066}x\u{2069}\u{200f}".as_bytes(),
            r"\u{2066}x\u{2069}\u{200f}",
            "\u{2066}x\u{2069}\u{200f}",
        ),
        ("c1\u{9b}31m".as_bytes(), r"c1\u{9b}31m", "c1\u{9b}31m"),
        (
            "line\u{2028}sep".as_bytes(),
            r"line\u{2028}sep",
            "line\u{2028}sep",
        ),
        ("naïve ✓".as_bytes(), "naïve ✓", "naïve ✓"),
        // systemd's own escapes in cgroup names: JSON keeps them as they are.
        (
            br"/system.slice/systemd-fsck@dev-disk-by\x2dlabel.service",
            r"/system.slice/systemd-fsck@dev-disk-by\\x2dlabel.service",
            r"/system.slice/systemd-fsck@dev-disk-by\x2dlabel.service",
        ),
        // Not UTF-8: each such byte as \xNN, and in JSON every backslash doubled.
        (
            b"evil\xff\xfe.dat",
            r"evil\xff\xfe.dat",
            r"evil\xff\xfe.dat",
        ),
        (b"a\\b\xc3", r"a\\b\xc3", r"a\\b\xc3"),
        // Valid text that looks like an escape takes the escaped form, to stay unambiguous.
        (br"lit\xff", r"lit\\xff", r"lit\\xff"),
        // A 16-byte comm without NUL, as a decoder may meet it.
        (b"0123456789abcdef", "0123456789abcdef", "0123456789abcdef"),
        (b"", "", ""),
    ];

    #[test]
    fn people_see_escapes_and_json_keeps_every_byte() {
        for &(bytes, shown, json) in CASES {
            let text = UserText::from(bytes);
            assert_eq!(text.to_string(), shown, "{bytes:?} shown");
            let value = serde_json::to_value(&text).unwrap();
            assert_eq!(value, json, "{bytes:?} as JSON");
            assert_eq!(decode_json(json), bytes, "{json:?} decoded");
        }
    }

    #[test]
    fn nothing_shown_is_a_control_character_or_a_line_break() {
        for &(bytes, _, _) in CASES {
            let shown = UserText::from(bytes).to_string();
            assert!(
                !shown.chars().any(|c| c.is_control()
                    || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
                "{shown:?}"
            );
        }
    }

    #[test]
    fn every_byte_pair_survives_json() {
        for a in 0..=255u8 {
            for b in [b'\\', b'x', b'f', 0x80, 0xc3, 0xff, b'a'] {
                let bytes = vec![b'\\', a, b'\\', b'x', b, b'f', a];
                let json = serde_json::to_string(&UserText::from(bytes.clone())).unwrap();
                let back: String = serde_json::from_str(&json).unwrap();
                assert_eq!(decode_json(&back), bytes, "{json}");
            }
        }
    }

    #[test]
    fn display_pads_like_a_str() {
        let text = UserText::from(b"ab\n".as_slice());
        assert_eq!(format!("[{text:<6}]"), r"[ab\n  ]");
        assert_eq!(format!("{text:?}"), r#""ab\n""#);
    }

    #[test]
    fn command_lines_join_their_arguments() {
        let args = [
            OsString::from("/bin/x"),
            OsString::from_vec(b"a\xff".to_vec()),
        ];
        let line = UserText::command_line(&args);
        assert_eq!(line.as_bytes(), b"/bin/x a\xff");
        assert_eq!(
            line.as_path(),
            Path::new(OsStr::from_bytes(b"/bin/x a\xff"))
        );
    }
}
