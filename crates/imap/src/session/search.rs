//! SEARCH and UID SEARCH (RFC 3501 §6.4.4). Flag, size, date and set keys
//! use the records only; header keys read each message's header block, BODY
//! and TEXT stream the message in chunks.

use std::io;

use store::{BlobId, MessageRecord};

use super::Session;
use crate::proto::date::{day_of, parse_header_date};
use crate::proto::{SearchKey, SearchReturn, format};

/// Header bytes read per message for header keys.
const MAX_HEADER: u64 = 256 * 1024;

/// What evaluating a key needs besides the record.
#[derive(Default)]
struct Needs {
    header: bool,
    /// A MODSEQ key: the result carries the highest modseq (RFC 7162 §3.1.5).
    modseq: bool,
    /// BODY (false) and TEXT (true) needles, in key order.
    texts: Vec<(bool, String)>,
}

fn needs(key: &SearchKey, n: &mut Needs) {
    match key {
        SearchKey::And(keys) => keys.iter().for_each(|k| needs(k, n)),
        SearchKey::Or(a, b) => {
            needs(a, n);
            needs(b, n);
        }
        SearchKey::Not(k) => needs(k, n),
        SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => n.header = true,
        SearchKey::ModSeq(_) => n.modseq = true,
        SearchKey::Body(s) => n.texts.push((false, s.clone())),
        SearchKey::Text(s) => n.texts.push((true, s.clone())),
        _ => {}
    }
}

/// One message as a key sees it.
struct Candidate<'a> {
    seq: u32,
    uid: u32,
    count: u32,
    largest_uid: u32,
    rec: &'a MessageRecord,
    /// Unfolded header fields: lowercase name, value.
    header: Vec<(String, Vec<u8>)>,
    /// Results of `Needs::texts`, consumed in the same order.
    texts: Vec<bool>,
}

impl Candidate<'_> {
    /// The Date header's date.
    fn sent(&self) -> Option<i64> {
        let (_, v) = self.header.iter().find(|(n, _)| n == "date")?;
        parse_header_date(&String::from_utf8_lossy(v))
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn eval(key: &SearchKey, c: &Candidate<'_>, text_index: &mut usize) -> bool {
    match key {
        SearchKey::All => true,
        SearchKey::None => false,
        SearchKey::And(keys) => {
            // Evaluate all, so text results stay aligned with their keys.
            let mut all = true;
            for k in keys {
                all &= eval(k, c, text_index);
            }
            all
        }
        SearchKey::Or(a, b) => {
            let x = eval(a, c, text_index);
            let y = eval(b, c, text_index);
            x || y
        }
        SearchKey::Not(k) => !eval(k, c, text_index),
        SearchKey::Seq(set) => set.contains(c.seq, c.count),
        SearchKey::Uid(set) => set.contains(c.uid, c.largest_uid),
        SearchKey::Flag(bit, set) => (c.rec.flags.system & bit != 0) == *set,
        SearchKey::Keyword(k, set) => {
            c.rec
                .flags
                .keywords
                .iter()
                .any(|x| x.eq_ignore_ascii_case(k))
                == *set
        }
        SearchKey::Larger(n) => c.rec.size > *n,
        SearchKey::ModSeq(n) => c.rec.modseq >= *n,
        SearchKey::Smaller(n) => c.rec.size < *n,
        SearchKey::Before(d) => day_of(c.rec.internal_date) < *d,
        SearchKey::On(d) => day_of(c.rec.internal_date) == *d,
        SearchKey::Since(d) => day_of(c.rec.internal_date) >= *d,
        SearchKey::SentBefore(d) => c.sent().is_some_and(|s| s < *d),
        SearchKey::SentOn(d) => c.sent() == Some(*d),
        SearchKey::SentSince(d) => c.sent().is_some_and(|s| s >= *d),
        SearchKey::Header(name, value) => c
            .header
            .iter()
            .any(|(n, v)| n == name && contains_ci(v, value.as_bytes())),
        SearchKey::Body(_) | SearchKey::Text(_) => {
            let r = c.texts.get(*text_index).copied().unwrap_or(false);
            *text_index += 1;
            r
        }
    }
}

/// Header fields of a header block, unfolded (RFC 5322 §2.2.3).
fn header_fields(block: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, v)) = out.last_mut() {
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon])
                .trim()
                .to_ascii_lowercase();
            out.push((name, line[colon + 1..].trim_ascii().to_vec()));
        }
    }
    out
}

