//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2). Flags and sizes come from
//! the message records, ENVELOPE and BODYSTRUCTURE from the summary made at
//! delivery; message bytes are read only for body sections, and large ones are
//! streamed chunk by chunk.

use std::collections::HashMap;
use std::io;

use store::{BlobReader, CHUNK_SIZE, Expunged, FlagOp, MessageRecord, Summary};

use super::Session;
use super::mailbox::seen;
use crate::proto::format;
use crate::proto::{FetchAtt, SeqSet, date};

/// Messages whose records are read from the store at once.
const BATCH: usize = 256;
/// Sections up to this size are built in memory; larger ones are streamed.
const INLINE: u64 = 64 * 1024;
/// Header blocks are read whole for HEADER.FIELDS; cap them.
const MAX_HEADER: u64 = 1 << 20;
/// Largest part decoded for BINARY, which needs it in memory.
const MAX_BINARY: u64 = 16 << 20;

/// The UIDs within `ranges` below `uidnext` that are not in `present`
/// (sorted), as a UID set.
fn absent_uids(ranges: &[(u32, u32)], uidnext: u32, present: &[u32]) -> String {
    let assigned = uidnext.saturating_sub(1);
    let gone = ranges
        .iter()
        .flat_map(|&(lo, hi)| lo.max(1)..=hi.min(assigned))
        .filter(|u| present.binary_search(u).is_err());
    format::uid_set(gone)
}

