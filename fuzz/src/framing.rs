//! Turning fuzz bytes into archives a parser gets past its first check.
//!
//! - A raw tar whose header checksums are recomputed (`fix_tar_checksums`):
//!   otherwise nearly every mutation of a header would only test the
//!   checksum comparison.
//! - A list of members (`Members`) built into a tar by the `tar` crate, with
//!   placeholders that become the sha256 or size of another member, so
//!   digests in index.json, manifests and descriptors can match and the
//!   importer is reached beyond its digest checks.

use std::fmt::Write as _;

use rootfs_builder::Digest;

const BLOCK: usize = 512;

/// Recomputes the checksum of every header block of a tar, walking entries
/// by their size fields; stops at the first zero block or unreadable size.
/// The fuzzer mutates everything else freely.
pub fn fix_tar_checksums(buf: &mut [u8]) {
    let mut at = 0;
    while at + BLOCK <= buf.len() {
        let h = &mut buf[at..at + BLOCK];
        if h.iter().all(|b| *b == 0) {
            return;
        }
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(&text.as_bytes()[..8]);
        let Some(size) = numeric(&h[124..136]) else {
            return;
        };
        let Some(data) = size
            .checked_add(BLOCK as u64 - 1)
            .map(|s| s / BLOCK as u64 * BLOCK as u64)
        else {
            return;
        };
        let Some(next) = usize::try_from(data)
            .ok()
            .and_then(|d| (at + BLOCK).checked_add(d))
        else {
            return;
        };
        at = next;
    }
}

/// A tar numeric field: octal text, or GNU base-256 when the high bit of
/// the first byte is set.
fn numeric(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// Archive members from fuzz bytes: repeated `[name length: u8][name]
/// [content length: u16 LE][content]`; a truncated tail is dropped.
///
/// In names and contents, `{dN}` becomes `sha256:<hex>` of member N's
/// final content, `{hN}` the hex alone and `{sN}` its size, for members
/// before this one, and in a name for the member itself (a later one is
/// not final yet: it is left as written).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members(pub Vec<(Vec<u8>, Vec<u8>)>);

impl Members {
    pub fn parse(mut data: &[u8]) -> Members {
        let mut raw = Vec::new();
        while let Some((&n, rest)) = data.split_first() {
            let n = usize::from(n);
            if rest.len() < n + 2 {
                break;
            }
            let (name, rest) = rest.split_at(n);
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let rest = &rest[2..];
            let len = len.min(rest.len());
            let (content, rest) = rest.split_at(len);
            raw.push((name.to_vec(), content.to_vec()));
            data = rest;
        }
        let mut done: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(raw.len());
        for (name, content) in raw {
            let content = substitute(&content, &done);
            // A name may name its own content (`blobs/sha256/{hN}`).
            done.push((Vec::new(), content));
            let name = substitute(&name, &done);
            if let Some(last) = done.last_mut() {
                last.0 = name;
            }
        }
        Members(done)
    }

    /// The encoding `parse` reads (placeholders are not reintroduced).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, content) in &self.0 {
            let n = u8::try_from(name.len()).expect("member names are at most 255 bytes");
            let len = u16::try_from(content.len()).expect("members are at most 65535 bytes");
            out.push(n);
            out.extend_from_slice(name);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(content);
        }
        out
    }

    /// A tar of the members as regular files (or directories, for names
    /// ending in `/`), mode 0644, in order. Names are written raw (the tar
    /// crate's setters refuse `..` and absolute paths, which are exactly
    /// what to try); a name over 100 bytes gets a GNU long-name entry.
    pub fn to_tar(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, content) in &self.0 {
            let dir = name.ends_with(b"/");
            let kind = if dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            };
            let data: &[u8] = if dir { b"" } else { content };
            raw_entry(&mut out, name, kind, if dir { 0o755 } else { 0o644 }, data);
        }
        out.extend_from_slice(&[0; 2 * BLOCK]);
        out
    }
}

/// Appends one entry (and its GNU long-name entry when the name is long).
pub fn raw_entry(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, mode: u32, data: &[u8]) {
    if name.len() > 100 {
        let mut long = name.to_vec();
        long.push(0);
        raw_entry(
            out,
            b"././@LongLink",
            tar::EntryType::GNULongName,
            0o644,
            &long,
        );
    }
    let mut h = tar::Header::new_gnu();
    let field = &mut h.as_old_mut().name;
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
    out.extend(std::iter::repeat_n(0, pad));
}

fn substitute(s: &[u8], done: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'{' {
            if let Some((len, text)) = placeholder(&s[i..], done) {
                out.extend_from_slice(text.as_bytes());
                i += len;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// `{dN}`, `{hN}` or `{sN}` at the start of `s`: its length and text.
fn placeholder(s: &[u8], done: &[(Vec<u8>, Vec<u8>)]) -> Option<(usize, String)> {
    let end = s.iter().take(6).position(|b| *b == b'}')?;
    if end < 3 {
        return None;
    }
    let kind = *s.get(1)?;
    let n: usize = std::str::from_utf8(&s[2..end]).ok()?.parse().ok()?;
    let (_, content) = done.get(n)?;
    let d = Digest::of(content);
    let text = match kind {
        b'd' => d.to_string(),
        b'h' => d.hex().to_string(),
        b's' => {
            let mut t = String::new();
            let _ = write!(t, "{}", content.len());
            t
        }
        _ => return None,
    };
    Some((end + 1, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_placeholders() {
        let m = Members(vec![
            (b"blobs/sha256/{h0}".to_vec(), b"layer".to_vec()),
            (
                b"m".to_vec(),
                b"{d0} {h0} {s0} {d1} {x0} {d9} {} {d}".to_vec(),
            ),
        ]);
        let parsed = Members::parse(&m.encode());
        let d = Digest::of(b"layer");
        assert_eq!(
            parsed.0[0].0,
            format!("blobs/sha256/{}", d.hex()).into_bytes()
        );
        assert_eq!(
            String::from_utf8(parsed.0[1].1.clone()).unwrap(),
            format!("{d} {} 5 {{d1}} {{x0}} {{d9}} {{}} {{d}}", d.hex())
        );
    }

    #[test]
    fn checksums_are_fixed_where_headers_are() {
        let m = Members(vec![
            (b"a".to_vec(), vec![7; 700]),
            (b"b".to_vec(), b"x".to_vec()),
        ]);
        let mut t = m.to_tar();
        // Spoil both checksums and a name; fixing makes the tar readable.
        t[148] = b'7';
        t[512 * 3 + 148] = b'7';
        t[512 * 3] = b'c';
        fix_tar_checksums(&mut t);
        let mut a = tar::Archive::new(&t[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a", "c"]);
    }
}
