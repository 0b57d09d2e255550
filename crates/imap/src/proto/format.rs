//! Response formatting: strings, flags, ENVELOPE and BODYSTRUCTURE from the
//! summary computed at delivery (RFC 3501 §7.4.2), section addressing and
//! header field filtering.

use store::Flags;
use summary::{Address, Envelope, Part, PartKind};

use super::command::{SearchReturn, Section, SectionText};

/// A part's body with its content-transfer-encoding removed (RFC 3516
/// §4.2); `None` for an encoding this server cannot decode (the client is
/// told `[UNKNOWN-CTE]`). Base64 ignores line breaks and other characters
/// outside its alphabet (RFC 2045 §6.8); quoted-printable drops soft line
/// breaks and keeps malformed `=` sequences as they are.
pub fn decode_transfer_encoding(encoding: Option<&str>, data: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let encoding = encoding.unwrap_or("7bit").to_ascii_lowercase();
    match encoding.as_str() {
        "7bit" | "8bit" | "binary" => Some(data.to_vec()),
        "base64" => {
            let clean: Vec<u8> = data
                .iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
                .collect();
            // A lone last character carries no whole byte.
            let usable = clean.len() - usize::from(clean.len() % 4 == 1);
            LENIENT.decode(&clean[..usable]).ok()
        }
        "quoted-printable" => Some(decode_qp(data)),
        _ => None,
    }
}

fn decode_qp(data: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] != b'=' {
            out.push(data[i]);
            i += 1;
            continue;
        }
        match (data.get(i + 1), data.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&a), Some(&b)) if hex(a).is_some() && hex(b).is_some() => {
                out.push((hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0)) as u8);
                i += 3;
            }
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

/// `1:3,5` for COPYUID (RFC 4315 §3) and VANISHED, in the given order.
pub fn uid_set(uids: impl Iterator<Item = u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |r: (u32, u32), out: &mut Vec<String>| {
        out.push(if r.0 == r.1 {
            r.0.to_string()
        } else {
            format!("{}:{}", r.0, r.1)
        });
    };
    for u in uids {
        run = match run {
            Some((a, b)) if b.checked_add(1) == Some(u) => Some((a, u)),
            Some(r) => {
                flush(r, &mut out);
                Some((u, u))
            }
            None => Some((u, u)),
        };
    }
    if let Some(r) = run {
        flush(r, &mut out);
    }
    out.join(",")
}

/// The ESEARCH response (RFC 4731 §3.1) for `hits`, ascending message
/// numbers or UIDs; `modseq` is the highest of the hits' modseqs when the
/// search used MODSEQ (RFC 7162 §3.1.5). With no hits only COUNT is given.
pub fn esearch(
    tag: &str,
    uid: bool,
    ret: SearchReturn,
    hits: &[u32],
    modseq: Option<u64>,
) -> String {
    let mut out = String::from("* ESEARCH (TAG ");
    let mut quoted = Vec::new();
    string(&mut quoted, tag.as_bytes());
    out.push_str(&String::from_utf8_lossy(&quoted));
    out.push(')');
    if uid {
        out.push_str(" UID");
    }
    if let (true, Some(min)) = (ret.min, hits.first()) {
        out.push_str(&format!(" MIN {min}"));
    }
    if let (true, Some(max)) = (ret.max, hits.last()) {
        out.push_str(&format!(" MAX {max}"));
    }
    if ret.count {
        out.push_str(&format!(" COUNT {}", hits.len()));
    }
    if ret.all && !hits.is_empty() {
        out.push_str(&format!(" ALL {}", uid_set(hits.iter().copied())));
    }
    if let (Some(m), false) = (modseq, hits.is_empty()) {
        out.push_str(&format!(" MODSEQ {m}"));
    }
    out.push_str("\r\n");
    out
}

/// Appends `s` as a quoted string when it can be one, else as a literal
/// (RFC 3501 §4.3: quoted strings are 7-bit without CR, LF or NUL).
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= 1024 && s.iter().all(|&b| (0x20..0x7f).contains(&b));
    quoted_or_literal(out, s, quotable);
}

fn quoted_or_literal(out: &mut Vec<u8>, s: &[u8], quotable: bool) {
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// A mailbox name: in modified UTF-7 (RFC 3501 §5.1.3), or as UTF-8 once
/// IMAP4rev2 is enabled (RFC 9051 §5.1, whose quoted strings may hold
/// UTF-8).
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if !utf8 {
        return string(out, super::utf7::encode(name).as_bytes());
    }
    let quotable = name.len() <= 1024 && name.bytes().all(|b| b >= 0x20 && b != 0x7f);
    quoted_or_literal(out, name.as_bytes(), quotable);
}

