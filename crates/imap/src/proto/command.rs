//! Command grammar (RFC 3501 §9, the parts this server implements). Input is
//! one whole command as received: lines with their literals embedded as on the
//! wire (`{n}\r\n` followed by n bytes). No I/O; every failure is a
//! [`ParseError`], never a panic.

use store::{FlagOp, Flags};

use super::date::{parse_date, parse_date_time};
use super::seqset::SeqSet;

/// Nesting of parentheses and NOT/OR in SEARCH.
pub const MAX_DEPTH: usize = 16;
/// Items in one list (FETCH attributes, flags, header fields, search keys).
const MAX_LIST: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        user: String,
        password: Vec<u8>,
    },
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    Select {
        mailbox: String,
        read_only: bool,
        /// `(CONDSTORE)` parameter (RFC 7162 §3.1.8).
        condstore: bool,
        /// `(QRESYNC (...))` parameter (RFC 7162 §3.2.5).
        qresync: Option<Qresync>,
    },
    Create(String),
    Delete(String),
    Rename(String, String),
    Subscribe(String, bool),
    List(ListCommand),
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    Check,
    Close,
    Unselect,
    Expunge {
        uids: Option<SeqSet>,
    },
    Fetch {
        uid: bool,
        set: SeqSet,
        items: Vec<FetchAtt>,
        /// CHANGEDSINCE modifier (RFC 7162 §3.1.4).
        changed_since: Option<u64>,
        /// VANISHED modifier (RFC 7162 §3.2.6).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SeqSet,
        op: FlagOp,
        silent: bool,
        flags: Flags,
        /// UNCHANGEDSINCE modifier (RFC 7162 §3.1.3).
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SeqSet,
        mailbox: String,
        moving: bool,
    },
    Search {
        uid: bool,
        key: SearchKey,
        /// `RETURN (...)` (RFC 4731 §3.1): answer with ESEARCH; `None`
        /// for a plain RFC 3501 SEARCH.
        ret: Option<SearchReturn>,
    },
    Idle,
    /// GETQUOTAROOT (RFC 9208 §4.3.2).
    GetQuotaRoot(String),
    /// GETQUOTA (RFC 9208 §4.3.1); the root name.
    GetQuota(String),
    Namespace,
    /// Extension names, uppercase (RFC 5161).
    Enable(Vec<String>),
    Id,
}

/// ESEARCH result options (RFC 4731 §3.1). `RETURN ()` means ALL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub count: bool,
    pub all: bool,
    /// SAVE (RFC 5182 §2.1): keep the result for `$`.
    pub save: bool,
}

impl SearchReturn {
    pub const ALL: SearchReturn = SearchReturn {
        min: false,
        max: false,
        count: false,
        all: true,
        save: false,
    };

    /// Whether an ESEARCH response is sent: not for SAVE alone
    /// (RFC 5182 §2.1).
    pub fn responds(&self) -> bool {
        self.min || self.max || self.count || self.all
    }
}

/// What a client knew of a mailbox when it last synchronized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    /// Limits the VANISHED (EARLIER) report.
    pub known_uids: Option<SeqSet>,
}