impl Session {
    /// `* VANISHED (EARLIER)` for UID FETCH (CHANGEDSINCE n VANISHED)
    /// (RFC 7162 §3.2.6): UIDs in the set expunged after `since`.
    pub(super) async fn vanished_earlier(&mut self, set: &SeqSet, since: u64) -> io::Result<()> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let largest = sel.uids.last().copied().unwrap_or(0);
        // Without the list the client would miss expunges: end the session
        // rather than answer wrongly.
        let gone = self
            .vanished_since(sel.id, since, &set.ranges(largest))
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        if gone.is_empty() {
            return Ok(());
        }
        let line = format!("* VANISHED (EARLIER) {gone}\r\n");
        self.io.write_all(line.as_bytes()).await
    }

    /// The UIDs within `ranges` (sorted, merged) expunged after `since`, as
    /// a UID set, empty if none. Where the folder's expunge log no longer
    /// reaches back to `since`, every UID in range that ever was assigned and
    /// is not in the folder now: VANISHED (EARLIER) may name UIDs the client
    /// never had (RFC 7162 §3.2.10).
    pub(super) async fn vanished_since(
        &self,
        mailbox: store::MailboxId,
        since: u64,
        ranges: &[(u32, u32)],
    ) -> Result<String, store::StoreError> {
        let store = &self.inner.store;
        let a = self.account();
        // The ranges are sorted and disjoint: one binary search per UID, not
        // a walk over however many ranges the client sent.
        let inside = |u: u32| {
            let i = ranges.partition_point(|&(_, hi)| hi < u);
            ranges.get(i).is_some_and(|&(lo, _)| lo <= u)
        };
        Ok(match store.expunged_since(a, mailbox, since).await? {
            Expunged::Logged(mut gone) => {
                gone.retain(|&u| inside(u));
                gone.sort_unstable();
                gone.dedup();
                format::uid_set(gone.into_iter())
            }
            Expunged::Pruned { uidnext } => {
                let present: Vec<u32> = store
                    .folder_messages(a, mailbox)
                    .await?
                    .into_iter()
                    .map(|(u, _)| u)
                    .collect();
                absent_uids(ranges, uidnext, &present)
            }
        })
    }

    pub(super) async fn fetch(
        &mut self,
        uid: bool,
        set: &SeqSet,
        items: &[FetchAtt],
        changed_since: Option<u64>,
    ) -> io::Result<String> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok("BAD No mailbox selected".into());
        };
        if !uid && sel.out_of_range(set) {
            return Ok("BAD Message number out of range".into());
        }
        let targets = sel.resolve(set, uid);
        let (mailbox, read_only) = (sel.id, sel.read_only);
        let a = self.account();
        let marks_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    FetchAtt::Section { peek: false, .. } | FetchAtt::Binary { peek: false, .. }
                )
            });
        let mut out = Vec::new();
        for batch in targets.chunks(BATCH) {
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                continue;
            };
            let mut records = match self.inner.store.list(a, mailbox, first.1..=last.1).await {
                Ok(r) => r,
                Err(e) => {
                    // What earlier batches produced still goes out first.
                    self.io.write_all(&out).await?;
                    return Ok(super::store_error(e));
                }
            };
            let mut newly_seen = Vec::new();
            if marks_seen {
                // RFC 3501 §6.4.5: BODY[] sets \Seen; report the new FLAGS.
                let unseen: Vec<u32> = records
                    .iter()
                    .filter(|(u, r)| !r.flags.seen() && batch.iter().any(|t| t.1 == *u))
                    .map(|(u, _)| *u)
                    .collect();
                if !unseen.is_empty() {
                    match self
                        .inner
                        .store
                        .set_flags(a, mailbox, unseen, FlagOp::Add, seen(), None)
                        .await
                    {
                        Ok((updates, _)) => {
                            for up in updates {
                                if let Some(sel) = self.selected.as_mut() {
                                    sel.own_modseqs.push(up.modseq);
                                }
                                if let Ok(i) = records.binary_search_by_key(&up.uid, |(u, _)| *u) {
                                    records[i].1.flags = up.flags;
                                }
                                newly_seen.push(up.uid);
                            }
                        }
                        Err(e) => {
                            self.io.write_all(&out).await?;
                            return Ok(super::store_error(e));
                        }
                    }
                }
            }
            // One store read for the whole batch's summaries, not one per message
            // (only for the UIDs asked: the range read may hold others).
            let wanted: Vec<usize> = if needs_summary(items) {
                batch
                    .iter()
                    .filter_map(|&(_, u)| records.binary_search_by_key(&u, |(x, _)| *x).ok())
                    .collect()
            } else {
                Vec::new()
            };
            let mut summaries: HashMap<usize, Summary> = HashMap::new();
            if !wanted.is_empty() {
                let blobs = wanted.iter().map(|&i| records[i].1.blob).collect();
                match self.inner.store.summaries(blobs).await {
                    Ok(list) => summaries.extend(wanted.iter().copied().zip(list)),
                    Err(e) => {
                        self.io.write_all(&out).await?;
                        return Ok(super::store_error(e));
                    }
                }
            }
            for &(seq, u) in batch {
                let Ok(i) = records.binary_search_by_key(&u, |(x, _)| *x) else {
                    // Expunged meanwhile: nothing to send (RFC 3501 §7.4.1
                    // leaves the EXPUNGE for later).
                    continue;
                };
                if changed_since.is_some_and(|since| records[i].1.modseq <= since) {
                    continue;
                }
                let with_flags = newly_seen.contains(&u) && !items.contains(&FetchAtt::Flags);
                let msg = Message {
                    seq,
                    uid: u,
                    rec: &records[i].1,
                    summary: summaries.remove(&i),
                };
                self.fetch_one(&mut out, msg, items, with_flags).await?;
                if out.len() >= INLINE as usize {
                    self.io.write_later(&out).await?;
                    out.clear();
                }
            }
        }
        self.io.write_later(&out).await?;
        if let Some(code) = self.binary_failure.take() {
            return Ok(format!(
                "NO [{code}] A part could not be decoded for BINARY"
            ));
        }
        Ok(format!(
            "OK {}FETCH completed",
            if uid { "UID " } else { "" }
        ))
    }

    /// Appends `* seq FETCH (...)` to `out`, which the caller sends (small
    /// responses are batched; large sections are streamed, flushing `out`
    /// first). A store failure may come after part of the response was sent,
    /// which cannot be taken back: it ends the connection like an I/O error.
    async fn fetch_one(
        &mut self,
        out: &mut Vec<u8>,
        msg: Message<'_>,
        items: &[FetchAtt],
        with_flags: bool,
    ) -> io::Result<()> {
        let Message {
            seq,
            uid,
            rec,
            summary,
        } = msg;
        let store = self.inner.store.clone();
        let other = |e: store::StoreError| io::Error::other(e.to_string());
        let mut blob: Option<BlobReader> = None;
        out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
        let mut first = true;
        let mut items: Vec<&FetchAtt> = items.iter().collect();
        if with_flags {
            items.push(&FetchAtt::Flags);
        }
        // RFC 7162 §3.1: with CONDSTORE, flags travel with their MODSEQ.
        if self.condstore
            && items.contains(&&FetchAtt::Flags)
            && !items.contains(&&FetchAtt::ModSeq)
        {
            items.push(&FetchAtt::ModSeq);
        }
        for item in items {
            if !first {
                out.push(b' ');
            }
            first = false;
            match item {
                FetchAtt::Flags => out
                    .extend_from_slice(format!("FLAGS ({})", format::flags(&rec.flags)).as_bytes()),
                FetchAtt::Uid => out.extend_from_slice(format!("UID {uid}").as_bytes()),
                FetchAtt::ModSeq => {
                    out.extend_from_slice(format!("MODSEQ ({})", rec.modseq).as_bytes())
                }
                FetchAtt::InternalDate => out.extend_from_slice(
                    format!(
                        "INTERNALDATE \"{}\"",
                        date::format_date_time(rec.internal_date)
                    )
                    .as_bytes(),
                ),
                FetchAtt::Rfc822Size => {
                    out.extend_from_slice(format!("RFC822.SIZE {}", rec.size).as_bytes())
                }
                FetchAtt::Envelope => {
                    if let Some(s) = &summary {
                        out.extend_from_slice(b"ENVELOPE ");
                        format::envelope(out, &s.envelope);
                    }
                }
                FetchAtt::BodyStructure | FetchAtt::Body => {
                    if let Some(s) = &summary {
                        let ext = matches!(item, FetchAtt::BodyStructure);
                        out.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
                        format::body_structure(out, &s.root, ext);
                    }
                }
                FetchAtt::Binary { part, partial, .. } => {
                    let Some(s) = &summary else { continue };
                    let mut name = binary_name("BINARY", part);
                    if let Some((origin, _)) = partial {
                        name.push_str(&format!("<{origin}>"));
                    }
                    out.extend_from_slice(name.as_bytes());
                    out.push(b' ');
                    if blob.is_none() {
                        blob = Some(store.open_blob(rec.blob).await.map_err(other)?);
                    }
                    let Some(reader) = blob.as_ref() else {
                        continue;
                    };
                    match decoded_part(reader, &s.root, rec.size, part).await? {
                        Ok(data) => {
                            let bytes = clip(&data, *partial);
                            // literal8 (RFC 3516 §4.3) when NUL bytes are in it.
                            if bytes.contains(&0) {
                                out.push(b'~');
                            }
                            literal_head(out, bytes.len() as u64);
                            out.extend_from_slice(bytes);
                        }
                        Err(code) => {
                            out.extend_from_slice(b"NIL");
                            self.binary_failure = Some(code);
                        }
                    }
                }
                FetchAtt::BinarySize(part) => {
                    let Some(s) = &summary else { continue };
                    out.extend_from_slice(binary_name("BINARY.SIZE", part).as_bytes());
                    if blob.is_none() {
                        blob = Some(store.open_blob(rec.blob).await.map_err(other)?);
                    }
                    let Some(reader) = blob.as_ref() else {
                        continue;
                    };
                    match decoded_part(reader, &s.root, rec.size, part).await? {
                        Ok(data) => out.extend_from_slice(format!(" {}", data.len()).as_bytes()),
                        Err(code) => {
                            out.extend_from_slice(b" 0");
                            self.binary_failure = Some(code);
                        }
                    }
                }
                FetchAtt::Section {
                    section,
                    partial,
                    legacy,
                    ..
                } => {
                    let range = match &summary {
                        Some(s) => format::section_range(&s.root, rec.size, section),
                        // The whole message (BODY[], RFC822) needs no summary.
                        None if is_whole(section) => Some(format::SectionRange {
                            start: 0,
                            end: rec.size,
                            filter: None,
                        }),
                        None => continue,
                    };
                    let name = match legacy {
                        Some(l) => l.to_string(),
                        None => format::section_name(section, partial.map(|p| p.0)),
                    };
                    out.extend_from_slice(name.as_bytes());
                    out.push(b' ');
                    let Some(range) = range else {
                        // RFC 3501 §6.4.5: a section that does not exist is empty.
                        out.extend_from_slice(b"\"\"");
                        continue;
                    };
                    if blob.is_none() {
                        blob = Some(store.open_blob(rec.blob).await.map_err(other)?);
                    }
                    let Some(reader) = blob.as_ref() else {
                        continue;
                    };
                    let (start, end) = (range.start, range.end.min(rec.size).max(range.start));
                    if let Some((not, names)) = &range.filter {
                        let len = (end - start).min(MAX_HEADER);
                        let header = reader.read_range(start, len).await.map_err(other)?;
                        let filtered = format::filter_header(&header, *not, names);
                        let bytes = clip(&filtered, *partial);
                        literal_head(out, bytes.len() as u64);
                        out.extend_from_slice(bytes);
                        continue;
                    }
                    let (from, to) = match partial {
                        Some((o, n)) => {
                            let from = start.saturating_add(u64::from(*o)).min(end);
                            (from, from.saturating_add(u64::from(*n)).min(end))
                        }
                        None => (start, end),
                    };
                    literal_head(out, to - from);
                    if to - from <= INLINE {
                        let bytes = reader.read_range(from, to - from).await.map_err(other)?;
                        out.extend_from_slice(&bytes);
                    } else {
                        self.io.write_all(out).await?;
                        out.clear();
                        let mut pos = from;
                        while pos < to {
                            let n = (to - pos).min(CHUNK_SIZE as u64);
                            let bytes = reader.read_range(pos, n).await.map_err(other)?;
                            if bytes.is_empty() {
                                return Err(io::Error::other("message shorter than its record"));
                            }
                            self.io.write_all(&bytes).await?;
                            pos += bytes.len() as u64;
                        }
                    }
                }
            }
        }
        out.extend_from_slice(b")\r\n");
        Ok(())
    }
}

