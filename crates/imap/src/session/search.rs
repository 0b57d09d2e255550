//! SEARCH and UID SEARCH (RFC 3501 §6.4.4). Flag, size, date and set keys
//! use the records only; FROM, TO, CC, BCC, SUBJECT and the SENT* dates the
//! envelope computed at delivery (read 256 messages per store call); other
//! header keys read each message's header block, BODY and TEXT stream the
//! message in chunks.

use std::io;
use std::sync::Arc;

use store::{BlobId, MessageRecord};
use summary::{Address, Envelope};

use super::Session;
use crate::proto::date::{day_of, parse_header_date};
use crate::proto::{SearchKey, SearchReturn, format};

/// Header bytes read per message for header keys.
const MAX_HEADER: u64 = 256 * 1024;
/// Messages whose summaries are read in one store call.
const BATCH: usize = 256;

/// What evaluating a key needs besides the record.
#[derive(Default)]
struct Needs {
    /// The summary's envelope (address and subject keys, SENT* dates).
    envelope: bool,
    /// The raw header block (any other header field).
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
        SearchKey::Header(name, _) if envelope_field(name).is_none() => n.header = true,
        SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => n.envelope = true,
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
    /// The saved result, for `$` (RFC 5182).
    saved: &'a [u32],
    /// The envelope, when the keys need it and the summary is complete.
    envelope: Option<&'a Envelope>,
    /// Unfolded header fields: lowercase name, value.
    header: Vec<(String, Vec<u8>)>,
    /// Results of `Needs::texts`, consumed in the same order.
    texts: Vec<bool>,
}

impl Candidate<'_> {
    /// The Date header's date.
    fn sent(&self) -> Option<i64> {
        if let Some(env) = self.envelope {
            return parse_header_date(env.date.as_deref()?);
        }
        let (_, v) = self.header.iter().find(|(n, _)| n == "date")?;
        parse_header_date(&String::from_utf8_lossy(v))
    }

    /// Whether header field `name` contains `value`: from the envelope for
    /// the fields it has, else from the header block.
    fn header_contains(&self, name: &str, value: &str) -> bool {
        if let (Some(env), Some(field)) = (self.envelope, envelope_field(name)) {
            return match field {
                EnvelopeField::Subject => env
                    .subject
                    .as_ref()
                    .is_some_and(|s| contains_ci(s.as_bytes(), value.as_bytes())),
                EnvelopeField::Addresses(pick) => {
                    let list = pick(env);
                    !list.is_empty()
                        && contains_ci(addresses_text(list).as_bytes(), value.as_bytes())
                }
            };
        }
        self.header
            .iter()
            .any(|(n, v)| n == name && contains_ci(v, value.as_bytes()))
    }
}

/// Header fields the envelope holds, decoded at delivery.
enum EnvelopeField {
    Subject,
    Addresses(fn(&Envelope) -> &[Address]),
}

fn envelope_field(name: &str) -> Option<EnvelopeField> {
    Some(match name {
        "subject" => EnvelopeField::Subject,
        "from" => EnvelopeField::Addresses(|e| &e.from),
        "to" => EnvelopeField::Addresses(|e| &e.to),
        "cc" => EnvelopeField::Addresses(|e| &e.cc),
        "bcc" => EnvelopeField::Addresses(|e| &e.bcc),
        _ => return None,
    })
}

