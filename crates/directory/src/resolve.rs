//! Recipient resolution for the delivery core: what an envelope recipient
//! is here.

use store::AccountId;

use crate::domains::DomainMode;
use crate::forwarders::Forwarding;
use crate::keys::{self, AddressEntry};
use crate::syntax::parse_address;
use crate::{Directory, DirectoryError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A mailbox, with no forwarder on its address.
    Account { id: AccountId },
    /// An alias: deliver to the account's mailbox. Forwarders are per
    /// address, so one on the account's own address does not apply here.
    Alias {
        account_id: AccountId,
        alias: String,
    },
    /// Pass the message on to `destinations`; also deliver to
    /// `keep_copy_account` when set (a forwarder on an account address with
    /// keep-copy). A forwarder on an account without keep-copy resolves here
    /// with `None`: the mailbox gets nothing.
    Forward {
        destinations: Vec<String>,
        keep_copy_account: Option<AccountId>,
    },
    /// Not in the directory. `domain_mode` is `None` for a domain that is not
    /// ours at all; for a relay domain, `relay_host` says where the
    /// recipient's mail goes.
    Unknown {
        domain_mode: Option<DomainMode>,
        relay_host: Option<String>,
    },
}

impl Directory {
    /// Resolves an envelope recipient. Local part and domain match
    /// case-insensitively.
    ///
    /// A malformed address is an error, not `Unknown`, so that it can never
    /// be taken for a remote recipient and relayed. That includes a trailing
    /// dot on the domain (`user@example.org.`): RFC 5321 §4.1.2 has no room
    /// for it in a `Mailbox`, so it is not treated as the same domain as
    /// `example.org`; rejecting it is the SMTP layer's job.
    pub async fn resolve(&self, address: &str) -> Result<Resolution> {
        let address = parse_address(address)?;
        let forwarding = || async { self.get_record::<Forwarding>(keys::forward(&address)).await };
        match self.address_entry(&address).await? {
            Some(AddressEntry::Account(id)) => Ok(match forwarding().await? {
                Some(forwarding) => Resolution::Forward {
                    keep_copy_account: forwarding.keep_copy.then_some(id),
                    destinations: forwarding.destinations,
                },
                None => Resolution::Account { id },
            }),
            Some(AddressEntry::Alias(account_id)) => Ok(Resolution::Alias {
                account_id,
                alias: address.to_string(),
            }),
            Some(AddressEntry::Forwarder) => {
                let forwarding = forwarding().await?.ok_or_else(|| DirectoryError::Corrupt {
                    key: format!("forward/{}/{}", address.domain, address.local),
                    reason: format!("missing, but {address} is a forwarder"),
                })?;
                Ok(Resolution::Forward {
                    destinations: forwarding.destinations,
                    keep_copy_account: None,
                })
            }
            None => {
                let domain = self.domain(&address.domain).await?;
                Ok(Resolution::Unknown {
                    domain_mode: domain.as_ref().map(|domain| domain.mode),
                    relay_host: domain.and_then(|domain| domain.relay_host),
                })
            }
        }
    }
}