/// `BINARY[1.2]`, `BINARY.SIZE[]`.
fn binary_name(item: &str, part: &[u32]) -> String {
    let parts: Vec<String> = part.iter().map(u32::to_string).collect();
    format!("{item}[{}]", parts.join("."))
}

/// Bytes of one part decoded for BINARY: the whole message as stored for an
/// empty part number, else the part's body without its transfer encoding.
/// `Err` is the response code for the tagged NO: an encoding this server
/// cannot decode (RFC 3516 §4.3), or a part too large to decode in memory.
async fn decoded_part(
    reader: &BlobReader,
    root: &summary::Part,
    size: u64,
    part: &[u32],
) -> io::Result<Result<Vec<u8>, &'static str>> {
    let other = |e: store::StoreError| io::Error::other(e.to_string());
    let (start, end, encoding) = if part.is_empty() {
        (0, size, None)
    } else {
        match format::find_part(root, part) {
            Some(p) => (
                p.body_offset.min(size),
                p.end_offset.min(size),
                p.encoding.as_deref(),
            ),
            // A part that does not exist is empty, as for BODY[].
            None => return Ok(Ok(Vec::new())),
        }
    };
    let len = end.saturating_sub(start);
    if len > MAX_BINARY {
        return Ok(Err("LIMIT"));
    }
    let raw = reader.read_range(start, len).await.map_err(other)?;
    Ok(format::decode_transfer_encoding(encoding, &raw).ok_or("UNKNOWN-CTE"))
}