impl Session {
    async fn header_of(&self, blob: BlobId) -> Result<Vec<(String, Vec<u8>)>, store::StoreError> {
        let store = &self.inner.store;
        let summary = store.summary(blob).await?;
        let reader = store.open_blob(blob).await?;
        let len = summary.root.body_offset.min(MAX_HEADER);
        Ok(header_fields(&reader.read_range(0, len).await?))
    }

    /// Whether each needle occurs in the message (TEXT) or its body (BODY),
    /// reading one chunk at a time with an overlap for matches across chunks.
    async fn texts_of(
        &self,
        blob: BlobId,
        texts: &[(bool, String)],
    ) -> Result<Vec<bool>, store::StoreError> {
        let store = &self.inner.store;
        let body_start = store.summary(blob).await?.root.body_offset;
        let mut reader = store.open_blob(blob).await?;
        let mut found = vec![false; texts.len()];
        let longest = texts.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
        let mut carry: Vec<u8> = Vec::new();
        let mut pos = 0u64;
        while let Some(chunk) = reader.next_chunk().await? {
            let carry_start = pos - carry.len() as u64;
            carry.extend_from_slice(&chunk);
            pos += chunk.len() as u64;
            for (i, (whole, needle)) in texts.iter().enumerate() {
                let skip = if *whole {
                    0
                } else {
                    body_start.saturating_sub(carry_start) as usize
                };
                if !found[i]
                    && contains_ci(carry.get(skip..).unwrap_or_default(), needle.as_bytes())
                {
                    found[i] = true;
                }
            }
            if found.iter().all(|&f| f) {
                break;
            }
            let keep = longest.saturating_sub(1).min(carry.len());
            carry.drain(..carry.len() - keep);
        }
        Ok(found)
    }

    /// SEARCH; with `RETURN (...)` (RFC 4731) or once IMAP4rev2 is enabled
    /// (RFC 9051 §6.4.4, which has no `* SEARCH` response) the result is an
    /// ESEARCH response.
    pub(super) async fn search(
        &mut self,
        tag: &str,
        uid: bool,
        key: &SearchKey,
        ret: Option<SearchReturn>,
    ) -> io::Result<String> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok("BAD No mailbox selected".into());
        };
        let mailbox = sel.id;
        let view: Vec<u32> = sel.uids.clone();
        let a = self.account();
        let records = match self.inner.store.list(a, mailbox, 1..=u32::MAX).await {
            Ok(r) => r,
            Err(e) => return Ok(super::store_error(e)),
        };
        let mut wants = Needs::default();
        needs(key, &mut wants);
        let count = view.len() as u32;
        let largest_uid = view.last().copied().unwrap_or(0);
        let mut hits = Vec::new();
        let mut highest = 0;
        for (u, rec) in &records {
            // Messages the client has not been told about yet do not exist
            // for it.
            let Ok(i) = view.binary_search(u) else {
                continue;
            };
            let header = if wants.header {
                match self.header_of(rec.blob).await {
                    Ok(h) => h,
                    Err(e) => return Ok(super::store_error(e)),
                }
            } else {
                Vec::new()
            };
            let texts = if wants.texts.is_empty() {
                Vec::new()
            } else {
                match self.texts_of(rec.blob, &wants.texts).await {
                    Ok(t) => t,
                    Err(e) => return Ok(super::store_error(e)),
                }
            };
            let c = Candidate {
                seq: i as u32 + 1,
                uid: *u,
                count,
                largest_uid,
                rec,
                header,
                texts,
            };
            if eval(key, &c, &mut 0) {
                hits.push(if uid { *u } else { c.seq });
                highest = highest.max(rec.modseq);
            }
        }
        if wants.modseq {
            self.condstore = true;
        }
        let ret = ret.or(self.rev2.then_some(SearchReturn::ALL));
        let out = match ret {
            Some(ret) => format::esearch(tag, uid, ret, &hits, wants.modseq.then_some(highest)),
            None => {
                let mut out = String::from("* SEARCH");
                for h in &hits {
                    out.push_str(&format!(" {h}"));
                }
                if wants.modseq && !hits.is_empty() {
                    out.push_str(&format!(" (MODSEQ {highest})"));
                }
                out.push_str("\r\n");
                out
            }
        };
        self.io.write_all(out.as_bytes()).await?;
        Ok(format!(
            "OK {}SEARCH completed",
            if uid { "UID " } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold() {
        let h = header_fields(b"Subject: hello\r\n  world\r\nFrom: a@b\r\n\r\nbody: no\r\n");
        assert_eq!(
            h,
            vec![
                ("subject".into(), b"hello  world".to_vec()),
                ("from".into(), b"a@b".to_vec())
            ]
        );
        assert!(contains_ci(b"Hello World", b"o w"));
        assert!(!contains_ci(b"abc", b"abcd"));
    }
}
