//! Listener infrastructure shared by every protocol: TLS configuration,
//! plain/TLS streams, an 8-bit clean line reader and the accept loop.
//! No protocol logic lives here.

mod line;
mod listener;
mod stream;
mod tls;

pub use line::{Line, LineReader};
pub use listener::{
    BindError, BoundListener, Connection, Handler, ListenerSpec, ServeConfig, bind, record_user,
    serve,
};
pub use stream::Stream;
pub use tls::{TlsError, TlsHandle, generate_self_signed, load_tls};

/// `io::Error` text without the " (os error N)" suffix, for messages meant
/// for an administrator.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map(str::to_owned)
            .unwrap_or(text),
        None => text,
    }
}
