//! The cap on the uncompressed stream the tar parser reads: in total, and
//! in header bytes before each entry (the tar crate reads GNU long names
//! and PAX records into memory), so a stream that never ends, or one
//! endless long name, stops at a limit instead of filling memory. The
//! reader ([`Metered`]) and the tar loop share one [`Meter`].

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::{UnpackError, UnpackLimits};

/// Header bytes (GNU long names, PAX records) allowed before one entry: the
/// tar crate reads them into memory.
pub(super) const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Shared between the unpacker and the reader under the tar parser.
#[derive(Default)]
pub(super) struct Meter {
    /// Header bytes still allowed, while the parser looks for the next entry.
    header_left: Cell<Option<u64>>,
    /// Which cap a failed read hit.
    exceeded: Cell<Option<(&'static str, u64)>>,
}

impl Meter {
    /// Caps the header bytes read until `close_header`: the parser is
    /// looking for the next entry.
    pub(super) fn open_header(&self) {
        self.header_left.set(Some(MAX_HEADER_BYTES));
    }

    pub(super) fn close_header(&self) {
        self.header_left.set(None);
    }

    /// The limit a failed read hit, as the error to report instead of the
    /// read error.
    pub(super) fn exceeded(&self) -> Option<UnpackError> {
        self.exceeded
            .get()
            .map(|(what, limit)| UnpackError::Limit { what, limit })
    }
}

/// `r` capped for a layer of `limits`, and the meter the tar loop reads.
pub(super) fn metered<R: Read>(r: R, limits: &UnpackLimits) -> (Metered<R>, Rc<Meter>) {
    let meter = Rc::new(Meter::default());
    // Headers are at most 512 bytes plus padding per entry in real layers;
    // the cap only stops a stream that would never end.
    let cap = limits
        .max_bytes
        .saturating_add(limits.max_entries.saturating_mul(4096))
        .saturating_add(MAX_HEADER_BYTES);
    let metered = Metered {
        inner: r,
        left: cap,
        cap,
        meter: meter.clone(),
    };
    (metered, meter)
}

/// The uncompressed stream under the tar parser: capped in total, and in
/// header bytes between two entries.
pub(super) struct Metered<R> {
    inner: R,
    left: u64,
    cap: u64,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let over = |meter: &Meter, what, limit| {
            meter.exceeded.set(Some((what, limit)));
            io::Error::other(format!("more than {limit} {what}"))
        };
        if n as u64 > self.left {
            return Err(over(
                &self.meter,
                "bytes of uncompressed tar stream",
                self.cap,
            ));
        }
        self.left -= n as u64;
        if let Some(h) = self.meter.header_left.get() {
            if n as u64 > h {
                return Err(over(
                    &self.meter,
                    "header bytes before one entry",
                    MAX_HEADER_BYTES,
                ));
            }
            self.meter.header_left.set(Some(h - n as u64));
        }
        Ok(n)
    }
}
