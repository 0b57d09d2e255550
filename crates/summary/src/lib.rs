//! Message summary computed once at delivery time: everything an IMAP server
//! needs later for ENVELOPE, BODYSTRUCTURE and partial fetches (RFC 3501
//! §7.4.2), without keeping or re-reading the message.
//!
//! The scanner is incremental and its memory is bounded by [`Limits`]: one
//! line prefix (enough to recognise a boundary line), one header block of at
//! most `max_header_bytes`, and one stack frame per open MIME level. The
//! header/body split and the boundary scanning are done here; each header
//! block is then parsed with `mail-parser`. Whatever the input, the scanner
//! never fails: when a limit is hit the structure is cut, `truncated` is set
//! and the remaining bytes count as body of the innermost kept part.

use std::borrow::Cow;

use mail_parser::{Addr, ContentType, HeaderName, HeaderValue, MessageParser};
use serde::{Deserialize, Serialize};

/// Longest boundary accepted. RFC 2046 §5.1.1 allows 70 characters; some
/// generators exceed that, so be lenient while keeping the line prefix small.
const MAX_BOUNDARY: usize = 200;
/// Bytes of each line kept for boundary matching: `--`, boundary, `--`.
const PREFIX_CAP: usize = MAX_BOUNDARY + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest level a part may sit at (the root is at 0); a multipart or
    /// message/rfc822 at this level is not expanded.
    pub max_depth: usize,
    /// Parts in the whole tree, the root and message/rfc822 bodies included.
    pub max_parts: usize,
    /// Bytes of one header block kept for parsing. Only the fields this crate
    /// reads are kept; a field that does not fit is dropped.
    pub max_header_bytes: usize,
    /// Header fields read per block; later fields are ignored.
    pub max_headers: usize,
    /// Parameters kept per header field (also caps Content-Language tags).
    pub max_params: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_parts: 1000,
            max_header_bytes: 64 * 1024,
            max_headers: 1000,
            max_params: 32,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Size of the whole message in bytes.
    pub size: u64,
    pub envelope: Envelope,
    pub root: Part,
    /// A limit cut the structure or dropped header data.
    pub truncated: bool,
}

/// Envelope header fields as found in the header block (first occurrence of
/// each). The RFC 3501 defaults (Sender and Reply-To falling back to From)
/// are left to the IMAP layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// `group: Some(name)` starts an RFC 2822 group, `Address::group_end()` ends
/// it (RFC 3501 ENVELOPE group syntax); otherwise name/mailbox/host. A
/// mailbox without `@` has `host: None`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Address {
    pub name: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
    pub group: Option<String>,
}

impl Address {
    /// Marker closing the group opened by the previous `group: Some(_)` entry.
    pub fn group_end() -> Self {
        Self::default()
    }

