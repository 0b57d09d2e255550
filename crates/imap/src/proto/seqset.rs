//! Sequence sets (RFC 3501 §9 `sequence-set`): ranges of message numbers or
//! UIDs, `*` meaning the largest one in use.

/// One end of a range; `Star` is `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNum {
    Num(u32),
    Star,
}

impl SeqNum {
    fn value(self, largest: u32) -> u32 {
        match self {
            SeqNum::Num(n) => n,
            SeqNum::Star => largest,
        }
    }
}

/// Ranges as written by the client; ends may be in either order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(SeqNum, SeqNum)>);

/// Ranges per command; a set with more is refused (it would only serve to
/// make us loop).
pub const MAX_RANGES: usize = 10_000;

impl SeqSet {
    /// `$` (RFC 5182 §2.1): the session's saved search result. It is held
    /// as an empty list of ranges, which [`SeqSet::parse`] never returns,
    /// so code that does not know `$` sees a set naming nothing.
    pub fn saved() -> SeqSet {
        SeqSet(Vec::new())
    }

    pub fn is_saved(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `1,3:5,7:*`.
    pub fn parse(s: &[u8]) -> Option<SeqSet> {
        let mut ranges = Vec::new();
        for item in s.split(|&b| b == b',') {
            if ranges.len() >= MAX_RANGES {
                return None;
            }
            let mut ends = item.splitn(2, |&b| b == b':');
            let a = parse_num(ends.next()?)?;
            let b = match ends.next() {
                Some(b) => parse_num(b)?,
                None => a,
            };
            ranges.push((a, b));
        }
        Some(SeqSet(ranges))
    }

    /// Whether `n` is in the set, `*` standing for `largest`.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (a.value(largest), b.value(largest));
            (a.min(b)..=a.max(b)).contains(&n)
        })
    }

    /// The ranges sorted and merged, `*` standing for `largest`.
    pub fn ranges(&self, largest: u32) -> Vec<(u32, u32)> {
        let mut r: Vec<(u32, u32)> = self
            .0
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.value(largest), b.value(largest));
                (a.min(b), a.max(b))
            })
            .collect();
        r.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(r.len());
        for (lo, hi) in r {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        out
    }
}

fn parse_num(s: &[u8]) -> Option<SeqNum> {
    if s == b"*" {
        return Some(SeqNum::Star);
    }
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u32 = std::str::from_utf8(s).ok()?.parse().ok()?;
    // RFC 3501 §9: nz-number.
    (n > 0).then_some(SeqNum::Num(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_star() {
        let s = SeqSet::parse(b"1,3:5,9:*").unwrap();
        assert!(s.contains(1, 20));
        assert!(!s.contains(2, 20));
        assert!(s.contains(4, 20));
        assert!(s.contains(20, 20));
        assert_eq!(
            SeqSet::parse(b"7,1:3,2:4,9:*").unwrap().ranges(8),
            vec![(1, 4), (7, 9)]
        );
        // Reversed ends are the same range (RFC 3501 §9).
        assert!(SeqSet::parse(b"5:3").unwrap().contains(4, 9));
        // `*` on an empty mailbox is 0 and matches nothing real.
        assert!(!SeqSet::parse(b"*").unwrap().contains(1, 0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"0",
            b"1:",
            b",",
            b"a",
            b"1::2",
            b"99999999999",
            b"4294967296",
            b"1\x00",
        ] {
            assert_eq!(SeqSet::parse(bad), None, "{bad:?}");
        }
        let many = vec!["1"; MAX_RANGES + 1].join(",");
        assert_eq!(SeqSet::parse(many.as_bytes()), None);
    }
}