pub fn nstring(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s.as_bytes()),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `\Seen \Answered ...` plus keywords, without parentheses.
pub fn flags(f: &Flags) -> String {
    let names = [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ];
    let mut parts: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| f.system & bit != 0)
        .map(|&(_, n)| n)
        .collect();
    parts.extend(f.keywords.iter().map(String::as_str));
    parts.join(" ")
}

fn addresses(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        if let Some(group) = &a.group {
            // RFC 3501 §7.4.2: group start is (NIL NIL "name" NIL).
            out.extend_from_slice(b"NIL NIL ");
            string(out, group.as_bytes());
            out.extend_from_slice(b" NIL");
        } else {
            nstring(out, a.name.as_deref());
            out.extend_from_slice(b" NIL ");
            nstring(out, a.mailbox.as_deref());
            out.push(b' ');
            nstring(out, a.host.as_deref());
        }
        out.push(b')');
    }
    out.push(b')');
}

pub fn envelope(out: &mut Vec<u8>, e: &Envelope) {
    out.push(b'(');
    nstring(out, e.date.as_deref());
    out.push(b' ');
    nstring(out, e.subject.as_deref());
    out.push(b' ');
    addresses(out, &e.from);
    // RFC 3501 §7.4.2: Sender and Reply-To default to From.
    for list in [&e.sender, &e.reply_to] {
        out.push(b' ');
        addresses(out, if list.is_empty() { &e.from } else { list });
    }
    for list in [&e.to, &e.cc, &e.bcc] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    nstring(out, e.in_reply_to.as_deref());
    out.push(b' ');
    nstring(out, e.message_id.as_deref());
    out.push(b')');
}