    fn group_start(name: &str) -> Self {
        Self {
            group: Some(name.to_string()),
            ..Self::default()
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Part {
    /// Byte offsets in the whole message; `end_offset` is exclusive. For a
    /// multipart child the end excludes the CRLF preceding the next boundary
    /// line, which belongs to the delimiter (RFC 2046 §5.1.1).
    pub header_offset: u64,
    pub body_offset: u64,
    pub end_offset: u64,
    /// Lines in `body_offset..end_offset`; a last line without line ending
    /// counts too.
    pub body_lines: u64,
    /// Lowercase; default text/plain, or message/rfc822 inside
    /// multipart/digest (RFC 2046 §5.1.5).
    pub content_type: String,
    pub content_subtype: String,
    /// Names lowercase; text parts always carry a charset (default us-ascii).
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    pub encoding: Option<String>,
    pub md5: Option<String>,
    /// Disposition type (lowercase) and its parameters.
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Vec<String>,
    pub location: Option<String>,
    pub kind: PartKind,
}

/// A multipart or message/rfc822 part that was not expanded (no usable
/// boundary, header cut short, encoded message, or a limit) is `Single`. A
/// multipart whose body holds no boundary line has no children; IMAP servers
/// usually report an empty text/plain child then.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub enum PartKind {
    #[default]
    Single,
    Multipart(Vec<Part>),
    Message {
        envelope: Box<Envelope>,
        body: Box<Part>,
    },
}

/// Summarizes a whole message held in memory.
pub fn summarize(message: &[u8], limits: Limits) -> Summary {
    let mut builder = SummaryBuilder::new(limits);
    builder.feed(message);
    builder.finish()
}

/// Incremental scanner: `feed` the message in chunks of any size, then
/// `finish`. The result does not depend on where chunks are split.
pub struct SummaryBuilder {
    limits: Limits,
    parser: MessageParser,
    size: u64,
    truncated: bool,
    /// Parts created so far.
    parts: usize,
    /// Open parts, outermost first; only the last one may be reading a header.
    stack: Vec<Frame>,
    hdr: HeaderBlock,
    line: Line,
}

/// State of the line being read. Only a bounded prefix is kept.
struct Line {
    start: u64,
    len: u64,
    /// Index of this line in the message.
    number: u64,
    prefix: [u8; PREFIX_CAP],
    prefix_len: usize,
    /// Last two bytes seen, to find a CR before LF across chunk borders.
    penult: u8,
    last: u8,
    /// Where the previous line's CRLF/LF starts, and whether it had content.
    prev_eol_start: u64,
    prev_empty: bool,
}

struct Frame {
    /// Header fields and offsets are filled in as they become known.
    part: Part,
    /// Line index of the first body line.
    body_line0: u64,
    depth: usize,
    envelope: Option<Envelope>,
    state: State,
}

enum State {
    Header {
        in_digest: bool,
    },
    Body,
    /// Children are closed parts; the open child, if any, is the next frame.
    /// After the close delimiter the boundary no longer matches (epilogue).
    Multipart {
        boundary: Vec<u8>,
        children: Vec<Part>,
        epilogue: bool,
    },
    /// The encapsulated message is the next frame until both close together.
    Message {
        inner: Option<(Box<Envelope>, Box<Part>)>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LineClass {
    /// Not known yet: no colon seen in the prefix so far.
    Pending,
    Keep,
    Skip,
}

/// The current header block, reduced to the fields this crate reads.
struct HeaderBlock {
    buf: Vec<u8>,
    message_root: bool,
    line: LineClass,
    /// Prefix bytes already searched for the colon.
    scanned: usize,
    field_start: usize,
    field_keep: bool,
    /// Set while a kept field with parameters is being buffered.
    params: Option<ParamScan>,
    fields: usize,
    /// `max_headers` was reached: the rest of the block is ignored.
    full: bool,
}

/// Counts the `;` outside quoted strings and comments of a Content-Type or
/// Content-Disposition field as it is buffered, so the field is cut after
/// `max_params` parameters before mail-parser sees it (its parameter handling
/// is quadratic). Each segment counts, RFC 2231 continuations included.
#[derive(Default)]
struct ParamScan {
    quoted: bool,
    escaped: bool,
    comment: usize,
    count: usize,
}

impl ParamScan {
    /// Position in `bytes` of the first `;` beyond `max_params`, if any.
    fn cut(&mut self, bytes: &[u8], max_params: usize) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.escaped {
                self.escaped = false;
                continue;
            }
            match b {
                b'\\' if self.quoted || self.comment > 0 => self.escaped = true,
                b'"' if self.comment == 0 => self.quoted = !self.quoted,
                b'(' if !self.quoted => self.comment += 1,
                b')' if !self.quoted => self.comment = self.comment.saturating_sub(1),
                b';' if !self.quoted && self.comment == 0 => {
                    self.count += 1;
                    if self.count > max_params {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

impl HeaderBlock {
    fn new(message_root: bool) -> Self {
        Self {
            buf: Vec::new(),
            message_root,
            line: LineClass::Pending,
            scanned: 0,
            field_start: 0,
            field_keep: false,
            params: None,
            fields: 0,
            full: false,
        }
    }

    fn reset(&mut self, message_root: bool) {
        let buf = std::mem::take(&mut self.buf);
        *self = Self::new(message_root);
        self.buf = buf;
        self.buf.clear();
    }

    /// Classifies the current line once its prefix shows what it is.
    fn classify(&mut self, prefix: &[u8], limits: &Limits, truncated: &mut bool) {
        let Some(&first) = prefix.first() else {
            return;
        };
        if first == b' ' || first == b'\t' {
            // Folded continuation of the open field (RFC 5322 §2.2.3).
            self.line = if self.field_keep {
                LineClass::Keep
            } else {
                LineClass::Skip
            };
            return;
        }
        let fresh = prefix.get(self.scanned..).unwrap_or_default();
        let colon = match fresh.iter().position(|&b| b == b':') {
            Some(pos) => self.scanned + pos,
            // Longer than any field name of interest: count it, skip it.
            None if prefix.len() == PREFIX_CAP => 0,
            None => {
                self.scanned = prefix.len();
                return;
            }
        };
        self.fields += 1;
        if self.fields > limits.max_headers {
            self.stop(truncated);
            return;
        }
        let name = prefix.get(..colon).unwrap_or_default().trim_ascii_end();
        self.field_keep = is_wanted(name, self.message_root);
        self.field_start = self.buf.len();
        self.params = (self.field_keep && has_params(name)).then(ParamScan::default);
        self.line = if self.field_keep {
            LineClass::Keep
        } else {
            LineClass::Skip
        };
    }

    /// Ignores the rest of the block.
    fn stop(&mut self, truncated: &mut bool) {
        self.full = true;
        self.skip_field();
        *truncated = true;
    }

    /// Ignores the rest of the open field.
    fn skip_field(&mut self) {
        self.field_keep = false;
        self.params = None;
        self.line = LineClass::Skip;
    }

    fn append(&mut self, parts: [&[u8]; 2], limits: &Limits, truncated: &mut bool) {
        for bytes in parts {
            // A previous piece may have ended the field.
            if self.line != LineClass::Keep {
                return;
            }
            let cut = self
                .params
                .as_mut()
                .and_then(|scan| scan.cut(bytes, limits.max_params));
            let bytes = bytes.get(..cut.unwrap_or(bytes.len())).unwrap_or(bytes);
            let needed = bytes.len() + usize::from(cut.is_some());
            if self.buf.len().saturating_add(needed) > limits.max_header_bytes {
                // Drop the whole field rather than parse half of it; later
                // fields may still fit.
                self.buf.truncate(self.field_start);
                self.skip_field();
                *truncated = true;
                return;
            }
            self.buf.extend_from_slice(bytes);
            if cut.is_some() {
                // End the field there; its remaining lines are skipped.
                self.buf.push(b'\n');
                self.skip_field();
                *truncated = true;
            }
        }
    }
}

/// Header fields read from a block; the rest are skipped without buffering.
fn is_wanted(name: &[u8], message_root: bool) -> bool {
    const MIME: [&str; 8] = [
        "content-type",
        "content-transfer-encoding",
        "content-id",
        "content-description",
        "content-md5",
        "content-disposition",
        "content-language",
        "content-location",
    ];
    const ENVELOPE: [&str; 10] = [
        "date",
        "subject",
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "in-reply-to",
        "message-id",
    ];
    let is = |n: &&str| n.as_bytes().eq_ignore_ascii_case(name);
    MIME.iter().any(is) || (message_root && ENVELOPE.iter().any(is))
}

fn has_params(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-type") || name.eq_ignore_ascii_case(b"content-disposition")
}

impl SummaryBuilder {
    pub fn new(limits: Limits) -> Self {
        let parser = MessageParser::new()
            .header_content_type(HeaderName::ContentType)
            .header_content_type(HeaderName::ContentDisposition)
            .header_text(HeaderName::ContentTransferEncoding)
            .header_text(HeaderName::ContentId)
            .header_text(HeaderName::ContentDescription)
            .header_text(HeaderName::ContentMd5)
            .header_text(HeaderName::ContentLocation)
            .header_comma_separated(HeaderName::ContentLanguage)
            // Text rather than parsed dates and ids: ENVELOPE wants them as sent.
            .header_text(HeaderName::Date)
            .header_text(HeaderName::Subject)
            .header_text(HeaderName::InReplyTo)
            .header_text(HeaderName::MessageId)
            .header_address(HeaderName::From)
            .header_address(HeaderName::Sender)
            .header_address(HeaderName::ReplyTo)
            .header_address(HeaderName::To)
            .header_address(HeaderName::Cc)
            .header_address(HeaderName::Bcc)
            .default_header_ignore();
        let root = Frame {
            part: Part::default(),
            body_line0: 0,
            depth: 0,
            envelope: None,
            state: State::Header { in_digest: false },
        };
        Self {
            limits,
            parser,
            size: 0,
            truncated: false,
            parts: 1,
            stack: vec![root],
            hdr: HeaderBlock::new(true),
            line: Line {
                start: 0,
                len: 0,
                number: 0,
                prefix: [0; PREFIX_CAP],
                prefix_len: 0,
                penult: 0,
                last: 0,
                prev_eol_start: 0,
                prev_empty: false,
            },
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (seg, tail, ends_line) = match rest.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    let (seg, tail) = rest.split_at_checked(pos + 1).unwrap_or((rest, &[]));
                    (seg, tail, true)
                }
                None => (rest, &[][..], false),
            };
            self.take(seg);
            if ends_line {
                self.end_line(false);
            }
            rest = tail;
        }
    }

    pub fn finish(mut self) -> Summary {
        if self.line.len > 0 {
            self.end_line(true);
        }
        let (end, starts) = (self.size, self.line.number);
        let mut root = None;
        while let Some(frame) = self.stack.pop() {
            let closed = self.close(frame, end, starts);
            match self.stack.last_mut() {
                Some(parent) => attach(parent, closed),
                None => root = Some(closed),
            }
        }
        let (root, envelope) = root.unwrap_or_default();
        Summary {
            size: self.size,
            envelope: envelope.unwrap_or_default(),
            root,
            truncated: self.truncated,
        }
    }

    /// Consumes bytes of the current line (at most up to its LF).
    fn take(&mut self, seg: &[u8]) {
        let line = &mut self.line;
        let in_prefix = (PREFIX_CAP - line.prefix_len).min(seg.len());
        if let (Some(dst), Some(src)) = (
            line.prefix
                .get_mut(line.prefix_len..line.prefix_len + in_prefix),
            seg.get(..in_prefix),
        ) {
            dst.copy_from_slice(src);
        }
        line.prefix_len += in_prefix;
        line.len += seg.len() as u64;
        match seg {
            [.., a, b] => (line.penult, line.last) = (*a, *b),
            [b] => (line.penult, line.last) = (line.last, *b),
            [] => {}
        }

        let in_header = matches!(
            self.stack.last(),
            Some(Frame {
                state: State::Header { .. },
                ..
            })
        );
        if !in_header || self.hdr.full {
            return;
        }
        let prefix = line.prefix.get(..line.prefix_len).unwrap_or_default();
        let was_pending = self.hdr.line == LineClass::Pending;
        if was_pending {
            self.hdr.classify(prefix, &self.limits, &mut self.truncated);
        }
        if self.hdr.line == LineClass::Keep {
            // A line classified just now is still entirely in the prefix,
            // except what did not fit there.
            let parts = if was_pending {
                [prefix, seg.get(in_prefix..).unwrap_or_default()]
            } else {
                [seg, &[][..]]
            };
            self.hdr.append(parts, &self.limits, &mut self.truncated);
        }
    }

    /// Handles a complete line (or the unterminated last one at EOF).
    fn end_line(&mut self, eof: bool) {
        let line = &self.line;
        let eol = match (eof, line.len >= 2 && line.penult == b'\r') {
            (true, _) => 0,
            (false, true) => 2,
            (false, false) => 1,
        };
        let (start, end) = (line.start, line.start + line.len);
        let content_len = line.len - eol;
        if let Some((index, close)) = self.match_boundary() {
            self.boundary(index, close, end);
        } else if content_len == 0
            && self.hdr.line == LineClass::Pending
            && matches!(
                self.stack.last(),
                Some(Frame {
                    state: State::Header { .. },
                    ..
                })
            )
        {
            self.end_header(end);
        }
        let line = &mut self.line;
        line.prev_eol_start = start + content_len;
        line.prev_empty = content_len == 0;
        line.number += 1;
        line.start = end;
        line.len = 0;
        line.prefix_len = 0;
        self.hdr.line = LineClass::Pending;
        self.hdr.scanned = 0;
    }

    /// Matches the current line against the boundaries of all open multiparts
    /// (bounded by `max_depth`). RFC 2046 §5.1.1 asks for a prefix match, so
    /// when one boundary extends another the longest match wins, then the
    /// innermost. Returns the multipart's stack index and whether the line is
    /// its close delimiter.
    fn match_boundary(&self) -> Option<(usize, bool)> {
        let prefix = self.line.prefix.get(..self.line.prefix_len)?;
        let rest = prefix.strip_prefix(b"--")?;
        let mut best: Option<(usize, usize, bool)> = None;
        for (index, frame) in self.stack.iter().enumerate().rev() {
            let State::Multipart {
                boundary,
                epilogue: false,
                ..
            } = &frame.state
            else {
                continue;
            };
            let Some(after) = rest.strip_prefix(boundary.as_slice()) else {
                continue;
            };
            if best.is_none_or(|(_, len, _)| boundary.len() > len) {
                best = Some((index, boundary.len(), after.starts_with(b"--")));
            }
        }
        best.map(|(index, _, close)| (index, close))
    }

    /// A delimiter line of the multipart at `index` ends at `line_end`: close
    /// everything open inside it, then open the next child unless it is the
    /// close delimiter.
    fn boundary(&mut self, index: usize, close: bool, line_end: u64) {
        // The CRLF before the delimiter belongs to it (RFC 2046 §5.1.1).
        let end = self.line.prev_eol_start;
        let starts = self
            .line
            .number
            .saturating_sub(u64::from(self.line.prev_empty));
        while self.stack.len() > index + 1 {
            let Some(frame) = self.stack.pop() else {
                break;
            };
            let closed = self.close(frame, end, starts);
            if let Some(parent) = self.stack.last_mut() {
                attach(parent, closed);
            }
        }
        let Some(multipart) = self.stack.last_mut() else {
            return;
        };
        let State::Multipart { epilogue, .. } = &mut multipart.state else {
            return;
        };
        if close {
            *epilogue = true;
        } else if self.parts < self.limits.max_parts {
            let in_digest = multipart.part.content_subtype == "digest";
            let depth = multipart.depth + 1;
            self.open(line_end, depth, false, in_digest);
        } else {
            // Further parts become body bytes of this multipart.
            self.truncated = true;
        }
    }

    /// Pushes a new part whose header starts at `offset`.
    fn open(&mut self, offset: u64, depth: usize, message_root: bool, in_digest: bool) {
        self.parts += 1;
        self.hdr.reset(message_root);
        self.stack.push(Frame {
            part: Part {
                header_offset: offset,
                body_offset: offset,
                ..Part::default()
            },
            // Set when the header ends; a part closed inside its header has
            // no body lines anyway.
            body_line0: 0,
            depth,
            envelope: None,
            state: State::Header { in_digest },
        });
    }

    /// The empty line ending the top frame's header ends at `body_offset`.
    fn end_header(&mut self, body_offset: u64) {
        let Some(frame) = self.stack.last_mut() else {
            return;
        };
        let State::Header { in_digest } = frame.state else {
            return;
        };
        let (envelope, boundary) = parse_block(
            &self.parser,
            &mut self.hdr,
            &self.limits,
            in_digest,
            &mut frame.part,
            &mut self.truncated,
        );
        frame.envelope = envelope;
        frame.part.body_offset = body_offset;
        frame.body_line0 = self.line.number + 1;
        let part = &frame.part;
        let nest = frame.depth < self.limits.max_depth && self.parts < self.limits.max_parts;
        let is_message = part.content_type == "message"
            && matches!(part.content_subtype.as_str(), "rfc822" | "global")
            // An encoded message is opaque (RFC 2046 §5.2.1 forbids it anyway).
            && part.encoding.as_deref().is_none_or(|e| {
                ["7bit", "8bit", "binary"]
                    .iter()
                    .any(|id| e.eq_ignore_ascii_case(id))
            });
        let expandable = is_message || (part.content_type == "multipart" && boundary.is_some());
        if expandable && !nest {
            self.truncated = true;
        }
        frame.state = match boundary {
            Some(boundary) if nest && part.content_type == "multipart" => State::Multipart {
                boundary,
                children: Vec::new(),
                epilogue: false,
            },
            _ if nest && is_message => State::Message { inner: None },
            _ => State::Body,
        };
        if matches!(frame.state, State::Message { .. }) {
            let depth = frame.depth + 1;
            self.open(body_offset, depth, true, false);
        }
    }

    /// Turns a frame into a finished part ending at `end` (clamped to its own
    /// start); `starts` is the number of lines starting before `end`.
    fn close(&mut self, frame: Frame, end: u64, starts: u64) -> (Part, Option<Envelope>) {
        let Frame {
            mut part,
            body_line0,
            mut envelope,
            state,
            ..
        } = frame;
        part.kind = match state {
            State::Header { in_digest } => {
                // Header cut by a boundary or EOF: no body.
                envelope = parse_block(
                    &self.parser,
                    &mut self.hdr,
                    &self.limits,
                    in_digest,
                    &mut part,
                    &mut self.truncated,
                )
                .0;
                part.body_offset = end.max(part.header_offset);
                PartKind::Single
            }
            State::Body => PartKind::Single,
            State::Multipart { children, .. } => PartKind::Multipart(children),
            State::Message { inner } => match inner {
                Some((envelope, body)) => PartKind::Message { envelope, body },
                None => PartKind::Single,
            },
        };
        part.end_offset = end.max(part.body_offset);
        part.body_lines = if end > part.body_offset {
            starts.saturating_sub(body_line0)
        } else {
            0
        };
        (part, envelope)
    }
}

fn attach(parent: &mut Frame, (part, envelope): (Part, Option<Envelope>)) {
    match &mut parent.state {
        State::Multipart { children, .. } => children.push(part),
        State::Message { inner } => {
            *inner = Some((Box::new(envelope.unwrap_or_default()), Box::new(part)));
        }
        // Only containers have open children.
        State::Header { .. } | State::Body => {}
    }
}

/// Parses the collected header block into `part`; returns the envelope (for
/// message roots) and the multipart boundary, if usable.
fn parse_block(
    parser: &MessageParser,
    hdr: &mut HeaderBlock,
    limits: &Limits,
    in_digest: bool,
    part: &mut Part,
    truncated: &mut bool,
) -> (Option<Envelope>, Option<Vec<u8>>) {
    // mail-parser wants every field LF-terminated and a final empty line.
    if !hdr.buf.is_empty() && !hdr.buf.ends_with(b"\n") {
        hdr.buf.push(b'\n');
    }
    hdr.buf.push(b'\n');
    let headers = parser
        .parse_headers(&hdr.buf)
        .and_then(|message| message.parts.into_iter().next())
        .map(|root| root.headers)
        .unwrap_or_default();

    let mut envelope = hdr.message_root.then(Envelope::default);
    let mut content_type = None;
    let (mut seen_language, mut seen_disposition) = (false, false);
    for header in &headers {
        let value = &header.value;
        match &header.name {
            HeaderName::ContentType => {
                content_type = content_type.or_else(|| value.as_content_type());
            }
            HeaderName::ContentTransferEncoding => set_text(&mut part.encoding, value),
            HeaderName::ContentId => set_text(&mut part.id, value),
            HeaderName::ContentDescription => set_text(&mut part.description, value),
            HeaderName::ContentMd5 => set_text(&mut part.md5, value),
            HeaderName::ContentLocation => set_text(&mut part.location, value),
            HeaderName::ContentLanguage if !seen_language => {
                seen_language = true;
                let tags: Vec<&str> = match value {
                    HeaderValue::Text(tag) => vec![tag.as_ref()],
                    HeaderValue::TextList(tags) => tags.iter().map(Cow::as_ref).collect(),
                    _ => Vec::new(),
                };
                if tags.len() > limits.max_params {
                    *truncated = true;
                }
                part.language = tags
                    .into_iter()
                    .take(limits.max_params)
                    .map(str::to_string)
                    .collect();
            }
            HeaderName::ContentDisposition if !seen_disposition => {
                seen_disposition = true;
                part.disposition = value.as_content_type().map(|d| {
                    (
                        d.c_type.to_ascii_lowercase(),
                        params(d, limits.max_params, truncated),
                    )
                });
            }
            name => {
                if let Some(envelope) = envelope.as_mut() {
                    envelope_field(envelope, name, value);
                }
            }
        }
    }

    let mut boundary = None;
    match content_type {
        Some(
            ct @ ContentType {
                c_subtype: Some(subtype),
                ..
            },
        ) => {
            part.content_type = ct.c_type.to_ascii_lowercase();
            part.content_subtype = subtype.to_ascii_lowercase();
            part.params = params(ct, limits.max_params, truncated);
            boundary = ct
                .attribute("boundary")
                .map(|b| b.as_bytes().to_vec())
                .filter(|b| {
                    (1..=MAX_BOUNDARY).contains(&b.len())
                        && !b.contains(&b'\n')
                        && !b.contains(&b'\r')
                });
        }
        // Absent or invalid: the RFC 2045 §5.2 / RFC 2046 §5.1.5 default.
        _ if in_digest => {
            part.content_type = "message".into();
            part.content_subtype = "rfc822".into();
        }
        _ => {
            part.content_type = "text".into();
            part.content_subtype = "plain".into();
        }
    }
    if part.content_type == "text" && !part.params.iter().any(|(name, _)| name == "charset") {
        part.params.push(("charset".into(), "us-ascii".into()));
    }
    hdr.reset(false);
    (envelope, boundary)
}

fn params(ct: &ContentType<'_>, max: usize, truncated: &mut bool) -> Vec<(String, String)> {
    let attributes = ct.attributes.as_deref().unwrap_or_default();
    if attributes.len() > max {
        *truncated = true;
    }
    attributes
        .iter()
        .take(max)
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .collect()
}

fn text(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
        _ => None,
    }
}

/// Keeps the first occurrence of a field.
fn set_text(slot: &mut Option<String>, value: &HeaderValue<'_>) {
    if slot.is_none() {
        *slot = text(value);
    }
}

fn envelope_field(envelope: &mut Envelope, name: &HeaderName<'_>, value: &HeaderValue<'_>) {
    let list = match name {
        HeaderName::Date => return set_text(&mut envelope.date, value),
        HeaderName::Subject => return set_text(&mut envelope.subject, value),
        HeaderName::InReplyTo => return set_text(&mut envelope.in_reply_to, value),
        HeaderName::MessageId => return set_text(&mut envelope.message_id, value),
        HeaderName::From => &mut envelope.from,
        HeaderName::Sender => &mut envelope.sender,
        HeaderName::ReplyTo => &mut envelope.reply_to,
        HeaderName::To => &mut envelope.to,
        HeaderName::Cc => &mut envelope.cc,
        HeaderName::Bcc => &mut envelope.bcc,
        _ => return,
    };
    if list.is_empty() {
        *list = addresses(value);
    }
}

fn addresses(value: &HeaderValue<'_>) -> Vec<Address> {
    let mut out = Vec::new();
    match value {
        HeaderValue::Address(mail_parser::Address::List(list)) => {
            out.extend(list.iter().filter_map(address));
        }
        HeaderValue::Address(mail_parser::Address::Group(groups)) => {
            for group in groups {
                // mail-parser puts addresses outside any group in unnamed groups.
                match group.name.as_deref().map(str::trim) {
                    Some(name) if !name.is_empty() => {
                        out.push(Address::group_start(name));
                        out.extend(group.addresses.iter().filter_map(address));
                        out.push(Address::group_end());
                    }
                    _ => out.extend(group.addresses.iter().filter_map(address)),
                }
            }
        }
        _ => {}
    }
    out
}

fn address(addr: &Addr<'_>) -> Option<Address> {
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let name = addr.name.as_deref().and_then(non_empty);
    let (mailbox, host) = match addr.address.as_deref().map(str::trim) {
        Some(address) => match address.rsplit_once('@') {
            Some((local, domain)) => (non_empty(local), non_empty(domain)),
            None => (non_empty(address), None),
        },
        None => (None, None),
    };
    // All-empty would read as a group end marker.
    (name.is_some() || mailbox.is_some() || host.is_some()).then_some(Address {
        name,
        mailbox,
        host,
        group: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const SIMPLE: &[u8] = b"From: Alice Example <alice@example.com>\r\n\
To: bob@example.org\r\n\
Subject: =?UTF-8?B?SGVsbG8gd29ybGQ=?=\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <1@example.com>\r\n\
In-Reply-To: <0@example.com>\r\n\
X-Unrelated: ignored\r\n\
 folded\r\n\
\r\n\
Hello\r\n\
World\r\n";

    const ALTERNATIVE: &[u8] = b"From: a@example.com\r\n\
Content-Type: multipart/alternative; boundary=\"XX\"\r\n\
\r\n\
preamble\r\n\
--XX\r\n\
Content-Type: text/plain\r\n\
\r\n\
plain body\r\n\
--XX\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>html</p>\r\n\
--XX--\r\n\
epilogue\r\n";

    const MIXED: &[u8] = b"From: a@example.com\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
\r\n\
text\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<b>html</b>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"doc.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"doc.pdf\"\r\n\
Content-ID: <doc@example.com>\r\n\
Content-Description: A document\r\n\
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\
Content-Language: en, de\r\n\
Content-Location: http://example.com/doc.pdf\r\n\
\r\n\
JVBERi0xLjQK\r\n\
JVBERi0xLjQK\r\n\
--outer--\r\n";

    const RFC822: &[u8] = b"From: outer@example.com\r\n\
Subject: fwd\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\
\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
\r\n\
see attached\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: \"Inner Person\" <inner@example.net>\r\n\
Subject: inner subject\r\n\
Message-ID: <inner@example.net>\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
inner text\r\n\
--inner--\r\n\
--outer--\r\n";

    const BARE_LF: &[u8] = b"Subject: lf\n\
Content-Type: multipart/mixed; boundary=b\n\
\n\
--b\n\
\n\
one\n\
--b\n\
Content-Type: text/plain\n\
\n\
two\n\
three\n\
--b--\n";

    const MISSING_END: &[u8] = b"Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
\r\n\
first\r\n\
--b\r\n\
\r\n\
last, no close delimiter";

    const GROUPS: &[u8] = b"From: x@example.com\r\n\
To: Friends: a@example.com, Bee <b@example.com>;, c@example.com\r\n\
Cc: undisclosed-recipients:;\r\n\
\r\n";

    const DIGEST: &[u8] = b"Content-Type: multipart/digest; boundary=d\r\n\
\r\n\
--d\r\n\
\r\n\
Subject: digested\r\n\
\r\n\
body\r\n\
--d--\r\n";

    const CORPUS: &[&[u8]] = &[
        SIMPLE,
        ALTERNATIVE,
        MIXED,
        RFC822,
        BARE_LF,
        MISSING_END,
        GROUPS,
        DIGEST,
        b"",
        b"\r\n",
        b"no header at all",
    ];

    fn sum(message: &[u8]) -> Summary {
        summarize(message, Limits::default())
    }

    fn at(message: &[u8], needle: &str) -> u64 {
        let needle = needle.as_bytes();
        message
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("needle present") as u64
    }

    fn body<'a>(message: &'a [u8], part: &Part) -> &'a [u8] {
        &message[part.body_offset as usize..part.end_offset as usize]
    }

    fn children(part: &Part) -> &[Part] {
        match &part.kind {
            PartKind::Multipart(children) => children,
            other => panic!("not a multipart: {other:?}"),
        }
    }

    fn count(part: &Part) -> usize {
        1 + match &part.kind {
            PartKind::Single => 0,
            PartKind::Multipart(children) => children.iter().map(count).sum(),
            PartKind::Message { body, .. } => count(body),
        }
    }

    fn depth(part: &Part) -> usize {
        match &part.kind {
            PartKind::Single => 0,
            PartKind::Multipart(children) => 1 + children.iter().map(depth).max().unwrap_or(0),
            PartKind::Message { body, .. } => 1 + depth(body),
        }
    }

    fn addr(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address {
            name: name.map(str::to_string),
            mailbox: Some(mailbox.into()),
            host: Some(host.into()),
            group: None,
        }
    }

    fn charset(value: &str) -> Vec<(String, String)> {
        vec![("charset".into(), value.into())]
    }

    #[test]
    fn simple_text() {
        let s = sum(SIMPLE);
        assert_eq!(s.size, SIMPLE.len() as u64);
        assert!(!s.truncated);
        let e = &s.envelope;
        assert_eq!(e.subject.as_deref(), Some("Hello world"));
        assert_eq!(e.date.as_deref(), Some("Mon, 1 Jan 2024 10:00:00 +0000"));
        assert_eq!(e.message_id.as_deref(), Some("<1@example.com>"));
        assert_eq!(e.in_reply_to.as_deref(), Some("<0@example.com>"));
        assert_eq!(
            e.from,
            vec![addr(Some("Alice Example"), "alice", "example.com")]
        );
        assert_eq!(e.to, vec![addr(None, "bob", "example.org")]);
        assert!(e.sender.is_empty() && e.cc.is_empty());
        let root = &s.root;
        assert_eq!(
            (root.header_offset, root.body_offset),
            (0, at(SIMPLE, "Hello"))
        );
        assert_eq!(root.end_offset, SIMPLE.len() as u64);
        assert_eq!(body(SIMPLE, root), b"Hello\r\nWorld\r\n");
        assert_eq!(root.body_lines, 2);
        assert_eq!(
            (root.content_type.as_str(), root.content_subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(root.params, charset("us-ascii"));
        assert_eq!(root.kind, PartKind::Single);
    }

    #[test]
    fn multipart_alternative() {
        let s = sum(ALTERNATIVE);
        assert!(!s.truncated);
        let root = &s.root;
        assert_eq!(root.content_subtype, "alternative");
        assert_eq!(root.params, vec![("boundary".into(), "XX".into())]);
        assert_eq!(root.end_offset, ALTERNATIVE.len() as u64);
        let [plain, html] = children(root) else {
            panic!("two children expected");
        };
        assert_eq!(
            plain.header_offset,
            at(ALTERNATIVE, "Content-Type: text/plain")
        );
        assert_eq!(body(ALTERNATIVE, plain), b"plain body");
        assert_eq!(plain.body_lines, 1);
        assert_eq!(plain.params, charset("us-ascii"));
        assert_eq!(body(ALTERNATIVE, html), b"<p>html</p>");
        assert_eq!(
            (html.content_type.as_str(), html.content_subtype.as_str()),
            ("text", "html")
        );
        assert_eq!(html.params, charset("utf-8"));
    }

    #[test]
    fn nested_mixed_with_attachment() {
        let s = sum(MIXED);
        assert!(!s.truncated);
        let [alternative, pdf] = children(&s.root) else {
            panic!("two children expected");
        };
        let [text, html] = children(alternative) else {
            panic!("two children expected");
        };
        // A child without header: empty header block, default type.
        assert_eq!(text.header_offset, text.body_offset - 2);
        assert_eq!(body(MIXED, text), b"text");
        assert_eq!(text.content_type, "text");
        assert_eq!(body(MIXED, html), b"<b>html</b>");
        // The nested multipart keeps its close delimiter, not the CRLF
        // before the outer boundary.
        assert!(body(MIXED, alternative).ends_with(b"--inner--"));

        assert_eq!(body(MIXED, pdf), b"JVBERi0xLjQK\r\nJVBERi0xLjQK");
        assert_eq!(pdf.body_lines, 2);
        assert_eq!(
            (pdf.content_type.as_str(), pdf.content_subtype.as_str()),
            ("application", "pdf")
        );
        assert_eq!(pdf.params, vec![("name".into(), "doc.pdf".into())]);
        assert_eq!(pdf.encoding.as_deref(), Some("base64"));
        assert_eq!(pdf.id.as_deref(), Some("<doc@example.com>"));
        assert_eq!(pdf.description.as_deref(), Some("A document"));
        assert_eq!(pdf.md5.as_deref(), Some("Q2hlY2sgSW50ZWdyaXR5IQ=="));
        assert_eq!(pdf.language, vec!["en".to_string(), "de".to_string()]);
        assert_eq!(pdf.location.as_deref(), Some("http://example.com/doc.pdf"));
        assert_eq!(
            pdf.disposition,
            Some((
                "attachment".into(),
                vec![("filename".into(), "doc.pdf".into())]
            ))
        );
    }

    #[test]
    fn message_rfc822_attachment() {
        let s = sum(RFC822);
        assert!(!s.truncated);
        assert_eq!(s.envelope.subject.as_deref(), Some("fwd"));
        let [text, message] = children(&s.root) else {
            panic!("two children expected");
        };
        assert_eq!(body(RFC822, text), b"see attached");
        let PartKind::Message {
            envelope,
            body: inner,
        } = &message.kind
        else {
            panic!("message/rfc822 expected");
        };
        assert_eq!(envelope.subject.as_deref(), Some("inner subject"));
        assert_eq!(envelope.message_id.as_deref(), Some("<inner@example.net>"));
        assert_eq!(
            envelope.from,
            vec![addr(Some("Inner Person"), "inner", "example.net")]
        );
        assert_eq!(inner.header_offset, message.body_offset);
        assert_eq!(inner.end_offset, message.end_offset);
        assert!(body(RFC822, message).starts_with(b"From: \"Inner"));
        assert!(body(RFC822, message).ends_with(b"--inner--"));
        assert_eq!(message.body_lines, 10);
        let [inner_text] = children(inner) else {
            panic!("one child expected");
        };
        assert_eq!(body(RFC822, inner_text), b"inner text");
        assert_eq!(count(&s.root), 5);
    }

    #[test]
    fn encoded_message_is_opaque() {
        let message = b"Content-Type: message/rfc822\r\n\
Content-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp4\r\n";
        let s = sum(message);
        assert_eq!(s.root.kind, PartKind::Single);
        assert!(!s.truncated);
    }

    #[test]
    fn bare_lf() {
        let s = sum(BARE_LF);
        let [one, two] = children(&s.root) else {
            panic!("two children expected");
        };
        assert_eq!(body(BARE_LF, one), b"one");
        assert_eq!(body(BARE_LF, two), b"two\nthree");
        assert_eq!(two.body_lines, 2);
        assert_eq!(two.header_offset, at(BARE_LF, "Content-Type: text/plain"));
    }

    #[test]
    fn missing_final_boundary() {
        let s = sum(MISSING_END);
        assert!(!s.truncated);
        let [first, last] = children(&s.root) else {
            panic!("two children expected");
        };
        assert_eq!(body(MISSING_END, first), b"first");
        assert_eq!(body(MISSING_END, last), b"last, no close delimiter");
        assert_eq!(last.body_lines, 1);
        assert_eq!(s.root.end_offset, MISSING_END.len() as u64);
    }

    #[test]
    fn preamble_and_epilogue_belong_to_the_multipart() {
        let s = sum(ALTERNATIVE);
        let root_body = body(ALTERNATIVE, &s.root);
        assert!(root_body.starts_with(b"preamble\r\n--XX"));
        assert!(root_body.ends_with(b"--XX--\r\nepilogue\r\n"));
        assert_eq!(s.root.body_lines, 11);
        assert_eq!(children(&s.root).len(), 2);
    }

    #[test]
    fn longest_boundary_wins() {
        // RFC 2046 boundaries match as prefixes; the inner one extends the
        // outer one here.
        let message = b"Content-Type: multipart/mixed; boundary=abc\r\n\r\n\
--abc\r\n\
Content-Type: multipart/mixed; boundary=abcdef\r\n\r\n\
--abcdef\r\n\r\none\r\n\
--abcdef\r\n\r\ntwo\r\n\
--abcdef--\r\n\
--abc\r\n\r\nthree\r\n\
--abc--\r\n";
        let s = sum(message);
        let [inner, three] = children(&s.root) else {
            panic!("two children expected");
        };
        let [one, two] = children(inner) else {
            panic!("two inner children expected");
        };
        assert_eq!(body(message, one), b"one");
        assert_eq!(body(message, two), b"two");
        assert_eq!(body(message, three), b"three");
    }

    #[test]
    fn outer_boundary_closes_unterminated_inner_parts() {
        let message = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n\
--o\r\n\
Content-Type: multipart/mixed; boundary=i\r\n\r\n\
--i\r\n\r\ninner\r\n\
--o\r\n\r\nnext\r\n\
--o--\r\n";
        let s = sum(message);
        let [inner, next] = children(&s.root) else {
            panic!("two children expected");
        };
        assert_eq!(body(message, &children(inner)[0]), b"inner");
        assert_eq!(body(message, next), b"next");
    }

    #[test]
    fn header_cut_by_boundary_or_eof() {
        let message = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\n\
Content-Type: text/html\r\n\
--b\r\n\
--b";
        let s = sum(message);
        let parts = children(&s.root);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].content_subtype, "html");
        for part in parts {
            assert_eq!(part.body_offset, part.end_offset);
            assert_eq!(part.body_lines, 0);
        }
        assert_eq!(parts[2].header_offset, message.len() as u64);
    }

    #[test]
    fn digest_children_default_to_message() {
        let s = sum(DIGEST);
        let [child] = children(&s.root) else {
            panic!("one child expected");
        };
        assert_eq!(
            (child.content_type.as_str(), child.content_subtype.as_str()),
            ("message", "rfc822")
        );
        let PartKind::Message {
            envelope,
            body: inner,
        } = &child.kind
        else {
            panic!("message expected");
        };
        assert_eq!(envelope.subject.as_deref(), Some("digested"));
        assert_eq!(body(DIGEST, inner), b"body");
    }

    #[test]
    fn groups_in_address_lists() {
        let s = sum(GROUPS);
        let group = |name: &str| Address {
            group: Some(name.into()),
            ..Address::default()
        };
        assert_eq!(
            s.envelope.to,
            vec![
                group("Friends"),
                addr(None, "a", "example.com"),
                addr(Some("Bee"), "b", "example.com"),
                Address::group_end(),
                addr(None, "c", "example.com"),
            ]
        );
        assert_eq!(
            s.envelope.cc,
            vec![group("undisclosed-recipients"), Address::group_end()]
        );
    }

    #[test]
    fn no_headers_at_all() {
        let message = b"\r\njust a body\r\n";
        let s = sum(message);
        assert_eq!(s.envelope, Envelope::default());
        assert_eq!(s.root.body_offset, 2);
        assert_eq!(body(message, &s.root), b"just a body\r\n");
        assert_eq!(s.root.content_type, "text");
        assert!(!s.truncated);
    }

    #[test]
    fn empty_message() {
        let s = sum(b"");
        assert_eq!(s.size, 0);
        assert_eq!(
            (s.root.body_offset, s.root.end_offset, s.root.body_lines),
            (0, 0, 0)
        );
        assert_eq!(s.root.content_type, "text");
        assert_eq!(s.envelope, Envelope::default());
        assert!(!s.truncated);
    }

    #[test]
    fn header_without_body() {
        let message = b"Subject: only a header\r\n";
        let s = sum(message);
        assert_eq!(s.envelope.subject.as_deref(), Some("only a header"));
        assert_eq!(s.root.body_offset, message.len() as u64);
        assert_eq!(s.root.body_lines, 0);
    }

    #[test]
    fn serde_round_trip() {
        let s = sum(RFC822);
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Summary>(&json).expect("deserialize"),
            s
        );
    }

    /// Tiny deterministic generator for chunk sizes.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn fed(message: &[u8], limits: Limits, chunks: impl IntoIterator<Item = usize>) -> Summary {
        let mut builder = SummaryBuilder::new(limits);
        let mut rest = message;
        for size in chunks {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            builder.feed(chunk);
            rest = tail;
        }
        builder.feed(rest);
        builder.finish()
    }

    #[test]
    fn chunking_invariance() {
        // Tight limits exercise every cut path under chunking too.
        let tight = Limits {
            max_depth: 1,
            max_parts: 3,
            max_header_bytes: 60,
            max_headers: 2,
            max_params: 0,
        };
        for limits in [Limits::default(), tight] {
            for &message in CORPUS {
                let whole = summarize(message, limits);
                let bytes = std::iter::repeat_n(1, message.len());
                assert_eq!(fed(message, limits, bytes), whole);
                for split in 0..=message.len() {
                    assert_eq!(fed(message, limits, [split]), whole, "split at {split}");
                }
                let mut seed = 0x9e37_79b9_7f4a_7c15;
                for _ in 0..50 {
                    let sizes: Vec<usize> = (0..message.len())
                        .map(|_| (xorshift(&mut seed) % 9) as usize)
                        .collect();
                    assert_eq!(fed(message, limits, sizes), whole);
                }
            }
        }
    }

    /// Feeds in 64 KiB chunks, checking the bounded state after each one.
    fn bomb(message: &[u8]) -> Summary {
        let limits = Limits::default();
        let started = Instant::now();
        let mut builder = SummaryBuilder::new(limits);
        for chunk in message.chunks(64 * 1024) {
            builder.feed(chunk);
            assert!(builder.hdr.buf.len() <= limits.max_header_bytes + 2);
            assert!(builder.stack.len() <= 2 * limits.max_depth + 2);
            assert!(builder.parts <= limits.max_parts);
        }
        let s = builder.finish();
        // Generous: quadratic behaviour would take minutes.
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(s.truncated);
        assert!(count(&s.root) <= limits.max_parts);
        assert!(depth(&s.root) <= limits.max_depth);
        assert_eq!(s.root.end_offset, message.len() as u64);
        s
    }

    #[test]
    fn bomb_deep_nesting() {
        let mut message = Vec::new();
        for i in 0..10_000 {
            message.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        message.extend_from_slice(b"\r\nleaf\r\n");
        for i in (0..10_000).rev() {
            message.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
        }
        let s = bomb(&message);
        assert_eq!(depth(&s.root), Limits::default().max_depth);
    }

    #[test]
    fn bomb_deep_messages() {
        let message = b"Content-Type: message/rfc822\r\n\r\n".repeat(10_000);
        bomb(&message);
    }

    #[test]
    fn bomb_many_parts() {
        let mut message = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        message.extend_from_slice(&b"--b\r\n\r\nx\r\n".repeat(1_000_000));
        message.extend_from_slice(b"--b--\r\n");
        let s = bomb(&message);
        assert_eq!(count(&s.root), Limits::default().max_parts);
    }

    #[test]
    fn bomb_many_headers() {
        let mut message = b"Content-Type: text/html\r\n".to_vec();
        message.extend_from_slice(&b"X-Filler: value\r\n".repeat(100_000));
        message.extend_from_slice(b"Subject: too late\r\n\r\nbody\r\n");
        let s = bomb(&message);
        assert_eq!(s.root.content_subtype, "html");
        assert_eq!(s.envelope.subject, None);
        assert_eq!(body(&message, &s.root), b"body\r\n");
    }

    #[test]
    fn bomb_huge_header() {
        let mut message = b"Subject: ".to_vec();
        message.extend_from_slice(&vec![b'a'; 10 << 20]);
        message.extend_from_slice(b"\r\nContent-Type: text/html\r\n\r\nbody\r\n");
        let s = bomb(&message);
        assert_eq!(s.envelope.subject, None);
        assert_eq!(s.root.content_subtype, "html");
        assert_eq!(body(&message, &s.root), b"body\r\n");

        // An unwanted field is skipped without buffering, so nothing is cut.
        let mut message = b"X-Junk: ".to_vec();
        message.extend_from_slice(&vec![b'a'; 10 << 20]);
        message.extend_from_slice(b"\r\nSubject: kept\r\n\r\n");
        let s = sum(&message);
        assert!(!s.truncated);
        assert_eq!(s.envelope.subject.as_deref(), Some("kept"));
    }

    #[test]
    fn bomb_many_params() {
        let mut message = b"Content-Type: text/plain".to_vec();
        for i in 0..10_000 {
            message.extend_from_slice(format!(";\r\n p{i}=\"v;{i}\"").as_bytes());
        }
        message.extend_from_slice(b"\r\n\r\nbody");
        let s = bomb(&message);
        let limits = Limits::default();
        // The kept parameters plus the default charset.
        assert_eq!(s.root.params.len(), limits.max_params + 1);
        assert_eq!(s.root.params[0], ("p0".into(), "v;0".into()));
    }

    #[test]
    fn bomb_endless_boundary_line() {
        let mut message =
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b".to_vec();
        message.extend_from_slice(&vec![b' '; 10 << 20]);
        // Not a limit: the structure is complete, so expect no truncation.
        let s = summarize(&message, Limits::default());
        assert!(!s.truncated);
        let parts = children(&s.root);
        assert_eq!(parts.len(), 2);
        assert_eq!(body(&message, &parts[0]), b"x");

        // A header line that never ends.
        let message = vec![b'x'; 10 << 20];
        let s = sum(&message);
        assert_eq!(s.root.body_offset, message.len() as u64);
    }

    #[test]
    fn limits_cut_structure() {
        let limits = Limits {
            max_parts: 3,
            ..Limits::default()
        };
        let s = summarize(ALTERNATIVE, limits);
        assert!(!s.truncated);
        let s = summarize(MIXED, limits);
        assert!(s.truncated);
        assert_eq!(count(&s.root), 3);

        let limits = Limits {
            max_depth: 1,
            ..Limits::default()
        };
        let s = summarize(RFC822, limits);
        assert!(s.truncated);
        let [_, message] = children(&s.root) else {
            panic!("two children expected");
        };
        assert_eq!(message.kind, PartKind::Single);
        assert_eq!(message.end_offset, at(RFC822, "\r\n--outer--"));
    }
}
