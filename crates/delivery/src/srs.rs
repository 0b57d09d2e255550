//! The Sender Rewriting Scheme for forwarded mail: a message forwarded to
//! another provider leaves with an envelope sender in our domain, so SPF at
//! the destination checks our servers, not the original sender's. A bounce
//! to that address comes back here and is sent on to the original sender.
//!
//! Format (as libsrs2/postsrsd): `SRS0=HHHHHH=TT=domain=local@forwarding-domain`
//! with TT the day modulo 1024 and HHHHHH a keyed hash of the rest, both in
//! lower-case base32 so that MTAs which fold case keep it valid.

use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// How long a rewritten address is accepted back (postsrsd's default).
const MAX_AGE_DAYS: u64 = 21;
const HASH_LEN: usize = 6;

#[derive(Clone)]
pub struct Srs {
    secret: [u8; 32],
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Srs(..)")
    }
}

fn day(unix: i64) -> u64 {
    (unix.max(0) as u64) / 86_400
}

fn timestamp(day: u64) -> String {
    let t = day % 1024;
    [ALPHABET[(t >> 5) as usize], ALPHABET[(t & 31) as usize]]
        .iter()
        .map(|&b| b as char)
        .collect()
}

fn decode_timestamp(tt: &str) -> Option<u64> {
    let mut t = 0u64;
    for c in tt.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())?;
        t = (t << 5) | v as u64;
    }
    (tt.len() == 2).then_some(t)
}

impl Srs {
    pub fn new(secret: [u8; 32]) -> Srs {
        Srs { secret }
    }

    fn hash(&self, tt: &str, domain: &str, local: &str) -> String {
        let Ok(mut mac) = <Blake2bMac<U32> as KeyInit>::new_from_slice(&self.secret) else {
            return String::new();
        };
        for part in [tt, domain, local] {
            Mac::update(&mut mac, part.to_ascii_lowercase().as_bytes());
            Mac::update(&mut mac, b"\0");
        }
        let bytes = mac.finalize().into_bytes();
        let mut bits = 0u64;
        for &b in &bytes[..5] {
            bits = (bits << 8) | u64::from(b);
        }
        (0..HASH_LEN)
            .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
            .collect()
    }

    /// `sender` rewritten into `forwarding_domain`; `<>` stays `<>`.
    pub fn forward(&self, sender: &str, forwarding_domain: &str, now: i64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        let tt = timestamp(day(now));
        let hash = self.hash(&tt, domain, local);
        format!("SRS0={hash}={tt}={domain}={local}@{forwarding_domain}")
    }

    /// The original sender of an SRS address's local part, if it is one of
    /// ours, untampered and not expired.
    pub fn reverse(&self, local_part: &str, now: i64) -> Option<String> {
        let rest = local_part
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("SRS0="))
            .and_then(|_| local_part.get(5..))?;
        let mut parts = rest.splitn(4, '=');
        let (hash, tt, domain, local) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if domain.is_empty() || local.is_empty() {
            return None;
        }
        if !self.hash(tt, domain, local).eq_ignore_ascii_case(hash) {
            return None;
        }
        let sent = decode_timestamp(tt)?;
        let age = (day(now) % 1024 + 1024 - sent) % 1024;
        (age <= MAX_AGE_DAYS).then(|| format!("{local}@{domain}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;

    #[test]
    fn a_rewritten_sender_reverses_to_the_original() {
        let srs = Srs::new([7; 32]);
        let rewritten = srs.forward("alice@origin.example", "example.org", NOW);
        let (local, domain) = rewritten.rsplit_once('@').unwrap();
        assert_eq!(domain, "example.org");
        assert!(local.starts_with("SRS0="), "{rewritten}");
        assert_eq!(
            srs.reverse(local, NOW).as_deref(),
            Some("alice@origin.example")
        );
        // MTAs may fold the case of the local part.
        assert_eq!(
            srs.reverse(&local.to_ascii_uppercase(), NOW).as_deref(),
            Some("ALICE@ORIGIN.EXAMPLE")
        );
        assert_eq!(srs.forward("", "example.org", NOW), "");
    }

    #[test]
    fn local_parts_with_equals_signs_survive() {
        let srs = Srs::new([1; 32]);
        let rewritten = srs.forward("a=b=c@x.example", "example.org", NOW);
        let local = rewritten.rsplit_once('@').unwrap().0;
        assert_eq!(srs.reverse(local, NOW).as_deref(), Some("a=b=c@x.example"));
    }

    #[test]
    fn forged_expired_and_foreign_addresses_are_refused() {
        let srs = Srs::new([7; 32]);
        let rewritten = srs.forward("alice@origin.example", "example.org", NOW);
        let local = rewritten.rsplit_once('@').unwrap().0;
        let forged = local.replace("origin.example", "victim.example");
        assert_eq!(srs.reverse(&forged, NOW), None);
        assert_eq!(srs.reverse(local, NOW + 22 * 86_400), None);
        assert!(srs.reverse(local, NOW + 21 * 86_400).is_some());
        assert_eq!(Srs::new([8; 32]).reverse(local, NOW), None);
        for garbage in [
            "SRS0=",
            "SRS0==",
            "srs0=a=b",
            "SRS0=x=yy=d=",
            "alice",
            "SRS0=ü=ü=ü=ü",
        ] {
            assert_eq!(srs.reverse(garbage, NOW), None, "{garbage}");
        }
    }
}