fn params(out: &mut Vec<u8>, p: &[(String, String)]) {
    if p.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

fn disposition_language_location(out: &mut Vec<u8>, p: &Part) {
    out.push(b' ');
    match &p.disposition {
        Some((kind, ps)) => {
            out.push(b'(');
            string(out, kind.as_bytes());
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match p.language.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        langs => {
            out.push(b'(');
            for (i, l) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l.as_bytes());
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, p.location.as_deref());
}

/// BODYSTRUCTURE (`extended`) or BODY of a part.
pub fn body_structure(out: &mut Vec<u8>, p: &Part, extended: bool) {
    out.push(b'(');
    match &p.kind {
        PartKind::Multipart(children) => {
            if children.is_empty() {
                // A multipart without boundary lines: report an empty text part,
                // since the grammar needs at least one child.
                out.extend_from_slice(
                    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
                );
            }
            for c in children {
                body_structure(out, c, extended);
            }
            out.push(b' ');
            string(out, p.content_subtype.as_bytes());
            if extended {
                out.push(b' ');
                params(out, &p.params);
                disposition_language_location(out, p);
            }
        }
        kind => {
            string(out, p.content_type.as_bytes());
            out.push(b' ');
            string(out, p.content_subtype.as_bytes());
            out.push(b' ');
            params(out, &p.params);
            out.push(b' ');
            nstring(out, p.id.as_deref());
            out.push(b' ');
            nstring(out, p.description.as_deref());
            out.push(b' ');
            string(out, p.encoding.as_deref().unwrap_or("7bit").as_bytes());
            let size = p.end_offset.saturating_sub(p.body_offset);
            out.extend_from_slice(format!(" {size}").as_bytes());
            if let PartKind::Message { envelope: e, body } = kind {
                out.push(b' ');
                envelope(out, e);
                out.push(b' ');
                body_structure(out, body, extended);
                out.extend_from_slice(format!(" {}", p.body_lines).as_bytes());
            } else if p.content_type == "text" {
                out.extend_from_slice(format!(" {}", p.body_lines).as_bytes());
            }
            if extended {
                out.push(b' ');
                nstring(out, p.md5.as_deref());
                disposition_language_location(out, p);
            }
        }
    }
    out.push(b')');
}

/// The part a section's part numbers name (RFC 3501 §6.4.5): children of a
/// multipart, or the body of a message/rfc822; part 1 of a non-multipart
/// message is its body.
pub fn find_part<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let mut cur = root;
    for (depth, &n) in path.iter().enumerate() {
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        let container = match &cur.kind {
            PartKind::Message { body, .. } if depth > 0 => body,
            _ => cur,
        };
        cur = match &container.kind {
            PartKind::Multipart(children) => children.get(i)?,
            _ if i == 0 && (depth == 0 || !std::ptr::eq(container, cur)) => container,
            _ => return None,
        };
    }
    Some(cur)
}

/// What to send for a section: a byte range of the message, optionally
/// filtered to some header fields.
#[derive(Debug, PartialEq, Eq)]
pub struct SectionRange {
    pub start: u64,
    pub end: u64,
    /// HEADER.FIELDS (NOT): field names (lowercase) and whether to exclude.
    pub filter: Option<(bool, Vec<String>)>,
}

pub fn section_range(root: &Part, size: u64, s: &Section) -> Option<SectionRange> {
    let range = |start, end| SectionRange {
        start,
        end,
        filter: None,
    };
    if s.part.is_empty() {
        return Some(match &s.text {
            None => range(0, size),
            Some(SectionText::Header) => range(root.header_offset, root.body_offset),
            Some(SectionText::Text) => range(root.body_offset, root.end_offset.max(size)),
            Some(SectionText::HeaderFields { not, fields }) => SectionRange {
                filter: Some((*not, fields.clone())),
                ..range(root.header_offset, root.body_offset)
            },
            Some(SectionText::Mime) => return None,
        });
    }
    let p = find_part(root, &s.part)?;
    Some(match &s.text {
        None => range(p.body_offset, p.end_offset),
        Some(SectionText::Mime) => range(p.header_offset, p.body_offset),
        Some(t) => {
            // HEADER/TEXT of a part apply to an encapsulated message only.
            let PartKind::Message { body, .. } = &p.kind else {
                return None;
            };
            match t {
                SectionText::Header => range(body.header_offset, body.body_offset),
                SectionText::Text => range(body.body_offset, body.end_offset),
                SectionText::HeaderFields { not, fields } => SectionRange {
                    filter: Some((*not, fields.clone())),
                    ..range(body.header_offset, body.body_offset)
                },
                SectionText::Mime => return None,
            }
        }
    })
}

/// The header fields of `header` whose names are (or with `not`, are not) in
/// `names`, followed by the blank line (RFC 3501 §6.4.5).
pub fn filter_header(header: &[u8], not: bool, names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            keep = names.contains(&name) != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The name a section is reported under, e.g. `BODY[1.HEADER.FIELDS (TO)]<0>`.
pub fn section_name(s: &Section, origin: Option<u32>) -> String {
    let mut name = String::from("BODY[");
    let parts: Vec<String> = s.part.iter().map(u32::to_string).collect();
    name.push_str(&parts.join("."));
    if let Some(t) = &s.text {
        if !s.part.is_empty() {
            name.push('.');
        }
        match t {
            SectionText::Header => name.push_str("HEADER"),
            SectionText::Text => name.push_str("TEXT"),
            SectionText::Mime => name.push_str("MIME"),
            SectionText::HeaderFields { not, fields } => {
                name.push_str(if *not {
                    "HEADER.FIELDS.NOT ("
                } else {
                    "HEADER.FIELDS ("
                });
                let upper: Vec<String> = fields.iter().map(|f| f.to_ascii_uppercase()).collect();
                name.push_str(&upper.join(" "));
                name.push(')');
            }
        }
    }
    name.push(']');
    if let Some(o) = origin {
        name.push_str(&format!("<{o}>"));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: Anna <anna@example.org>\r\nTo: bob@example.org, Team: c@x.org;\r\nSubject: Hi \"there\"\r\nMessage-ID: <1@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--b--\r\n";

    fn summary() -> summary::Summary {
        summary::summarize(MSG, summary::Limits::default())
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set([1, 2, 3, 5, 7, 8].into_iter()), "1:3,5,7:8");
        assert_eq!(uid_set([4].into_iter()), "4");
        assert_eq!(uid_set(std::iter::empty()), "");
        // Order kept: COPYUID source and destination lists must pair up.
        assert_eq!(uid_set([3, 1].into_iter()), "3,1");
    }

    #[test]
    fn strings() {
        let mut out = Vec::new();
        string(&mut out, b"a \"b\\");
        assert_eq!(out, b"\"a \\\"b\\\\\"");
        out.clear();
        string(&mut out, "ü\r\n".as_bytes());
        assert_eq!(out, b"{4}\r\n\xc3\xbc\r\n");
        out.clear();
        nstring(&mut out, None);
        assert_eq!(out, b"NIL");
    }

    #[test]
    fn envelope_format() {
        let mut out = Vec::new();
        envelope(&mut out, &summary().envelope);
        assert_eq!(
            text(out),
            "(NIL \"Hi \\\"there\\\"\" ((\"Anna\" NIL \"anna\" \"example.org\")) \
             ((\"Anna\" NIL \"anna\" \"example.org\")) ((\"Anna\" NIL \"anna\" \"example.org\")) \
             ((NIL NIL \"bob\" \"example.org\")(NIL NIL \"Team\" NIL)(NIL NIL \"c\" \"x.org\")(NIL NIL NIL NIL)) \
             NIL NIL NIL \"<1@x>\")"
        );
    }

    #[test]
    fn bodystructure_format() {
        let s = summary();
        let mut out = Vec::new();
        body_structure(&mut out, &s.root, false);
        assert_eq!(
            text(out),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 2)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 22 \
             (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 1) 3) \"mixed\")"
        );
        let mut out = Vec::new();
        body_structure(&mut out, &s.root, true);
        assert!(text(out).ends_with("\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)"));
    }

    fn bytes(s: &summary::Summary, sec: Section) -> Vec<u8> {
        let r = section_range(&s.root, s.size, &sec).unwrap();
        let b = MSG[r.start as usize..r.end as usize].to_vec();
        match r.filter {
            Some((not, f)) => filter_header(&b, not, &f),
            None => b,
        }
    }

    #[test]
    fn sections() {
        let s = summary();
        let sec = |part: Vec<u32>, text| Section { part, text };
        assert_eq!(bytes(&s, sec(vec![], None)), MSG);
        assert_eq!(bytes(&s, sec(vec![1], None)), b"hello\r\nworld");
        assert_eq!(
            bytes(&s, sec(vec![1], Some(SectionText::Mime))),
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            bytes(&s, sec(vec![2], Some(SectionText::Header))),
            b"Subject: inner\r\n\r\n"
        );
        assert_eq!(bytes(&s, sec(vec![2, 1], None)), b"body");
        assert_eq!(
            bytes(
                &s,
                sec(
                    vec![],
                    Some(SectionText::HeaderFields {
                        not: false,
                        fields: vec!["subject".into()]
                    })
                )
            ),
            b"Subject: Hi \"there\"\r\n\r\n"
        );
        assert!(section_range(&s.root, s.size, &sec(vec![3], None)).is_none());
        assert!(section_range(&s.root, s.size, &sec(vec![1, 1], None)).is_none());
        assert!(section_range(&s.root, s.size, &sec(vec![1], Some(SectionText::Text))).is_none());
        let single = summary::summarize(b"Subject: x\r\n\r\nhi\r\n", summary::Limits::default());
        let r = section_range(&single.root, single.size, &sec(vec![1], None)).unwrap();
        assert_eq!((r.start, r.end), (14, 18));
    }

    #[test]
    fn names() {
        let s = Section {
            part: vec![1, 2],
            text: Some(SectionText::HeaderFields {
                not: true,
                fields: vec!["to".into()],
            }),
        };
        assert_eq!(
            section_name(&s, Some(5)),
            "BODY[1.2.HEADER.FIELDS.NOT (TO)]<5>"
        );
        assert_eq!(section_name(&Section::default(), None), "BODY[]");
        let mut f = Flags {
            system: Flags::SEEN | Flags::DRAFT,
            keywords: vec!["$Junk".into()],
        };
        assert_eq!(flags(&f), "\\Seen \\Draft $Junk");
        f.system = 0;
        f.keywords.clear();
        assert_eq!(flags(&f), "");
    }

    #[test]
    fn esearch_responses() {
        let all = SearchReturn {
            min: true,
            max: true,
            count: true,
            all: true,
            save: false,
        };
        assert_eq!(
            esearch("a1", false, all, &[2, 3, 4, 9], None),
            "* ESEARCH (TAG \"a1\") MIN 2 MAX 9 COUNT 4 ALL 2:4,9\r\n"
        );
        // RFC 4731 §3.1: no MIN, MAX or ALL when nothing matched.
        assert_eq!(
            esearch("a2", true, all, &[], Some(5)),
            "* ESEARCH (TAG \"a2\") UID COUNT 0\r\n"
        );
        assert_eq!(
            esearch("a3", true, SearchReturn::ALL, &[7], Some(12)),
            "* ESEARCH (TAG \"a3\") UID ALL 7 MODSEQ 12\r\n"
        );
    }

    #[test]
    fn mailbox_names_utf7_or_utf8() {
        let name = |n: &str, utf8| {
            let mut out = Vec::new();
            mailbox(&mut out, n, utf8);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(name("Entwürfe", false), "\"Entw&APw-rfe\"");
        assert_eq!(name("Entwürfe", true), "\"Entwürfe\"");
        assert_eq!(name("a\"b", true), "\"a\\\"b\"");
    }

    #[test]
    fn transfer_decoding() {
        let d = |e: Option<&str>, s: &[u8]| decode_transfer_encoding(e, s);
        assert_eq!(
            d(Some("BASE64"), b"AAEC\r\nAw==\r\n"),
            Some(vec![0, 1, 2, 3])
        );
        assert_eq!(d(Some("base64"), b"aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(d(Some("base64"), b"aGVs bG8="), Some(b"hello".to_vec()));
        assert_eq!(
            d(Some("quoted-printable"), b"caf=C3=A9 =\r\nsoft =ZZ end="),
            Some("café soft =ZZ end=".as_bytes().to_vec())
        );
        assert_eq!(d(None, b"plain"), Some(b"plain".to_vec()));
        assert_eq!(d(Some("x-uuencode"), b"x"), None);
    }
}