fn literal_head(out: &mut Vec<u8>, len: u64) {
    out.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
}

/// `<origin.length>` applied to in-memory bytes.
fn clip(b: &[u8], partial: Option<(u32, u32)>) -> &[u8] {
    match partial {
        None => b,
        Some((o, n)) => {
            let from = (o as usize).min(b.len());
            let to = from.saturating_add(n as usize).min(b.len());
            &b[from..to]
        }
    }
}

/// One message of a FETCH response.
struct Message<'a> {
    seq: u32,
    uid: u32,
    rec: &'a MessageRecord,
    /// Read beforehand for the whole batch when an item needs it.
    summary: Option<Summary>,
}

/// Whether any item needs the message's MIME summary (one store read per
/// batch, saved for the common `BODY[]` of a whole message).
fn needs_summary(items: &[FetchAtt]) -> bool {
    items.iter().any(|i| match i {
        FetchAtt::Section { section, .. } => !is_whole(section),
        FetchAtt::Envelope
        | FetchAtt::BodyStructure
        | FetchAtt::Body
        | FetchAtt::Binary { .. }
        | FetchAtt::BinarySize(_) => true,
        _ => false,
    })
}

/// `BODY[]`, `RFC822`: the whole message.
fn is_whole(section: &crate::proto::Section) -> bool {
    section.part.is_empty() && section.text.is_none()
}

#[cfg(test)]
mod tests {
    use super::{absent_uids, clip};

    #[test]
    fn absent_uids_are_those_assigned_and_gone() {
        // UIDs 1..=9 were assigned; 2, 5 and 6 are still here.
        assert_eq!(absent_uids(&[(1, u32::MAX)], 10, &[2, 5, 6]), "1,3:4,7:9");
        // Only within what the client knows, never UID 0.
        assert_eq!(absent_uids(&[(0, 3), (6, 7)], 10, &[2, 5, 6]), "1,3,7");
        assert_eq!(absent_uids(&[(1, u32::MAX)], 1, &[]), "");
        assert_eq!(absent_uids(&[(1, 4)], 5, &[1, 2, 3, 4]), "");
    }

    #[test]
    fn partial_clipping() {
        assert_eq!(clip(b"hello", Some((1, 3))), b"ell");
        assert_eq!(clip(b"hello", Some((4, 100))), b"o");
        assert_eq!(clip(b"hello", Some((9, 1))), b"");
        assert_eq!(clip(b"hello", None), b"hello");
    }
}