/// LIST and LSUB, with the parts of LIST-EXTENDED (RFC 5258) clients send
/// most: selection options SUBSCRIBED and SPECIAL-USE (RFC 6154 §5.1),
/// several patterns, and RETURN (STATUS ...) (RFC 5819). Other options are
/// accepted and have no effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListCommand {
    pub lsub: bool,
    pub reference: String,
    pub patterns: Vec<String>,
    pub subscribed_only: bool,
    pub special_use_only: bool,
    /// RECURSIVEMATCH (RFC 5258 §3.1): with SUBSCRIBED, also parents of
    /// subscribed folders, marked with CHILDINFO.
    pub recursive_match: bool,
    /// RETURN (SUBSCRIBED): mark subscribed folders (RFC 5258 §3.2).
    pub return_subscribed: bool,
    pub status: Option<Vec<StatusItem>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Size,
    HighestModSeq,
    /// Messages flagged \Deleted (RFC 9051 §6.3.11).
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchAtt {
    Flags,
    /// RFC 7162 §3.1.4.
    ModSeq,
    Uid,
    InternalDate,
    Rfc822Size,
    Envelope,
    BodyStructure,
    /// `BODY` without a section: BODYSTRUCTURE without extension data.
    Body,
    /// `BINARY[part]<partial>` and `BINARY.PEEK[...]` (RFC 3516 §4.1):
    /// the part with its content-transfer-encoding removed.
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY.SIZE[part]`: the decoded size.
    BinarySize(Vec<u32>),
    Section {
        /// `BODY.PEEK[...]`, RFC822.HEADER: does not set \Seen.
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
        /// How the response names it: RFC822, RFC822.HEADER, RFC822.TEXT keep
        /// their names (RFC 3501 §7.4.2).
        legacy: Option<&'static str>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    Seq(SeqSet),
    Uid(SeqSet),
    /// A system flag bit set (`true`) or clear.
    Flag(u8, bool),
    Keyword(String, bool),
    /// RECENT, NEW: this server never reports messages as recent.
    None,
    Larger(u64),
    Smaller(u64),
    /// Internal date, in days since the epoch.
    Before(i64),
    On(i64),
    Since(i64),
    /// Date header's date, in days since the epoch, time and zone ignored.
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    /// Field name (lowercase) and substring.
    Header(String, String),
    Body(String),
    Text(String),
    /// Modseq at least this (RFC 7162 §3.1.5).
    ModSeq(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Syntax error; the tag when one could be read.
    Bad(Option<String>, String),
}

impl ParseError {
    pub fn tag(&self) -> Option<&str> {
        let ParseError::Bad(tag, _) = self;
        tag.as_deref()
    }

    pub fn message(&self) -> &str {
        let ParseError::Bad(_, m) = self;
        m
    }
}

type R<T> = Result<T, String>;

/// The tag of a command line, if it has a valid one.
pub fn tag_of(input: &[u8]) -> Option<String> {
    let mut p = Parser::new(input);
    p.tag().ok()
}

/// Parses one command: `(tag, command)`.
pub fn parse(input: &[u8]) -> Result<(String, Command), ParseError> {
    let mut p = Parser::new(input);
    let tag = p.tag().map_err(|e| ParseError::Bad(None, e))?;
    let cmd = p
        .sp()
        .and_then(|()| p.command())
        .and_then(|c| p.end().map(|()| c))
        .map_err(|e| ParseError::Bad(Some(tag.clone()), e))?;
    Ok((tag, cmd))
}

/// What an APPEND says before its message literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendHead {
    pub tag: String,
    pub mailbox: String,
    pub flags: Flags,
    pub date: Option<i64>,
}

/// Parses `tag APPEND mailbox [flags] [date-time] ` (up to the message
/// literal); `None` unless it is exactly that.
pub fn parse_append_head(input: &[u8]) -> Option<AppendHead> {
    let mut p = Parser::new(input);
    let tag = p.tag().ok()?;
    p.sp().ok()?;
    if !p.atom().ok()?.eq_ignore_ascii_case("APPEND") {
        return None;
    }
    p.sp().ok()?;
    let mailbox = p.mailbox().ok()?;
    p.sp().ok()?;
    let (flags, date) = p.append_options()?;
    Some(AppendHead {
        tag,
        mailbox,
        flags,
        date,
    })
}

/// What follows a message literal of APPEND when another message comes
/// (MULTIAPPEND, RFC 3502 §6.3.11): ` [flags SP] [date-time SP]`, up to
/// the next literal. `(flags, date)`; `None` unless it is exactly that.
pub fn parse_append_next(input: &[u8]) -> Option<(Flags, Option<i64>)> {
    let mut p = Parser::new(input);
    p.sp().ok()?;
    p.append_options()
}

/// What precedes the literal a line ends with (`{n}`, `{n+}`, or the
/// literal8 `~{n}` of RFC 3516 §4.4, which APPEND takes for binary
/// messages).
pub fn before_literal(line: &[u8]) -> &[u8] {
    let open = line.iter().rposition(|&b| b == b'{').unwrap_or(line.len());
    let head = &line[..open];
    head.strip_suffix(b"~").unwrap_or(head)
}

/// A `{n}` or `{n+}` at the end of a line: `(n, non_synchronizing)`. `n` is
/// u64 so `{4294967295}` and larger are seen as what they are and refused.
pub fn literal_suffix(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let plus = digits.last() == Some(&b'+');
    if plus {
        digits = &digits[..digits.len() - 1];
    }
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, plus))
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

fn is_atom_char(b: u8) -> bool {
    // RFC 3501 §9 ATOM-CHAR: CHAR except atom-specials.
    b > 0x20 && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

impl<'a> Parser<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Parser {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn end(&self) -> R<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err("unexpected characters at the end of the command".into())
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn expect(&mut self, b: u8) -> R<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}'", b as char))
        }
    }

    fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    fn tag(&mut self) -> R<String> {
        let t = self.take_while(|b| is_atom_char(b) && b != b'+');
        if t.is_empty() {
            return Err("missing tag".into());
        }
        Ok(String::from_utf8_lossy(t).into_owned())
    }

    fn atom(&mut self) -> R<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    fn number(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "expected a number".into())
    }

    fn number32(&mut self) -> R<u32> {
        u32::try_from(self.number()?).map_err(|_| "number too large".into())
    }

    fn quoted_bytes(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n' | 0) => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err("bad escape in quoted string".into()),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn quoted(&mut self) -> R<String> {
        let b = self.quoted_bytes()?;
        String::from_utf8(b).map_err(|_| "invalid UTF-8".into())
    }

    fn literal(&mut self) -> R<Vec<u8>> {
        self.expect(b'{')?;
        let n = self.number()?;
        if self.peek() == Some(b'+') {
            self.pos += 1;
        }
        self.expect(b'}')?;
        self.expect(b'\r')?;
        self.expect(b'\n')?;
        let n = usize::try_from(n).map_err(|_| "literal too large")?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or("literal longer than the data")?;
        let out = self.buf[self.pos..end].to_vec();
        self.pos = end;
        Ok(out)
    }

    fn string_bytes(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted_bytes(),
            Some(b'{') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    fn astring_bytes(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string_bytes(),
            // ASTRING-CHAR includes ']' (resp-specials).
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b == b']');
                if a.is_empty() {
                    return Err("expected a string".into());
                }
                Ok(a.to_vec())
            }
        }
    }

    fn astring(&mut self) -> R<String> {
        String::from_utf8(self.astring_bytes()?).map_err(|_| "invalid UTF-8".into())
    }

    /// A mailbox name, decoded from modified UTF-7 (RFC 3501 §5.1.3) when
    /// it is valid modified UTF-7.
    fn mailbox(&mut self) -> R<String> {
        let s = self.astring()?;
        Ok(super::utf7::decode(&s).unwrap_or(s))
    }

    /// `list-mailbox`: like astring but `%` and `*` are allowed.
    fn list_mailbox(&mut self) -> R<String> {
        let s = match self.peek() {
            Some(b'"' | b'{') => self.astring()?,
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b"%*]".contains(&b));
                if a.is_empty() {
                    return Err("expected a mailbox pattern".into());
                }
                String::from_utf8_lossy(a).into_owned()
            }
        };
        Ok(super::utf7::decode(&s).unwrap_or(s))
    }

    fn flag(&mut self) -> R<Flag> {
        let backslash = self.peek() == Some(b'\\');
        if backslash {
            self.pos += 1;
            if self.peek() == Some(b'*') {
                self.pos += 1;
                return Err("\\* is not a flag".into());
            }
        }
        let name = self.atom()?;
        if !backslash {
            return Ok(Flag::Keyword(name));
        }
        let bit = match name.to_ascii_lowercase().as_str() {
            "seen" => Flags::SEEN,
            "answered" => Flags::ANSWERED,
            "flagged" => Flags::FLAGGED,
            "deleted" => Flags::DELETED,
            "draft" => Flags::DRAFT,
            // \Recent cannot be set by clients; other \-flags do not exist.
            _ => return Err(format!("unknown flag \\{name}")),
        };
        Ok(Flag::System(bit))
    }

    fn flags_until_close(&mut self, mut flags: Flags) -> R<Flags> {
        let mut n = 0;
        while self.peek() != Some(b')') {
            if n > 0 {
                self.sp()?;
            }
            n += 1;
            if n > MAX_LIST {
                return Err("too many flags".into());
            }
            match self.flag()? {
                Flag::System(b) => flags.system |= b,
                Flag::Keyword(k) => {
                    if !flags.keywords.iter().any(|x| x.eq_ignore_ascii_case(&k)) {
                        flags.keywords.push(k);
                    }
                }
            }
        }
        self.pos += 1;
        Ok(flags)
    }

    fn flag_list(&mut self) -> R<Flags> {
        self.expect(b'(')?;
        self.flags_until_close(Flags::default())
    }

    /// `[flag-list SP] [date-time SP]` up to the end of the input, as
    /// before an APPEND message literal.
    fn append_options(&mut self) -> Option<(Flags, Option<i64>)> {
        let mut flags = Flags::default();
        if self.peek() == Some(b'(') {
            flags = self.flag_list().ok()?;
            self.sp().ok()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            let s = self.quoted().ok()?;
            date = Some(parse_date_time(&s)?);
            self.sp().ok()?;
        }
        self.end().ok()?;
        Some((flags, date))
    }

    fn seq_set(&mut self) -> R<SeqSet> {
        if self.peek() == Some(b'$') {
            self.pos += 1;
            return Ok(SeqSet::saved());
        }
        let s = self.take_while(|b| b.is_ascii_digit() || b":,*".contains(&b));
        SeqSet::parse(s).ok_or_else(|| "invalid sequence set".into())
    }

    fn command(&mut self) -> R<Command> {
        let name = self.atom()?.to_ascii_uppercase();
        Ok(match name.as_str() {
            "CAPABILITY" => Command::Capability,
            "NOOP" => Command::Noop,
            "LOGOUT" => Command::Logout,
            "STARTTLS" => Command::StartTls,
            "CHECK" => Command::Check,
            "CLOSE" => Command::Close,
            "UNSELECT" => Command::Unselect,
            "IDLE" => Command::Idle,
            "NAMESPACE" => Command::Namespace,
            "EXPUNGE" => Command::Expunge { uids: None },
            "LOGIN" => {
                self.sp()?;
                let user = self.astring()?;
                self.sp()?;
                let password = self.astring_bytes()?;
                Command::Login { user, password }
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.atom()?.to_ascii_uppercase();
                let initial = if self.at_end() {
                    None
                } else {
                    self.sp()?;
                    // SASL-IR (RFC 4959): base64 or "=" for empty.
                    let t = self.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
                    Some(String::from_utf8_lossy(t).into_owned())
                };
                Command::Authenticate { mechanism, initial }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let (mut condstore, mut qresync) = (false, None);
                if !self.at_end() {
                    self.sp()?;
                    self.expect(b'(')?;
                    while self.peek() != Some(b')') {
                        if condstore || qresync.is_some() {
                            self.sp()?;
                        }
                        match self.atom()?.to_ascii_uppercase().as_str() {
                            "CONDSTORE" if !condstore => condstore = true,
                            "QRESYNC" if qresync.is_none() => {
                                self.sp()?;
                                qresync = Some(self.qresync()?);
                            }
                            p => return Err(format!("unexpected SELECT parameter {p}")),
                        }
                    }
                    self.pos += 1;
                }
                Command::Select {
                    mailbox,
                    read_only: name == "EXAMINE",
                    condstore,
                    qresync,
                }
            }
            "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
                self.sp()?;
                let m = self.mailbox()?;
                match name.as_str() {
                    "CREATE" => Command::Create(m),
                    "DELETE" => Command::Delete(m),
                    _ => Command::Subscribe(m, name == "SUBSCRIBE"),
                }
            }
            "GETQUOTAROOT" => {
                self.sp()?;
                Command::GetQuotaRoot(self.mailbox()?)
            }
            "GETQUOTA" => {
                self.sp()?;
                Command::GetQuota(self.astring()?)
            }
            "RENAME" => {
                self.sp()?;
                let from = self.mailbox()?;
                self.sp()?;
                Command::Rename(from, self.mailbox()?)
            }
            "LIST" | "LSUB" => {
                self.sp()?;
                self.list(name == "LSUB")?
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                Command::Status {
                    mailbox,
                    items: self.status_items()?,
                }
            }
            "ENABLE" => {
                let mut names = Vec::new();
                while !self.at_end() || names.is_empty() {
                    self.sp()?;
                    if names.len() >= MAX_LIST {
                        return Err("too many extensions".into());
                    }
                    names.push(self.atom()?.to_ascii_uppercase());
                }
                Command::Enable(names)
            }
            "ID" => {
                // RFC 2971: the client's parameters are only logged by peers;
                // we accept any well-formed list and ignore it.
                self.sp()?;
                if self.peek() == Some(b'(') {
                    self.pos += 1;
                    let mut n = 0;
                    while self.peek() != Some(b')') {
                        if n > 0 {
                            self.sp()?;
                        }
                        n += 1;
                        if n > 60 {
                            return Err("too many ID fields".into());
                        }
                        self.nstring()?;
                    }
                    self.pos += 1;
                } else {
                    self.nil()?;
                }
                Command::Id
            }
            "UID" => {
                self.sp()?;
                let sub = self.atom()?.to_ascii_uppercase();
                self.sp()?;
                match sub.as_str() {
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" | "MOVE" => self.copy(true, sub == "MOVE")?,
                    "SEARCH" => self.search(true)?,
                    "EXPUNGE" => Command::Expunge {
                        uids: Some(self.seq_set()?),
                    },
                    _ => return Err(format!("unknown UID command {sub}")),
                }
            }
            "FETCH" | "STORE" | "COPY" | "MOVE" | "SEARCH" => {
                self.sp()?;
                match name.as_str() {
                    "FETCH" => self.fetch(false)?,
                    "STORE" => self.store(false)?,
                    "SEARCH" => self.search(false)?,
                    _ => self.copy(false, name == "MOVE")?,
                }
            }
            "APPEND" => return Err("APPEND needs a message literal".into()),
            _ => return Err(format!("unknown command {name}")),
        })
    }

    fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.nonempty_list_of("status item", |p| {
            Ok(match p.atom()?.to_ascii_uppercase().as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "DELETED" => StatusItem::Deleted,
                other => return Err(format!("unknown status item {other}")),
            })
        })
    }

    /// `( word *(SP word) )`, words as uppercase atoms.
    fn atom_list(&mut self) -> R<Vec<String>> {
        self.list_of("option", |p| Ok(p.atom()?.to_ascii_uppercase()))
    }

    /// `"(" [item *(SP item)] ")"` with at most [`MAX_LIST`] items.
    fn list_of<T>(&mut self, what: &str, mut item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        while self.peek() != Some(b')') {
            if !items.is_empty() {
                self.sp()?;
            }
            if items.len() >= MAX_LIST {
                return Err(format!("too many {what}s"));
            }
            items.push(item(self)?);
        }
        self.pos += 1;
        Ok(items)
    }

    /// [`Parser::list_of`] that refuses an empty list.
    fn nonempty_list_of<T>(
        &mut self,
        what: &str,
        item: impl FnMut(&mut Self) -> R<T>,
    ) -> R<Vec<T>> {
        let items = self.list_of(what, item)?;
        if items.is_empty() {
            return Err(format!("empty {what} list"));
        }
        Ok(items)
    }

    fn list(&mut self, lsub: bool) -> R<Command> {
        let mut l = ListCommand {
            lsub,
            ..ListCommand::default()
        };
        if !lsub && self.peek() == Some(b'(') {
            for opt in self.atom_list()? {
                match opt.as_str() {
                    "SUBSCRIBED" => l.subscribed_only = true,
                    "SPECIAL-USE" => l.special_use_only = true,
                    "RECURSIVEMATCH" => l.recursive_match = true,
                    // No remote mailboxes exist here (RFC 5258 §3.1).
                    "REMOTE" => {}
                    other => return Err(format!("unsupported LIST selection option {other}")),
                }
            }
            // RFC 5258 §3.1: RECURSIVEMATCH needs an option it modifies
            // (SUBSCRIBED, or SPECIAL-USE by RFC 6154 §5.1, where it has no
            // effect: special-use folders have no special-use children).
            if l.recursive_match && !l.subscribed_only && !l.special_use_only {
                return Err("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE".into());
            }
            self.sp()?;
        }
        l.reference = self.mailbox()?;
        self.sp()?;
        if !lsub && self.peek() == Some(b'(') {
            l.patterns = self.nonempty_list_of("pattern", Self::list_mailbox)?;
        } else {
            l.patterns.push(self.list_mailbox()?);
        }
        if !lsub && !self.at_end() {
            self.sp()?;
            if !self.atom()?.eq_ignore_ascii_case("RETURN") {
                return Err("expected RETURN".into());
            }
            self.sp()?;
            self.expect(b'(')?;
            let mut n = 0;
            while self.peek() != Some(b')') {
                if n > 0 {
                    self.sp()?;
                }
                n += 1;
                if n > MAX_LIST {
                    return Err("too many return options".into());
                }
                match self.atom()?.to_ascii_uppercase().as_str() {
                    "STATUS" => {
                        self.sp()?;
                        l.status = Some(self.status_items()?);
                    }
                    "SUBSCRIBED" => l.return_subscribed = true,
                    // Always reported (RFC 3348); SPECIAL-USE attributes too.
                    "CHILDREN" | "SPECIAL-USE" => {}
                    other => return Err(format!("unsupported LIST return option {other}")),
                }
            }
            self.pos += 1;
        }
        Ok(Command::List(l))
    }

    fn nil(&mut self) -> R<()> {
        let a = self.atom()?;
        if a.eq_ignore_ascii_case("NIL") {
            Ok(())
        } else {
            Err("expected NIL".into())
        }
    }

    fn nstring(&mut self) -> R<()> {
        match self.peek() {
            Some(b'"' | b'{') => self.string_bytes().map(drop),
            _ => self.nil(),
        }
    }

    fn fetch(&mut self, uid: bool) -> R<Command> {
        let set = self.seq_set()?;
        self.sp()?;
        let mut items = Vec::new();
        if self.peek() == Some(b'(') {
            items = self.nonempty_list_of("fetch item", Self::fetch_att)?;
        } else {
            let save = self.pos;
            let word = self.atom()?.to_ascii_uppercase();
            // RFC 3501 §6.4.5 macros.
            let fast = [
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
            ];
            match word.as_str() {
                "ALL" => items.extend(fast.into_iter().chain([FetchAtt::Envelope])),
                "FAST" => items.extend(fast),
                "FULL" => {
                    items.extend(fast.into_iter().chain([FetchAtt::Envelope, FetchAtt::Body]))
                }
                _ => {
                    self.pos = save;
                    items.push(self.fetch_att()?);
                }
            }
        }
        if uid && !items.contains(&FetchAtt::Uid) {
            // RFC 3501 §6.4.8: UID FETCH always reports the UID.
            items.insert(0, FetchAtt::Uid);
        }
        let (changed_since, vanished) = self.fetch_modifiers()?;
        if vanished && !uid {
            // RFC 7162 §3.2.6: only UID FETCH may ask for VANISHED.
            return Err("VANISHED needs UID FETCH".into());
        }
        if changed_since.is_some() && !items.contains(&FetchAtt::ModSeq) {
            // RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
            items.push(FetchAtt::ModSeq);
        }
        Ok(Command::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        })
    }

    fn fetch_att(&mut self) -> R<FetchAtt> {
        let name = self
            .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
            .to_ascii_uppercase();
        let section = |peek, legacy, text| FetchAtt::Section {
            peek,
            section: Section { part: vec![], text },
            partial: None,
            legacy: Some(legacy),
        };
        Ok(match &name[..] {
            b"FLAGS" => FetchAtt::Flags,
            b"MODSEQ" => FetchAtt::ModSeq,
            b"UID" => FetchAtt::Uid,
            b"INTERNALDATE" => FetchAtt::InternalDate,
            b"RFC822.SIZE" => FetchAtt::Rfc822Size,
            b"ENVELOPE" => FetchAtt::Envelope,
            b"BODYSTRUCTURE" => FetchAtt::BodyStructure,
            b"RFC822" => section(false, "RFC822", None),
            b"RFC822.HEADER" => section(true, "RFC822.HEADER", Some(SectionText::Header)),
            b"RFC822.TEXT" => section(false, "RFC822.TEXT", Some(SectionText::Text)),
            b"BINARY" | b"BINARY.PEEK" | b"BINARY.SIZE" => {
                // section-binary = "[" [section-part] "]" (RFC 3516 §6).
                self.expect(b'[')?;
                let mut part = Vec::new();
                while self.peek() != Some(b']') {
                    if !part.is_empty() {
                        self.expect(b'.')?;
                    }
                    let n = self.number32()?;
                    if n == 0 || part.len() >= MAX_DEPTH * 4 {
                        return Err("invalid section part".into());
                    }
                    part.push(n);
                }
                self.pos += 1;
                if &name[..] == b"BINARY.SIZE" {
                    return Ok(FetchAtt::BinarySize(part));
                }
                FetchAtt::Binary {
                    peek: &name[..] == b"BINARY.PEEK",
                    part,
                    partial: self.partial()?,
                }
            }
            b"BODY" | b"BODY.PEEK" => {
                if self.peek() != Some(b'[') {
                    if &name[..] == b"BODY" {
                        return Ok(FetchAtt::Body);
                    }
                    return Err("BODY.PEEK needs a section".into());
                }
                self.pos += 1;
                let section = self.section()?;
                self.expect(b']')?;
                let partial = self.partial()?;
                FetchAtt::Section {
                    peek: &name[..] == b"BODY.PEEK",
                    section,
                    partial,
                    legacy: None,
                }
            }
            _ => return Err("unknown fetch item".into()),
        })
    }

    /// `<origin.length>` after a section, if present.
    fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if self.peek() != Some(b'<') {
            return Ok(None);
        }
        self.pos += 1;
        let start = self.number32()?;
        self.expect(b'.')?;
        let len = self.number32()?;
        if len == 0 {
            return Err("partial length must be positive".into());
        }
        self.expect(b'>')?;
        Ok(Some((start, len)))
    }

    fn section(&mut self) -> R<Section> {
        let mut s = Section::default();
        loop {
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                let n = self.number32()?;
                if n == 0 || s.part.len() >= MAX_DEPTH * 4 {
                    return Err("invalid section part".into());
                }
                s.part.push(n);
                if self.peek() == Some(b'.') {
                    self.pos += 1;
                    continue;
                }
                return Ok(s);
            }
            break;
        }
        if self.peek() == Some(b']') {
            if !s.part.is_empty() {
                return Err("invalid section".into());
            }
            return Ok(s);
        }
        let word = self
            .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
            .to_ascii_uppercase();
        s.text = Some(match &word[..] {
            b"HEADER" => SectionText::Header,
            b"TEXT" => SectionText::Text,
            b"MIME" if !s.part.is_empty() => SectionText::Mime,
            b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
                self.sp()?;
                let fields = self
                    .nonempty_list_of("header field", |p| Ok(p.astring()?.to_ascii_lowercase()))?;
                SectionText::HeaderFields {
                    not: word.ends_with(b".NOT"),
                    fields,
                }
            }
            _ => return Err("invalid section".into()),
        });
        Ok(s)
    }

    /// `(uidvalidity modseq [known-uids [seq-match-data]])`; the
    /// sequence match data only narrows what the client wants reported and
    /// is not needed for a correct answer, so it is parsed and ignored.
    fn qresync(&mut self) -> R<Qresync> {
        self.expect(b'(')?;
        let uidvalidity = self.number32()?;
        self.sp()?;
        let modseq = self.number()?;
        let mut known_uids = None;
        if self.peek() == Some(b' ') {
            self.pos += 1;
            if self.peek() != Some(b'(') {
                known_uids = Some(self.seq_set()?);
                if self.peek() == Some(b' ') {
                    self.pos += 1;
                }
            }
            if self.peek() == Some(b'(') {
                self.pos += 1;
                self.seq_set()?;
                self.sp()?;
                self.seq_set()?;
                self.expect(b')')?;
            }
        }
        self.expect(b')')?;
        Ok(Qresync {
            uidvalidity,
            modseq,
            known_uids,
        })
    }

    /// FETCH modifiers: ` (CHANGEDSINCE n [VANISHED])` (RFC 7162 §3.1.4,
    /// §3.2.6).
    fn fetch_modifiers(&mut self) -> R<(Option<u64>, bool)> {
        if self.at_end() || self.buf.get(self.pos..self.pos + 2) != Some(b" (") {
            return Ok((None, false));
        }
        self.pos += 2;
        let (mut since, mut vanished, mut n) = (None, false, 0);
        while self.peek() != Some(b')') {
            if n > 0 {
                self.sp()?;
            }
            n += 1;
            match self.atom()?.to_ascii_uppercase().as_str() {
                "CHANGEDSINCE" if since.is_none() => {
                    self.sp()?;
                    since = Some(self.number()?);
                }
                "VANISHED" if !vanished => vanished = true,
                m => return Err(format!("unexpected FETCH modifier {m}")),
            }
        }
        self.pos += 1;
        if since.is_none() {
            return Err("FETCH modifiers need CHANGEDSINCE".into());
        }
        Ok((since, vanished))
    }

    /// An optional ` (NAME n)` command modifier.
    fn modifier(&mut self, name: &str) -> R<Option<u64>> {
        if self.at_end() || self.buf.get(self.pos..self.pos + 2) != Some(b" (") {
            return Ok(None);
        }
        self.pos += 2;
        if !self.atom()?.eq_ignore_ascii_case(name) {
            return Err(format!("expected {name}"));
        }
        self.sp()?;
        let n = self.number()?;
        self.expect(b')')?;
        Ok(Some(n))
    }

    fn store(&mut self, uid: bool) -> R<Command> {
        let set = self.seq_set()?;
        let unchanged_since = self.modifier("UNCHANGEDSINCE")?;
        self.sp()?;
        let item = self.take_while(|b| b.is_ascii_alphabetic() || b"+-.".contains(&b));
        let item = item.to_ascii_uppercase();
        let (op, rest) = match item.first() {
            Some(b'+') => (FlagOp::Add, &item[1..]),
            Some(b'-') => (FlagOp::Remove, &item[1..]),
            _ => (FlagOp::Replace, &item[..]),
        };
        let silent = match rest {
            b"FLAGS" => false,
            b"FLAGS.SILENT" => true,
            _ => return Err("expected FLAGS or FLAGS.SILENT".into()),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            // RFC 3501 §9: a flag list without parentheses.
            let mut flags = Flags::default();
            loop {
                match self.flag()? {
                    Flag::System(b) => flags.system |= b,
                    Flag::Keyword(k) => flags.keywords.push(k),
                }
                if self.at_end() {
                    break;
                }
                self.sp()?;
                if flags.keywords.len() >= MAX_LIST {
                    return Err("too many flags".into());
                }
            }
            flags
        };
        Ok(Command::Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        })
    }

    fn copy(&mut self, uid: bool, moving: bool) -> R<Command> {
        let set = self.seq_set()?;
        self.sp()?;
        Ok(Command::Copy {
            uid,
            set,
            mailbox: self.mailbox()?,
            moving,
        })
    }

    /// `RETURN (opt ...)` before the search program (RFC 4731 §3.1).
    fn search_return(&mut self) -> R<Option<SearchReturn>> {
        let save = self.pos;
        if !self.atom().is_ok_and(|a| a.eq_ignore_ascii_case("RETURN")) {
            self.pos = save;
            return Ok(None);
        }
        self.sp()?;
        let mut ret = SearchReturn::default();
        for opt in self.atom_list()? {
            match opt.as_str() {
                "MIN" => ret.min = true,
                "MAX" => ret.max = true,
                "COUNT" => ret.count = true,
                "ALL" => ret.all = true,
                "SAVE" => ret.save = true,
                other => return Err(format!("unsupported search return option {other}")),
            }
        }
        self.sp()?;
        if ret == SearchReturn::default() {
            return Ok(Some(SearchReturn::ALL));
        }
        Ok(Some(ret))
    }

    fn search(&mut self, uid: bool) -> R<Command> {
        let ret = self.search_return()?;
        let save = self.pos;
        if self.atom()?.eq_ignore_ascii_case("CHARSET") {
            self.sp()?;
            let charset = self.astring()?;
            if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("US-ASCII") {
                return Err("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into());
            }
            self.sp()?;
        } else {
            self.pos = save;
        }
        let mut keys = vec![self.search_key()?];
        while !self.at_end() {
            self.sp()?;
            if keys.len() >= MAX_LIST {
                return Err("too many search keys".into());
            }
            keys.push(self.search_key()?);
        }
        let key = if keys.len() == 1 {
            keys.remove(0)
        } else {
            SearchKey::And(keys)
        };
        Ok(Command::Search { uid, key, ret })
    }

    fn search_key(&mut self) -> R<SearchKey> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("search nested too deeply".into());
        }
        let key = self.search_key_inner();
        self.depth -= 1;
        key
    }

    fn search_string(&mut self) -> R<String> {
        self.sp()?;
        self.astring()
    }

    fn search_date(&mut self) -> R<i64> {
        self.sp()?;
        let s = match self.peek() {
            Some(b'"') => self.quoted()?,
            _ => {
                String::from_utf8_lossy(self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-'))
                    .into_owned()
            }
        };
        parse_date(&s).ok_or_else(|| "invalid date".into())
    }

    fn search_key_inner(&mut self) -> R<SearchKey> {
        if self.peek() == Some(b'(') {
            let keys = self.nonempty_list_of("search key", Self::search_key)?;
            return Ok(SearchKey::And(keys));
        }
        if self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
        {
            return Ok(SearchKey::Seq(self.seq_set()?));
        }
        let word = self.atom()?.to_ascii_uppercase();
        let flag = |bit, set| SearchKey::Flag(bit, set);
        Ok(match word.as_str() {
            "ALL" | "OLD" => SearchKey::All,
            "RECENT" | "NEW" => SearchKey::None,
            "ANSWERED" => flag(Flags::ANSWERED, true),
            "UNANSWERED" => flag(Flags::ANSWERED, false),
            "DELETED" => flag(Flags::DELETED, true),
            "UNDELETED" => flag(Flags::DELETED, false),
            "DRAFT" => flag(Flags::DRAFT, true),
            "UNDRAFT" => flag(Flags::DRAFT, false),
            "FLAGGED" => flag(Flags::FLAGGED, true),
            "UNFLAGGED" => flag(Flags::FLAGGED, false),
            "SEEN" => flag(Flags::SEEN, true),
            "UNSEEN" => flag(Flags::SEEN, false),
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                SearchKey::Keyword(self.atom()?, word == "KEYWORD")
            }
            "LARGER" | "SMALLER" => {
                self.sp()?;
                let n = self.number()?;
                if word == "LARGER" {
                    SearchKey::Larger(n)
                } else {
                    SearchKey::Smaller(n)
                }
            }
            "BEFORE" => SearchKey::Before(self.search_date()?),
            "ON" => SearchKey::On(self.search_date()?),
            "SINCE" => SearchKey::Since(self.search_date()?),
            "SENTBEFORE" => SearchKey::SentBefore(self.search_date()?),
            "SENTON" => SearchKey::SentOn(self.search_date()?),
            "SENTSINCE" => SearchKey::SentSince(self.search_date()?),
            "SUBJECT" | "FROM" | "TO" | "CC" | "BCC" => {
                SearchKey::Header(word.to_ascii_lowercase(), self.search_string()?)
            }
            "HEADER" => {
                let field = self.search_string()?.to_ascii_lowercase();
                SearchKey::Header(field, self.search_string()?)
            }
            "BODY" => SearchKey::Body(self.search_string()?),
            "MODSEQ" => {
                self.sp()?;
                if self.peek() == Some(b'"') {
                    // entry-name and entry-type-req: per-flag modseqs are
                    // not kept, so the message's modseq stands for all.
                    self.quoted()?;
                    self.sp()?;
                    self.atom()?;
                    self.sp()?;
                }
                SearchKey::ModSeq(self.number()?)
            }
            "TEXT" => SearchKey::Text(self.search_string()?),
            "UID" => {
                self.sp()?;
                SearchKey::Uid(self.seq_set()?)
            }
            "NOT" => {
                self.sp()?;
                SearchKey::Not(Box::new(self.search_key()?))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key()?;
                self.sp()?;
                SearchKey::Or(Box::new(a), Box::new(self.search_key()?))
            }
            other => return Err(format!("unsupported search key {other}")),
        })
    }
}

enum Flag {
    System(u8),
    Keyword(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Command {
        parse(s.as_bytes()).unwrap().1
    }

    fn all_bad(commands: &[&str]) {
        for bad in commands {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn simple_commands() {
        assert_eq!(parse(b"a1 NOOP"), Ok(("a1".into(), Command::Noop)));
        assert_eq!(cmd("x capability"), Command::Capability);
        assert_eq!(
            cmd("a LOGIN anna \"correct horse\""),
            Command::Login {
                user: "anna".into(),
                password: b"correct horse".to_vec()
            }
        );
        assert_eq!(
            cmd("a LOGIN {4}\r\nanna {3}\r\npw\""),
            Command::Login {
                user: "anna".into(),
                password: b"pw\"".to_vec()
            }
        );
        assert_eq!(
            cmd("a AUTHENTICATE PLAIN AGFubmEAcHc="),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGFubmEAcHc=".into())
            }
        );
        assert_eq!(
            cmd("a list \"\" %/*"),
            Command::List(ListCommand {
                patterns: vec!["%/*".into()],
                ..ListCommand::default()
            })
        );
        assert_eq!(
            cmd(
                "a LIST (SPECIAL-USE RECURSIVEMATCH) \"\" (INBOX \"A*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))"
            ),
            Command::List(ListCommand {
                patterns: vec!["INBOX".into(), "A*".into()],
                special_use_only: true,
                recursive_match: true,
                status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
                ..ListCommand::default()
            })
        );
        assert!(parse(b"a LSUB (SUBSCRIBED) \"\" *").is_err());
        assert!(parse(b"a LIST \"\" * RETURN").is_err());
        assert!(matches!(
            cmd("a ID (\"name\" \"x\" \"version\" NIL)"),
            Command::Id
        ));
        assert!(matches!(cmd("a ID NIL"), Command::Id));
        assert_eq!(
            cmd("a GETQUOTAROOT INBOX"),
            Command::GetQuotaRoot("INBOX".into())
        );
        assert_eq!(cmd("a GETQUOTA \"\""), Command::GetQuota("".into()));
        assert_eq!(
            cmd("a ENABLE CONDSTORE X-FOO"),
            Command::Enable(vec!["CONDSTORE".into(), "X-FOO".into()])
        );
        assert!(parse(b"a ENABLE").is_err());
        assert!(matches!(
            cmd("a SELECT INBOX (CONDSTORE)"),
            Command::Select {
                condstore: true,
                ..
            }
        ));
        let Command::Select { qresync, .. } = cmd(
            "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1,3 5,7)))",
        ) else {
            panic!()
        };
        let q = qresync.unwrap();
        assert_eq!((q.uidvalidity, q.modseq), (67890007, 20050715194045000));
        assert!(q.known_uids.unwrap().contains(43, 0));
        assert!(matches!(
            cmd("a EXAMINE INBOX (QRESYNC (1 2))"),
            Command::Select {
                qresync: Some(_),
                ..
            }
        ));
        assert!(matches!(
            cmd("a UID FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)"),
            Command::Fetch {
                vanished: true,
                changed_since: Some(5),
                ..
            }
        ));
        assert!(parse(b"a FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)").is_err());
        assert!(parse(b"a UID FETCH 1:* FLAGS (VANISHED)").is_err());
        assert!(parse(b"a SELECT INBOX (QRESYNC (1))").is_err());
        assert_eq!(
            cmd("a CREATE Entw&APw-rfe"),
            Command::Create("Entwürfe".into())
        );
    }

    #[test]
    fn fetch_items() {
        let Command::Fetch { uid, items, .. } =
            cmd("a UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS.NOT (To Cc)]<0.100> BODY[])")
        else {
            panic!()
        };
        assert!(uid);
        assert_eq!(items[0], FetchAtt::Uid);
        assert_eq!(
            items[2],
            FetchAtt::Section {
                peek: true,
                section: Section {
                    part: vec![1, 2],
                    text: Some(SectionText::HeaderFields {
                        not: true,
                        fields: vec!["to".into(), "cc".into()]
                    })
                },
                partial: Some((0, 100)),
                legacy: None
            }
        );
        let Command::Fetch { items, .. } = cmd("a FETCH 1 FULL") else {
            panic!()
        };
        assert_eq!(items.len(), 5);
        let Command::Fetch {
            items,
            changed_since,
            ..
        } = cmd("a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)")
        else {
            panic!()
        };
        assert_eq!(changed_since, Some(12345));
        assert_eq!(items, vec![FetchAtt::Flags, FetchAtt::ModSeq]);
        assert!(matches!(
            cmd("a STORE 1 (UNCHANGEDSINCE 7) +FLAGS (\\Seen)"),
            Command::Store {
                unchanged_since: Some(7),
                ..
            }
        ));
        assert!(matches!(
            cmd("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338"),
            Command::Search {
                key: SearchKey::ModSeq(620162338),
                ..
            }
        ));
        all_bad(&[
            "a FETCH 1 (FLAGS",
            "a FETCH 1 BODY[0]",
            "a FETCH 1 BODY[1.]",
            "a FETCH 1 BODY[MIME]",
            "a FETCH 1 BODY[]<1.0>",
            "a FETCH 1 BODY.PEEK",
            "a FETCH 1 ()",
            "a FETCH 0 FLAGS",
        ]);
    }

    #[test]
    fn store_and_search() {
        assert_eq!(
            cmd("a STORE 1:3 +FLAGS.SILENT (\\Seen $Junk)"),
            Command::Store {
                uid: false,
                set: SeqSet::parse(b"1:3").unwrap(),
                op: FlagOp::Add,
                silent: true,
                flags: Flags {
                    system: Flags::SEEN,
                    keywords: vec!["$Junk".into()]
                },
                unchanged_since: None
            }
        );
        let Command::Search { key, .. } =
            cmd("a SEARCH CHARSET UTF-8 OR SEEN (NOT FROM \"x\") SINCE 1-Feb-1994 UID 2:*")
        else {
            panic!()
        };
        assert!(matches!(key, SearchKey::And(ref k) if k.len() == 3));
        assert!(parse(b"a STORE 1 FLAGS (\\Recent)").is_err());
        assert!(parse(b"a SEARCH CHARSET KOI8-R ALL").is_err());
    }

    #[test]
    fn hostile_input() {
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(deep.as_bytes()).is_err());
        let nots = format!("a SEARCH {}ALL", "NOT ".repeat(10_000));
        assert!(parse(nots.as_bytes()).is_err());
        let big = vec![b'a'; 10 << 20];
        assert!(parse(&big).is_err());
        for bad in [
            &b""[..],
            b" ",
            b"\x00\x01\x02",
            b"a",
            b"a ",
            b"a NOOP extra",
            b"a LOGIN {4294967295}\r\nx y",
            b"a LOGIN {5}\r\nab",
            b"a LOGIN \"unterminated",
            b"a LOGIN \"a\x00b\" c",
            b"a SELECT ((((",
            b"a STATUS INBOX (MESSAGES",
            b"a SEARCH ((ALL)",
            b"a SEARCH )",
            b"a UID",
            b"a APPEND INBOX {3}\r\nabc",
            b"\xff\xfe NOOP",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(tag_of(b"\xff NOOP"), None);
        assert_eq!(tag_of(b"t1 garbage"), Some("t1".into()));
    }

    #[test]
    fn literal_suffixes() {
        assert_eq!(literal_suffix(b"a LOGIN {5}"), Some((5, false)));
        assert_eq!(literal_suffix(b"a APPEND x {10+}"), Some((10, true)));
        assert_eq!(
            literal_suffix(b"a LOGIN {4294967295}"),
            Some((4_294_967_295, false))
        );
        assert_eq!(literal_suffix(b"a LOGIN {99999999999999999999}"), None);
        assert_eq!(literal_suffix(b"a LOGIN {}"), None);
        assert_eq!(literal_suffix(b"a LOGIN {+}"), None);
        assert_eq!(literal_suffix(b"a LOGIN x}"), None);
    }

    #[test]
    fn literal8_append() {
        assert_eq!(before_literal(b"a APPEND INBOX ~{5+}"), b"a APPEND INBOX ");
        assert_eq!(before_literal(b"a APPEND INBOX {5}"), b"a APPEND INBOX ");
        assert_eq!(before_literal(b" (\\Seen) ~{5}"), b" (\\Seen) ");
        assert!(parse_append_head(before_literal(b"a APPEND INBOX ~{5}")).is_some());
    }

    #[test]
    fn append_head() {
        let h =
            parse_append_head(b"A3 APPEND Sent (\\Seen) \"17-Jul-1996 02:44:25 -0700\" ").unwrap();
        assert_eq!(h.mailbox, "Sent");
        assert_eq!(h.flags.system, Flags::SEEN);
        assert!(h.date.is_some());
        assert!(parse_append_head(b"A3 APPEND INBOX ").is_some());
        let h = parse_append_head(b"A3 APPEND {5}\r\nDraft ").unwrap();
        assert_eq!(h.mailbox, "Draft");
        // The literal here is the mailbox name, not the message.
        assert!(parse_append_head(b"A3 APPEND ").is_none());
        assert!(parse_append_head(b"A3 APPEND INBOX \"bad date\" ").is_none());
    }

    #[test]
    fn binary_items() {
        // RFC 3516 §4.1.
        let Command::Fetch { items, .. } =
            cmd("a FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY[] BINARY.SIZE[3])")
        else {
            panic!()
        };
        assert_eq!(
            items,
            vec![
                FetchAtt::Binary {
                    peek: true,
                    part: vec![1, 2],
                    partial: Some((0, 10))
                },
                FetchAtt::Binary {
                    peek: false,
                    part: vec![],
                    partial: None
                },
                FetchAtt::BinarySize(vec![3]),
            ]
        );
        all_bad(&[
            "a FETCH 1 BINARY",
            "a FETCH 1 BINARY[1.TEXT]",
            "a FETCH 1 BINARY[0]",
            "a FETCH 1 BINARY[1.]",
            "a FETCH 1 BINARY.SIZE[1]<0.5>",
        ]);
    }

    #[test]
    fn list_extended_options() {
        let Command::List(l) = cmd(
            "a LIST (SUBSCRIBED RECURSIVEMATCH REMOTE) \"\" (INBOX \"%\") RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES DELETED))",
        ) else {
            panic!()
        };
        assert!(l.subscribed_only && l.recursive_match && l.return_subscribed);
        assert_eq!(l.patterns, vec!["INBOX".to_string(), "%".to_string()]);
        assert_eq!(
            l.status,
            Some(vec![StatusItem::Messages, StatusItem::Deleted])
        );
        all_bad(&[
            "a LIST (RECURSIVEMATCH) \"\" *",
            "a LIST (BOGUS) \"\" *",
            "a LIST \"\" * RETURN (BOGUS)",
        ]);
    }

    #[test]
    fn multiappend_continuation() {
        // RFC 3502: after a message literal, the next message's options.
        let (flags, date) =
            parse_append_next(b" (\\Seen $Work) \"17-Jul-1996 02:44:25 -0700\" ").unwrap();
        assert_eq!(flags.system, Flags::SEEN);
        assert_eq!(flags.keywords, vec!["$Work".to_string()]);
        assert!(date.is_some());
        assert_eq!(parse_append_next(b" "), Some((Flags::default(), None)));
        let bad: [&[u8]; 6] = [
            b"",
            b"  ",
            b" (\\Seen)",
            b" (\\Seen ",
            b" \"x\" ",
            b" junk ",
        ];
        assert!(bad.iter().all(|b| parse_append_next(b).is_none()));
    }

    #[test]
    fn search_return_options() {
        // RFC 4731 §3.1; RETURN () means ALL.
        let ret = |s: &str| match cmd(s) {
            Command::Search { ret, .. } => ret,
            other => panic!("{other:?}"),
        };
        assert_eq!(ret("a SEARCH ALL"), None);
        assert_eq!(ret("a SEARCH RETURN () ALL"), Some(SearchReturn::ALL));
        assert_eq!(
            ret("a UID SEARCH RETURN (MIN MAX count) CHARSET UTF-8 UNSEEN"),
            Some(SearchReturn {
                min: true,
                max: true,
                count: true,
                all: false,
                save: false
            })
        );
        // SEARCHRES (RFC 5182): SAVE, and `$` wherever a set may be.
        let Command::Search { ret, key, .. } = cmd("a SEARCH RETURN (SAVE) UID $") else {
            panic!()
        };
        assert!(ret.is_some_and(|r| r.save && !r.responds()));
        assert_eq!(key, SearchKey::Uid(SeqSet::saved()));
        let Command::Search { key, .. } = cmd("a SEARCH $ SEEN") else {
            panic!()
        };
        assert_eq!(
            key,
            SearchKey::And(vec![
                SearchKey::Seq(SeqSet::saved()),
                SearchKey::Flag(Flags::SEEN, true)
            ])
        );
        assert!(matches!(cmd("a UID FETCH $ FLAGS"), Command::Fetch { set, .. } if set.is_saved()));
        assert!(matches!(cmd("a COPY $ Trash"), Command::Copy { set, .. } if set.is_saved()));
        assert!(parse(b"a FETCH 1,$ FLAGS").is_err());
        let Command::Search { uid, key, .. } = cmd("a UID SEARCH RETURN (ALL) 1:5 SEEN") else {
            panic!()
        };
        assert!(uid);
        assert!(matches!(key, SearchKey::And(ref k) if k.len() == 2));
        all_bad(&[
            "a SEARCH RETURN (FOO) ALL",
            "a SEARCH RETURN (MIN ALL",
            "a SEARCH RETURN MIN ALL",
            "a SEARCH RETURN (MIN)",
            "a SEARCH RETURN",
        ]);
    }
}
