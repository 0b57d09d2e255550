//! The configuration file parser (`posthorn::config`): TOML into the typed
//! config, then the checks that name the bad key.
//!
//! Checks: no panic on any text; an accepted config satisfies what the
//! checks promise (a host name without spaces, limits at least their
//! minimum), so nothing downstream meets a value the checks should have
//! refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(config) => {
            let host = &config.server.hostname;
            assert!(!host.trim().is_empty() && !host.contains(char::is_whitespace));
            assert!(config.limits.max_message_size >= 1024);
            assert!(config.limits.smtp_command_timeout_secs >= 1);
            assert!(config.limits.max_connections >= 1 && config.limits.max_connections_per_ip >= 1);
            assert!(config.outbound.concurrency >= 1 && config.outbound.timeout_secs >= 1);
            assert!(config.delivery.max_hops >= 1);
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
