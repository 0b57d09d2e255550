//! Key layout and record encoding of the directory inside the store's
//! directory key space.
//!
//! ```text
//! domain/<name>                      -> DomainRecord (postcard)
//! account/<id BE>                    -> Account (postcard; the id comes from the key)
//! address/<domain>/<local>           -> AddressEntry (tag byte + id BE)
//! forward/<domain>/<local>           -> Forwarding (postcard)
//! login/<short id>                   -> account id (u64 BE)
//! alias-of/<id BE>/<alias>           -> empty: an account's aliases, to count and remove them
//! autoresponder/<id BE>              -> Autoresponder (postcard)
//! block/<id BE>/<sender pattern>     -> empty
//! ```
//!
//! Addresses are keyed domain first so that one prefix scan finds all of a
//! domain's addresses. A domain never contains `/`, so the first `/` after
//! the prefix ends it, whatever the local part holds (`/` is legal `atext`).
//!
//! Ids are big-endian so keys sort by id. postcard is not self-describing:
//! adding a field to a record is a schema change and needs a migration.

use serde::Serialize;
use serde::de::DeserializeOwned;
use store::AccountId;

use crate::DirectoryError;
use crate::syntax::Address;

pub(crate) const DOMAIN: &[u8] = b"domain/";
pub(crate) const ACCOUNT: &[u8] = b"account/";
pub(crate) const ADDRESS: &[u8] = b"address/";
pub(crate) const FORWARD: &[u8] = b"forward/";
const LOGIN: &[u8] = b"login/";
const ALIAS_OF: &[u8] = b"alias-of/";
const AUTORESPONDER: &[u8] = b"autoresponder/";
const BLOCK: &[u8] = b"block/";

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn domain(name: &str) -> Vec<u8> {
    key(&[DOMAIN, name.as_bytes()])
}

pub(crate) fn account(id: AccountId) -> Vec<u8> {
    key(&[ACCOUNT, &id.to_be_bytes()])
}

pub(crate) fn address(address: &Address) -> Vec<u8> {
    key(&[
        ADDRESS,
        address.domain.as_bytes(),
        b"/",
        address.local.as_bytes(),
    ])
}

/// Prefix of every `address/` key of one domain.
pub(crate) fn domain_addresses(domain: &str) -> Vec<u8> {
    key(&[ADDRESS, domain.as_bytes(), b"/"])
}

pub(crate) fn forward(address: &Address) -> Vec<u8> {
    key(&[
        FORWARD,
        address.domain.as_bytes(),
        b"/",
        address.local.as_bytes(),
    ])
}

/// The address an `address/` or `forward/` key names, as `local@domain`.
pub(crate) fn address_of(key: &[u8], prefix: &[u8]) -> Result<String, DirectoryError> {
    key.strip_prefix(prefix)
        .and_then(|rest| std::str::from_utf8(rest).ok())
        .and_then(|rest| rest.split_once('/'))
        .map(|(domain, local)| format!("{local}@{domain}"))
        .ok_or_else(|| corrupt(key, "malformed key"))
}

pub(crate) fn login(short_id: &str) -> Vec<u8> {
    key(&[LOGIN, short_id.as_bytes()])
}

pub(crate) fn aliases_of(id: AccountId) -> Vec<u8> {
    key(&[ALIAS_OF, &id.to_be_bytes(), b"/"])
}

pub(crate) fn alias_of(id: AccountId, alias: &Address) -> Vec<u8> {
    key(&[&aliases_of(id), alias.to_string().as_bytes()])
}

pub(crate) fn autoresponder(id: AccountId) -> Vec<u8> {
    key(&[AUTORESPONDER, &id.to_be_bytes()])
}

pub(crate) fn blocklist(id: AccountId) -> Vec<u8> {
    key(&[BLOCK, &id.to_be_bytes(), b"/"])
}

pub(crate) fn block(id: AccountId, pattern: &str) -> Vec<u8> {
    key(&[&blocklist(id), pattern.as_bytes()])
}

/// The text after `prefix` in `key` (alias and blocklist listings).
pub(crate) fn suffix(key: &[u8], prefix: &[u8]) -> Result<String, DirectoryError> {
    key.strip_prefix(prefix)
        .and_then(|rest| std::str::from_utf8(rest).ok())
        .map(str::to_owned)
        .ok_or_else(|| corrupt(key, "malformed key"))
}

/// What an address is. An address is exactly one of these; a forwarder may
/// additionally sit on an account address (in `forward/`).
///
/// Encoded by hand, not with postcard: `Store::create_account` builds its
/// writes in a closure that cannot fail, and this encoding cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressEntry {
    Account(AccountId),
    Alias(AccountId),
    /// A forwarder with no mailbox behind it.
    Forwarder,
}

impl AddressEntry {
    pub(crate) fn encode(self) -> Vec<u8> {
        match self {
            AddressEntry::Account(id) => key(&[b"a", &id.to_be_bytes()]),
            AddressEntry::Alias(id) => key(&[b"l", &id.to_be_bytes()]),
            AddressEntry::Forwarder => b"f".to_vec(),
        }
    }

    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<AddressEntry, DirectoryError> {
        match value {
            [b'a', id @ ..] => Ok(AddressEntry::Account(decode_id(key, id)?)),
            [b'l', id @ ..] => Ok(AddressEntry::Alias(decode_id(key, id)?)),
            [b'f'] => Ok(AddressEntry::Forwarder),
            _ => Err(corrupt(key, "unknown address kind")),
        }
    }
}

pub(crate) fn decode_id(key: &[u8], value: &[u8]) -> Result<AccountId, DirectoryError> {
    <[u8; 8]>::try_from(value)
        .map(AccountId::from_be_bytes)
        .map_err(|_| corrupt(key, "account id is not 8 bytes"))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, DirectoryError> {
    postcard::to_allocvec(value)
        .map_err(|err| DirectoryError::Internal(format!("cannot encode directory record: {err}")))
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, DirectoryError> {
    postcard::from_bytes(value).map_err(|err| corrupt(key, &err.to_string()))
}

fn corrupt(key: &[u8], reason: &str) -> DirectoryError {
    DirectoryError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_entries_round_trip() {
        for entry in [
            AddressEntry::Account(7),
            AddressEntry::Alias(u64::MAX),
            AddressEntry::Forwarder,
        ] {
            assert_eq!(AddressEntry::decode(b"k", &entry.encode()).unwrap(), entry);
        }
        assert!(AddressEntry::decode(b"k", b"a123").is_err());
        assert!(AddressEntry::decode(b"k", b"").is_err());
    }

    #[test]
    fn address_keys_name_their_address() {
        let address = Address {
            local: "a/b".into(),
            domain: "example.org".into(),
        };
        let key = super::address(&address);
        assert!(key.starts_with(&domain_addresses("example.org")));
        assert!(!key.starts_with(&domain_addresses("example.or")));
        assert_eq!(address_of(&key, ADDRESS).unwrap(), "a/b@example.org");
    }
}
