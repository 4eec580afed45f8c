//! Reading lib0's v1 encoding (the one Yjs updates, state vectors and
//! awareness updates use) from untrusted bytes: every read is checked
//! against the bytes left, and nothing is allocated.

/// A position in a body being read.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// The body.
    pub buf: &'a [u8],
    /// Bytes read so far.
    pub pos: usize,
}

/// What a read gives, or why the body is malformed.
pub type Checked<T> = Result<T, String>;

impl<'a> Reader<'a> {
    /// Reads `buf` from `pos`.
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    /// Bytes left.
    pub fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// One byte.
    pub fn u8(&mut self) -> Checked<u8> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| format!("ends early at byte {}", self.pos))?;
        self.pos += 1;
        Ok(byte)
    }

    /// A varuint (signed ones have the same continuation bits).
    pub fn var(&mut self) -> Checked<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint too long at byte {}", self.pos))
    }

    /// A count of entries that each take at least `each` bytes (refused when
    /// the bytes left cannot hold them: yrs would reserve them up front).
    pub fn count(&mut self, each: usize) -> Checked<u64> {
        let n = self.var()?;
        if n > (self.left() / each) as u64 {
            return Err(format!(
                "declares {n} entries with {} bytes left",
                self.left()
            ));
        }
        Ok(n)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: u64) -> Checked<&'a [u8]> {
        if n > self.left() as u64 {
            return Err(format!("declares {n} bytes with {} left", self.left()));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// A length-prefixed buffer or string.
    pub fn buf(&mut self) -> Checked<&'a [u8]> {
        let len = self.var()?;
        self.take(len)
    }
}