/// An address list as a header would show it: `Name <box@host>, ...`.
fn addresses_text(list: &[Address]) -> String {
    let mut out = String::new();
    for a in list {
        if let Some(group) = &a.group {
            out.push_str(group);
            out.push_str(": ");
            continue;
        }
        if let Some(name) = &a.name {
            out.push_str(name);
            out.push(' ');
        }
        out.push('<');
        out.push_str(a.mailbox.as_deref().unwrap_or(""));
        if let Some(host) = &a.host {
            out.push('@');
            out.push_str(host);
        }
        out.push_str(">, ");
    }
    out
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
        SearchKey::Seq(set) | SearchKey::Uid(set) if set.is_saved() => c.saved.contains(&c.uid),
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
        SearchKey::Header(name, value) => c.header_contains(name, value),
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
    /// The header block (its first `body_offset` bytes) of a message.
    async fn header_of(
        &self,
        blob: BlobId,
        body_offset: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, store::StoreError> {
        let reader = self.inner.store.open_blob(blob).await?;
        let len = body_offset.min(MAX_HEADER);
        Ok(header_fields(&reader.read_range(0, len).await?))
    }

    /// Whether each needle occurs in the message (TEXT) or its body (BODY,
    /// from `body_start`), reading one chunk at a time with an overlap for
    /// matches across chunks.
    async fn texts_of(
        &self,
        blob: BlobId,
        body_start: u64,
        texts: &[(bool, String)],
    ) -> Result<Vec<bool>, store::StoreError> {
        let mut reader = self.inner.store.open_blob(blob).await?;
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
        self.hold_selected().await;
        let Some(sel) = self.selected.as_ref() else {
            return Ok("BAD No mailbox selected".into());
        };
        let mailbox = sel.id;
        let view: Arc<Vec<u32>> = Arc::new(sel.uids.clone());
        let saved: Arc<Vec<u32>> = Arc::new(sel.saved.clone());
        let a = self.account();
        let mut wants = Needs::default();
        needs(key, &mut wants);
        let count = view.len() as u32;
        let largest_uid = view.last().copied().unwrap_or(0);
        // Only the client's view counts: messages after its last UID are
        // not searched, nor the deletion markers between them. When the
        // keys need only the records, the store hands over just the hits.
        let records_only = !wants.envelope && !wants.header && wants.texts.is_empty();
        let keep = {
            let (view, saved, key) = (view.clone(), saved.clone(), key.clone());
            move |uid: u32, rec: &MessageRecord| {
                let Ok(i) = view.binary_search(&uid) else {
                    return false;
                };
                if !records_only {
                    return true;
                }
                let c = Candidate {
                    saved: &saved,
                    seq: i as u32 + 1,
                    uid,
                    count,
                    largest_uid,
                    rec,
                    envelope: None,
                    header: Vec::new(),
                    texts: Vec::new(),
                };
                eval(&key, &c, &mut 0)
            }
        };
        let records = match (view.first(), view.last()) {
            (Some(&lo), Some(&hi)) => {
                match self.inner.store.list_where(a, mailbox, lo..=hi, keep).await {
                    Ok(r) => r,
                    Err(e) => return Ok(super::store_error(e)),
                }
            }
            _ => Vec::new(),
        };
        let mut hits = Vec::new();
        let mut highest = 0;
        // Messages the client has not been told about yet do not exist for
        // it.
        let visible: Vec<(usize, &(u32, MessageRecord))> = records
            .iter()
            .filter_map(|r| view.binary_search(&r.0).ok().map(|i| (i, r)))
            .collect();
        for batch in visible.chunks(BATCH) {
            let summaries = if wants.envelope || wants.header || !wants.texts.is_empty() {
                let blobs = batch.iter().map(|(_, (_, rec))| rec.blob).collect();
                match self.inner.store.summaries(blobs).await {
                    Ok(s) => s,
                    Err(e) => return Ok(super::store_error(e)),
                }
            } else {
                Vec::new()
            };
            for (k, &(i, (u, rec))) in batch.iter().enumerate() {
                let summary = summaries.get(k);
                let envelope = summary.filter(|s| !s.truncated).map(|s| &s.envelope);
                // A cut summary may lack envelope fields: read the header.
                let header = if wants.header || (wants.envelope && envelope.is_none()) {
                    let offset = summary.map_or(MAX_HEADER, |s| s.root.body_offset);
                    match self.header_of(rec.blob, offset).await {
                        Ok(h) => h,
                        Err(e) => return Ok(super::store_error(e)),
                    }
                } else {
                    Vec::new()
                };
                let texts = if wants.texts.is_empty() {
                    Vec::new()
                } else {
                    let body_start = summary.map_or(0, |s| s.root.body_offset);
                    match self.texts_of(rec.blob, body_start, &wants.texts).await {
                        Ok(t) => t,
                        Err(e) => return Ok(super::store_error(e)),
                    }
                };
                let c = Candidate {
                    saved: &saved,
                    seq: i as u32 + 1,
                    uid: *u,
                    count,
                    largest_uid,
                    rec,
                    envelope,
                    header,
                    texts,
                };
                if eval(key, &c, &mut 0) {
                    hits.push(if uid { *u } else { c.seq });
                    highest = highest.max(rec.modseq);
                }
            }
        }
        if wants.modseq {
            self.condstore = true;
        }
        let ret = ret.or(self.rev2.then_some(SearchReturn::ALL));
        if let Some(r) = ret.filter(|r| r.save)
            && let Some(sel) = self.selected.as_mut()
        {
            sel.saved = saved_uids(&hits, uid, &view, r);
        }
        let out = match ret {
            Some(ret) if !ret.responds() => String::new(),
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
        self.io.write_later(out.as_bytes()).await?;
        Ok(format!(
            "OK {}SEARCH completed",
            if uid { "UID " } else { "" }
        ))
    }
}

/// What `SEARCH RETURN (SAVE ...)` keeps, as UIDs: the hits, or only the
/// lowest and/or highest when MIN or MAX are asked without ALL or COUNT
/// (RFC 5182 §2.4). `hits` are ascending UIDs or message numbers.
fn saved_uids(hits: &[u32], uid: bool, view: &[u32], ret: SearchReturn) -> Vec<u32> {
    let to_uid = |h: u32| {
        if uid {
            Some(h)
        } else {
            (h as usize)
                .checked_sub(1)
                .and_then(|i| view.get(i))
                .copied()
        }
    };
    let ends_only = (ret.min || ret.max) && !ret.all && !ret.count;
    let picked: Vec<u32> = if ends_only {
        let mut ends: Vec<u32> = Vec::new();
        if let (true, Some(&min)) = (ret.min, hits.first()) {
            ends.push(min);
        }
        if let (true, Some(&max)) = (ret.max, hits.last())
            && ends.last() != Some(&max)
        {
            ends.push(max);
        }
        ends
    } else {
        hits.to_vec()
    };
    picked.into_iter().filter_map(to_uid).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists_as_text() {
        let a = |name: Option<&str>, mailbox: &str, host: &str| Address {
            name: name.map(str::to_string),
            mailbox: Some(mailbox.into()),
            host: Some(host.into()),
            group: None,
        };
        let text = addresses_text(&[
            a(Some("Carol Ö"), "carol", "example.net"),
            a(None, "x", "y"),
        ]);
        assert_eq!(text, "Carol Ö <carol@example.net>, <x@y>, ");
        assert!(contains_ci(text.as_bytes(), b"CAROL@example"));
        assert!(envelope_field("from").is_some() && envelope_field("x-spam").is_none());
    }

    #[test]
    fn saved_results() {
        let view = [3, 5, 9, 12];
        let save = |min, max, all| SearchReturn {
            min,
            max,
            count: false,
            all,
            save: true,
        };
        assert_eq!(
            saved_uids(&[1, 3, 4], false, &view, save(false, false, false)),
            vec![3, 9, 12]
        );
        assert_eq!(
            saved_uids(&[1, 3, 4], false, &view, save(true, true, false)),
            vec![3, 12]
        );
        assert_eq!(
            saved_uids(&[5, 9], true, &view, save(false, true, false)),
            vec![9]
        );
        assert_eq!(
            saved_uids(&[5, 9], true, &view, save(true, false, true)),
            vec![5, 9]
        );
        assert_eq!(
            saved_uids(&[9], true, &view, save(true, true, false)),
            vec![9]
        );
        assert!(saved_uids(&[], true, &view, save(true, true, false)).is_empty());
    }

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
