//! How the binary words an error for the user.
//!
//! The commands return `anyhow::Error` with `.context(...)` at the edge, so the library's
//! typed error (thiserror) stays reachable as the source instead of being flattened into a
//! string. The libraries' messages follow the workspace's convention of embedding their
//! source (`"udp bind: {source}"`), so printing the chain as `{:#}` does would repeat the
//! innermost message; [`message`] prints each link once.

/// The error and its causes, outermost first, joined by `": "`; a cause whose text already
/// ends the message (because the outer error embeds it) is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.ends_with(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[derive(Debug, thiserror::Error)]
    #[error("udp bind: {source}")]
    struct Embeds {
        source: std::io::Error,
    }

    #[test]
    fn causes_are_joined_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use");
        let e = Err::<(), _>(Embeds { source: io })
            .context("listen")
            .unwrap_err();
        assert_eq!(message(&e), "listen: udp bind: in use");
        let e = Err::<(), _>(std::io::Error::other("gone"))
            .context("config a.toml")
            .unwrap_err();
        assert_eq!(message(&e), "config a.toml: gone");
        assert_eq!(message(&anyhow::anyhow!("plain")), "plain");
    }
}
